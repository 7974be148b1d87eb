"""SpA strategies as training hooks (align/hooks.py): each hook in isolation, the fixed-ETF rules,
the schedule and options, build_hooks, and a training run with every strategy."""

from types import SimpleNamespace

import pytest
import torch

from nclab.align import EMAClassMeans
from nclab.align.hooks import SpAProj, SpAReg, SpASlerp, TrackerHook, build_hooks
from nclab.errors import ConfigError
from nclab.heads import create_head


def test_hooks_improve_alignment_in_isolation_and_fixed_etf_rules():
    torch.manual_seed(0)
    head = create_head("linear", 4, 3)
    tr = EMAClassMeans(3, 4)
    centres = torch.randn(3, 4) * 3
    y = torch.tensor([0, 1, 2] * 5)
    tr.update(centres[y], y)
    t = tr.targets()

    def align():
        return float(torch.nn.functional.cosine_similarity(head.weight.detach(), t, dim=1).mean())

    before = align()

    class Ctx:
        progress = 1.0

    SpASlerp(tr, head, alpha=0.5, threshold=0.99).after_step(Ctx())
    assert align() > before
    etf = create_head("fixed_etf", 4, 3)
    with pytest.raises(ConfigError, match="fixed"):
        SpAProj(tr, etf)
    with pytest.raises(ConfigError, match="fixed"):
        SpASlerp(tr, etf)
    reg = SpAReg(tr, etf, side="features")
    feats = torch.randn(15, 4, requires_grad=True)
    loss = reg.extra_loss(feats, None, y, None)
    loss.backward()
    assert feats.grad is not None and float(loss) > 0


def test_training_with_all_strategies(tmp_path):
    from pathlib import Path

    from nclab.cli import main

    smoke = Path(__file__).resolve().parents[2] / "configs" / "recipes" / "synthetic.yaml"
    assert (
        main(
            [
                "train",
                str(smoke),
                "train.epochs=2",
                "align.strategies=[proj,slerp,reg]",
                "--run-dir",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                str(smoke),
                "train.epochs=1",
                "head.name=fixed_etf",
                "align.strategies=[reg]",
                "align.reg_side=features",
                "--run-dir",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                str(smoke),
                "head.name=fixed_etf",
                "align.strategies=[slerp]",
                "--run-dir",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )


def test_slerp_strength_follows_the_cosine_schedule():
    hook = SpASlerp(EMAClassMeans(3, 4), create_head("linear", 4, 3), alpha=0.2)
    assert hook.strength(0.0) == 0.0
    assert hook.strength(0.5) == pytest.approx(0.1, rel=1e-12)
    assert hook.strength(1.0) == pytest.approx(0.2, rel=1e-12)


def test_reg_options_are_checked():
    tr, head = EMAClassMeans(3, 4), create_head("linear", 4, 3)
    with pytest.raises(ConfigError, match="weighting"):
        SpAReg(tr, head, weighting="inverse")
    with pytest.raises(ConfigError, match="side"):
        SpAReg(tr, head, side="logits")
    # nothing seen yet: the loss is zero
    assert float(SpAReg(tr, head).extra_loss(torch.randn(6, 4), None, torch.arange(6) % 3, None)) == 0.0


def _align_cfg(strategies):
    return SimpleNamespace(
        strategies=strategies, momentum=0.9, centered=True, proj_gamma=0.6, slerp_alpha=0.02,
        slerp_threshold=0.95, reg_lambda=0.1, reg_weighting="uniform", reg_side="head",
    )  # fmt: skip


def test_build_hooks_puts_the_tracker_first_and_checks_the_names():
    head = create_head("linear", 4, 3)
    assert build_hooks(_align_cfg([]), head, 3, 4) == []
    hooks = build_hooks(_align_cfg(["reg", "proj", "slerp"]), head, 3, 4)
    assert [type(h) for h in hooks] == [TrackerHook, SpAReg, SpAProj, SpASlerp]
    assert all(h.tracker is hooks[0].tracker for h in hooks[1:])
    with pytest.raises(ConfigError, match="unknown align strategies"):
        build_hooks(_align_cfg(["spin"]), head, 3, 4)
