"""The component contract: every registered model, head, loss and sampler, every align strategy and
every stage-2 method is trained through the real loop (:class:`nclab.train.loop.Trainer`) for a few
steps, on the CPU and on fake "cuda" tensors (:mod:`tests.fake_cuda`).

The CPU part runs the whole run (training, evaluation with NC metrics, checkpoint, stage 2). The fake
CUDA part runs the pieces that make device-placement mistakes: the modules, the loss, the hooks and
the data placed on "cuda", one epoch of training steps, the evaluation's accuracy pass and stage 2;
the NC metrics need values (ranks, eigenvalues) and are covered by tests/metrics/test_device.py.
The cases are generated from the registries, so a newly registered component is covered by both.
"""

from __future__ import annotations

import contextlib
import json

import pytest
import torch

from nclab.data.samplers import SAMPLERS
from nclab.heads import list_heads
from nclab.losses import list_losses
from nclab.models import list_models
from nclab.train import loop
from nclab.train.config import load_config
from nclab.train.data_setup import TrainData
from nclab.train.evaluate import evaluate
from nclab.train.two_stage import METHODS as STAGE2
from tests.fake_cuda import fake_cuda

FEDERATED_HEADS = {"gela_authors"}  # nclab train refuses them (tests/train/test_build.py)

BASE = [
    "data.name=synthetic",
    "data.num_classes=4",
    "data.n_max=24",
    "data.imbalance=4",
    "data.dim=8",
    "data.test_per_class=4",
    "model.name=mlp",
    "model.feature_dim=8",
    "train.epochs=2",
    "train.batch_size=16",
    "train.eval_batch_size=32",
    "train.seed=0",
    "train.amp=off",
    "optim.lr=0.05",
    "stage2.epochs=1",
    "stage2.batch_size=8",
]
# inputs for the image backbones: (channels, side); anything else gets 3 x 16 x 16
IMAGE_SHAPES = {"cnn_small": (1, 28)}
LOSS_EXTRA = {"ldam": ["loss.kwargs.drw_epoch=1", "head.name=cosine", "head.kwargs.tau=1.0"]}


def _cases() -> list[tuple[str, list[str]]]:
    cases = [(f"model-{m}", [f"model.name={m}"]) for m in list_models()]
    cases += [(f"head-{h}", [f"head.name={h}"]) for h in list_heads() if h not in FEDERATED_HEADS]
    cases += [(f"loss-{n}", [f"loss.name={n}", *LOSS_EXTRA.get(n, [])]) for n in list_losses()]
    cases += [(f"sampler-{n}", [f"sampler.name={n}"]) for n in SAMPLERS.names()]
    cases += [(f"align-{a}", [f"align.strategies=[{a}]"]) for a in ("proj", "slerp", "reg")]
    cases += [("align-reg-features", ["align.strategies=[reg]", "align.reg_side=both"])]
    cases += [(f"stage2-{m}", [f"stage2.method={m}"]) for m in STAGE2]
    cases += [
        ("online-nc", ["train.nc_source=online"]),
        ("mixup", ["train.mixup_alpha=0.2"]),
        ("grad-clip", ["train.grad_clip=1.0"]),
        ("dr-fixed-etf", ["loss.name=dr", "head.name=fixed_etf", "head.kwargs.bias=true"]),
    ]
    return cases


CASES = _cases()


def _images(channels: int, side: int, k: int = 4, per_class: tuple[int, ...] = (12, 8, 6, 4)) -> TrainData:
    g = torch.Generator().manual_seed(0)
    counts = list(per_class[:k])
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    ty = torch.arange(k).repeat_interleave(3)
    x = torch.randint(0, 256, (len(y), channels, side, side), generator=g, dtype=torch.uint8)
    tx = torch.randint(0, 256, (len(ty), channels, side, side), generator=g, dtype=torch.uint8)
    mean, std = torch.full((channels,), 0.5), torch.full((channels,), 0.25)
    return TrainData(
        x, y, tx, ty, counts, [str(c) for c in range(k)], mean, std, "test", channels, x[0].numel()
    )


def _config(overrides: list[str], device: str = "cpu"):
    return load_config(None, [*BASE, *overrides, f"train.device={device}"])


@pytest.fixture
def image_data(monkeypatch):
    """Patch the loader with small uint8 images when the case's model is an image backbone."""

    def use(cfg):
        if cfg.model.name != "mlp":
            c, side = IMAGE_SHAPES.get(cfg.model.name, (3, 16))
            monkeypatch.setattr(loop, "load_data", lambda *_a, **_k: _images(c, side))

    return use


def _rows(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name,overrides", CASES, ids=[c[0] for c in CASES])
def test_trains_through_the_loop_on_cpu(tmp_path, image_data, name, overrides):
    cfg = _config(overrides)
    image_data(cfg)
    run = loop.Trainer(cfg, tmp_path / "run").fit()
    rows = _rows(run)
    epochs = [r for r in rows if "stage" not in r]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for r in rows:
        assert 0.0 <= r["acc/all"] <= 1.0 and r["loss/test"] is not None
    assert any(k.startswith("nc/") for k in rows[-1])
    if cfg.stage2.method != "none":
        assert rows[-1]["stage"] == cfg.stage2.method
    assert (run / "checkpoints" / "last.pt").is_file()


@contextlib.contextmanager
def _fake_trainer(monkeypatch, tmp_path, overrides):
    """A Trainer whose modules, loss, hooks and data are placed on fake "cuda" (entered at placement,
    so that everything the loop creates afterwards is a fake tensor too)."""
    stack = contextlib.ExitStack()
    modes = []
    place = loop.Trainer._place

    def fake_place(self):
        modes.append(stack.enter_context(fake_cuda(monkeypatch)))
        return place(self)

    monkeypatch.setattr(loop.Trainer, "_place", fake_place)
    with stack:
        cfg = _config(overrides, device="cuda")
        trainer = loop.Trainer(cfg, tmp_path / "run")
        yield trainer, modes[0]
    trainer.close()


@pytest.mark.parametrize("name,overrides", CASES, ids=[c[0] for c in CASES])
def test_trains_through_the_loop_on_fake_cuda(monkeypatch, tmp_path, image_data, name, overrides):
    image_data(_config(overrides))
    with _fake_trainer(monkeypatch, tmp_path, overrides) as (t, mode):
        for p in [*t.model.parameters(), *t.head.parameters(), *t.head.buffers(), *t.loss_fn.buffers()]:
            assert p.device.type == "cuda"
        t._train_epoch()  # warm-up: the nearest-ETF head reads the host until every class is seen
        mode.syncs.clear()
        t._train_epoch()
        # no host read inside a step: the loss is read every train.log_every steps and at the end
        assert sum(mode.syncs.values()) <= 1 + t.steps_per_epoch // t.cfg.train.log_every, dict(mode.syncs)
        evaluate(t.model, t.head, t.loss_fn, t.data, t.device, nc=False, bs=32)
        if t.cfg.stage2.method != "none":
            t.cfg.train.nc_tracking = False  # NC metrics need values: tests/metrics/test_device.py
            t._stage2()


@pytest.mark.parametrize(
    "overrides",
    [["train.nc_source=online"], ["train.mixup_alpha=0.2"]],  # mixup mixes the features online NC reads
    ids=["online-nc", "mixup"],
)
def test_host_reads_per_step_before_and_after(monkeypatch, tmp_path, overrides):
    """The host synchronisations of 8 training steps with all three SpA strategies and online NC tracking
    or mixup (the fake-CUDA counter: host reads and blocking host-to-device copies): today 1 (the
    end-of-epoch finiteness check). Before the index order moved to the device once per epoch, 2 blocking
    copies of batch indices per step where the data lives on the GPU."""
    with _fake_trainer(monkeypatch, tmp_path, ["align.strategies=[proj,slerp,reg]", *overrides]) as (t, mode):
        mode.syncs.clear()
        t._train_epoch()
        assert t.steps_per_epoch >= 4
        assert sum(mode.syncs.values()) == 1, dict(mode.syncs)


def test_augmented_batches_reach_the_gpu_without_a_blocking_copy(monkeypatch):
    """preprocess draws crops and flips on the host (the same on every device) and copies them, and the
    normalisation constants, without blocking: a blocking host-to-device copy waits for all the stream's
    queued work. Before, 5 such copies per augmented step; the fake-CUDA counter now counts them."""
    from nclab.train.data_setup import preprocess

    data = _images(3, 16)
    with fake_cuda(monkeypatch) as mode:
        xb = torch.zeros(8, 3, 16, 16, dtype=torch.uint8).to("cuda", non_blocking=True)
        mode.syncs.clear()
        out = preprocess(xb, data, augment=True, generator=torch.Generator().manual_seed(0))
        assert out.device.type == "cuda" and tuple(out.shape) == (8, 3, 16, 16)
        assert sum(mode.syncs.values()) == 0, dict(mode.syncs)
        torch.zeros(3).to("cuda")  # the counter sees a blocking copy
        assert mode.syncs == {"h2d": 1}


@pytest.mark.parametrize("augment", [False, True], ids=["plain", "augment"])
def test_a_step_on_gpu_resident_images_copies_only_its_random_draws(monkeypatch, tmp_path, image_data, augment):
    """Where the images live on the GPU, an epoch copies its index order once and a step copies only
    what it draws on the host (an augmented step's crops and flips: 3). Before, the normalisation
    constants too, 2 more copies every step."""
    overrides = ["model.name=cnn_small", "train.data_on_device=on", f"data.augment={str(augment).lower()}"]
    image_data(_config(overrides))
    with _fake_trainer(monkeypatch, tmp_path, overrides) as (t, mode):
        mode.copies.clear()
        t._train_epoch()
        assert t.steps_per_epoch >= 2
        assert mode.copies["h2d"] == 1 + (3 * t.steps_per_epoch if augment else 0), dict(mode.copies)


def test_nearest_etf_head_trains_through_nclab_train(tmp_path):
    """B5: the nearest-ETF head edited its weight between forward and backward ("modified by an
    inplace operation" at the first backward). Trained with the command a user runs."""
    from nclab.cli import main

    sections: dict[str, list[str]] = {}  # BASE ("section.key=value") as a YAML file of flow mappings
    for override in BASE:
        key, value = override.split("=", 1)
        section, field = key.split(".", 1)
        sections.setdefault(section, []).append(f"{field}: {value}")
    cfg = tmp_path / "nearest.yaml"
    cfg.write_text("".join(f"{s}: {{{', '.join(v)}}}\n" for s, v in sections.items()))
    run = tmp_path / "r"
    assert main(["train", str(cfg), "head.name=nearest_etf", "train.epochs=3", "--run-dir", str(run)]) == 0
    rows = _rows(run)
    assert len(rows) == 3 and rows[-1]["head/classes_seen"] == 1.0
    head_w = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["head"]["weight"]
    g = head_w.double() @ head_w.double().T  # still a simplex ETF after training
    k = g.shape[0]
    assert torch.allclose(g, (k * torch.eye(k, dtype=g.dtype) - 1) / (k - 1), atol=1e-5)


def test_steps_per_epoch_drops_a_tail_smaller_than_the_ranks():
    from nclab.train.loop import steps_per_epoch

    assert steps_per_epoch(65, 32, 1) == 3  # one process keeps its last sample
    assert steps_per_epoch(65, 32, 2) == 2  # 1 sample for 2 ranks: one rank would get an empty batch
    assert steps_per_epoch(66, 32, 2) == 3
    assert steps_per_epoch(1, 32, 4) == 1


def test_amp_dtypes():
    from nclab.train.loop import amp_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert amp_dtype("auto", cuda) == torch.float16 and amp_dtype("on", cuda) == torch.float16
    assert amp_dtype("bf16", cpu) == amp_dtype("bf16", cuda) == torch.bfloat16
    assert amp_dtype("auto", cpu) is None and amp_dtype("on", cpu) is None and amp_dtype("off", cuda) is None


def test_bf16_deterministic_and_resume_across_amp_settings(tmp_path):
    """bf16 autocast trains on the CPU; train.deterministic is restored after the run; a run saved
    with AMP off (empty scaler state) resumes under another AMP setting."""
    cfg = _config(["train.amp=bf16", "train.deterministic=true", "train.epochs=1"])
    loop.Trainer(cfg, tmp_path / "a").fit()
    assert not torch.are_deterministic_algorithms_enabled()
    cfg = _config(["train.epochs=1"])
    loop.Trainer(cfg, tmp_path / "b").fit()
    more = _config(["train.epochs=2", "train.amp=bf16"])
    loop.Trainer(more, tmp_path / "b", resume=True).fit()
    assert [r["epoch"] for r in _rows(tmp_path / "b")] == [1, 2]


def test_resume_with_other_hooks_is_a_clear_error(tmp_path):
    from nclab.errors import NclabError

    loop.Trainer(_config(["train.epochs=1", "align.strategies=[slerp]"]), tmp_path / "r").fit()
    with pytest.raises(NclabError, match="SpASlerp"):
        loop.Trainer(_config(["train.epochs=2", "align.strategies=[proj]"]), tmp_path / "r", resume=True)


def test_library_level_resume(tmp_path):
    """Trainer.resume(run_dir, overrides) continues a run with its own config.yaml (Config.from_run_dir)."""
    from nclab.train.config import Config

    loop.Trainer(_config(["train.epochs=1"]), tmp_path / "r").fit()
    cfg = Config.from_run_dir(tmp_path / "r", ["train.epochs=2"])
    assert cfg.train.epochs == 2 and cfg.data.num_classes == 4
    loop.Trainer.resume(tmp_path / "r", ["train.epochs=2"]).fit()
    assert [r["epoch"] for r in _rows(tmp_path / "r")] == [1, 2]


def test_a_run_that_cannot_start_leaves_nothing_behind(tmp_path):
    """A misspelt option fails after the run lock is taken: the lock is released and the new run
    directory removed again."""
    from nclab.errors import NclabError

    with pytest.raises(NclabError, match="hiddne"):
        loop.Trainer(_config(["model.kwargs.hiddne=64"]), tmp_path / "new")
    assert not (tmp_path / "new").exists()
    loop.Trainer(_config(["train.epochs=1"]), tmp_path / "new").fit()  # and the directory is usable


def test_a_diverged_run_says_so_in_its_rows(tmp_path):
    """A non-finite loss stops the run with a clear error and a row flagged ``diverged`` (read by
    ``nclab table`` and ``nclab sweep``)."""
    from nclab.errors import NclabError
    from nclab.rundir import RunDir

    with pytest.raises(NclabError, match="NaN or infinite"):
        loop.Trainer(_config(["optim.lr=1e30", "train.epochs=1"]), tmp_path / "r").fit()
    assert _rows(tmp_path / "r")[-1]["diverged"] is True and RunDir(tmp_path / "r").is_diverged()


def test_train_nc_rcond_sets_the_rank_of_sigma_b(tmp_path):
    """train.nc_rcond reaches the NC metrics of every evaluation (train and test features)."""
    rows = _rows(loop.Trainer(_config(["train.epochs=1", "train.nc_rcond=0.999"]), tmp_path / "a").fit())
    assert rows[-1]["nc/nc1_rank"] == 1 and rows[-1]["nc_test/nc1_rank"] == 1
    rows = _rows(loop.Trainer(_config(["train.epochs=1"]), tmp_path / "b").fit())
    assert rows[-1]["nc/nc1_rank"] == 3  # K - 1 for K = 4 classes
