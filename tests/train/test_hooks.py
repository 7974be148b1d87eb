"""nclab.train.hooks: the hook points' defaults, HookContext.progress, and the order in which the loop
calls the points (the order the module's docstring documents)."""

import pytest
import torch

from nclab.train import Trainer, load_config
from nclab.train.hooks import HookContext, TrainHook
from tests.train.helpers import SMOKE


def _ctx(**kw) -> HookContext:
    return HookContext(torch.nn.Identity(), torch.nn.Identity(), **kw)


@pytest.mark.parametrize(
    "step,total,expect", [(0, 10, 0.0), (3, 12, 0.25), (12, 12, 1.0), (20, 12, 1.0), (5, 0, 1.0)]
)
def test_progress_is_step_over_total_steps_clamped_to_one(step, total, expect):
    assert _ctx(step=step, total_steps=total).progress == expect


def test_the_base_hook_changes_nothing():
    h, ctx = TrainHook(), _ctx()
    x, y, loss = torch.randn(4, 3), torch.tensor([0, 1, 0, 1]), torch.tensor(2.0)
    x2, y2 = h.transform_batch(x, y, ctx)
    assert x2 is x and y2 is y
    assert h.combine_loss(loss, lambda t: loss * 0, y, ctx) is loss
    assert h.extra_loss(x, x, y, ctx) is None
    assert h.state_dict() == {}
    for point in (h.on_train_start, h.on_epoch_start, h.after_backward, h.after_step, h.on_epoch_end):
        assert point(ctx) is None
    assert h.on_batch(x, y, ctx) is None and h.load_state_dict({}) is None


class _Recorder(TrainHook):
    """Writes down every call; checks that features reach on_batch detached and weights move in the step."""

    def __init__(self):
        self.calls: list[str] = []

    def on_train_start(self, ctx):
        self.calls.append("train_start")

    def on_epoch_start(self, ctx):
        self.calls.append(f"epoch_start {ctx.epoch}")

    def transform_batch(self, x, y, ctx):
        assert ctx.generator is not None
        self.calls.append("transform")
        return x, y

    def combine_loss(self, loss, loss_of, y, ctx):
        self.calls.append("combine")
        return loss

    def on_batch(self, features, labels, ctx):
        assert not features.requires_grad and ctx.loss is not None and not ctx.loss.requires_grad
        self.calls.append(f"batch {ctx.step}")

    def extra_loss(self, features, logits, labels, ctx):
        self.calls.append("extra")
        return None

    def after_backward(self, ctx):
        assert ctx.head.weight.grad is not None
        self.before = ctx.head.weight.detach().clone()
        self.calls.append("backward")

    def after_step(self, ctx):
        assert not torch.equal(self.before, ctx.head.weight)
        self.calls.append("step")

    def on_epoch_end(self, ctx):
        self.calls.append(f"epoch_end {ctx.epoch}")


def test_the_loop_calls_every_point_in_the_documented_order(tmp_path):
    rec = _Recorder()
    t = Trainer(load_config(SMOKE, ["train.epochs=2"]), tmp_path / "r", hooks=[rec])
    n = t.steps_per_epoch
    assert t.ctx.total_steps == 2 * n and t.ctx.world_size == 1
    t.fit()
    per_step = ["transform", "combine", "batch {}", "extra", "backward", "step"]
    expect = ["train_start"]
    for epoch in range(2):
        expect.append(f"epoch_start {epoch}")
        for s in range(epoch * n, (epoch + 1) * n):
            expect += [c.format(s) for c in per_step]
        expect.append(f"epoch_end {epoch}")
    assert rec.calls == expect
