"""nclab.train.loop: the Trainer writes the run directory, resumes exactly after a kill, runs stage 2
from the config, validates and measures NC every k evaluations, places a CNN in channels_last."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from nclab.cli import main
from nclab.errors import ConfigError, NclabError
from nclab.train import Trainer, load_config
from tests.conftest import cli_env
from tests.train.helpers import ROOT, SMOKE
from tests.train.helpers import rows as metrics_rows


def test_smoke_run_writes_the_run_directory(tmp_path, capsys):
    assert main(["train", str(SMOKE), "train.epochs=2", "--run-dir", str(tmp_path / "r")]) == 0
    r = tmp_path / "r"
    rows = metrics_rows(r)
    assert [x["epoch"] for x in rows] == [1, 2]
    last = rows[-1]
    for key in (
        "acc/all",
        "acc/many",
        "acc/medium",
        "acc/few",
        "loss/test",
        "loss/train",
        "nc/nc1",
        "nc/nc3",
        "nc_test/nc4",
        "nc/groups/few/minority_collapse",
        "nc/align/ee_ratio_min",
        "head/w_norm_mean",
    ):
        assert key in last, key
    assert len(last["acc/per_class"]) == 6
    classes = json.loads((r / "classes.json").read_text())
    assert classes["counts"] == [120, 65, 36, 19, 10, 6]
    g = np.load(r / "geometry" / "2.npz")
    assert (
        g["means"].shape == (6, 16)
        and g["weights"].shape == (6, 16)
        and list(g["counts"]) == classes["counts"]
    )
    assert "data_checksum" in (r / "config.yaml").read_text()
    # the run directory is measurable without the model
    assert (r / "checkpoints" / "last.pt").is_file()
    with pytest.raises(NclabError, match="already holds a run"):
        Trainer(load_config(SMOKE), r)


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [["train.mixup_alpha=0.4", "data.val_fraction=0.2"], ["train.nc_source=online"]],
    ids=["mixup-val", "online-nc"],
)
def test_killed_run_resumes_exactly(tmp_path, extra):
    full, part = tmp_path / "full", tmp_path / "part"
    args = [str(SMOKE), "train.ckpt_every_steps=1", *extra]
    # every run in a subprocess with the same environment (thread count), so that floats match exactly
    cmd = [sys.executable, "-m", "nclab", "train"]
    assert (
        subprocess.run([*cmd, *args, "--run-dir", str(full)], env=cli_env(), capture_output=True).returncode
        == 0
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "nclab", "train", *args, "--run-dir", str(part)],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    ckpt = part / "checkpoints" / "last.pt"
    while time.time() < deadline:
        if (
            (part / "metrics.jsonl").is_file()
            and (part / "metrics.jsonl").read_text().strip()
            and ckpt.is_file()
        ):
            s = torch.load(ckpt, weights_only=False)
            if s["step_in_epoch"] > 0:  # a mid-epoch checkpoint exists: kill now
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    s = torch.load(ckpt, weights_only=False)
    assert s["epoch"] < 4, "the run finished before it could be killed"
    r = subprocess.run([*cmd, "--resume", str(part)], env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert metrics_rows(part) == metrics_rows(full)


@pytest.mark.parametrize("method", ["crt", "tau_norm", "lws", "wb"])
def test_stage2_methods_from_the_config(tmp_path, method):
    r = tmp_path / method
    assert (
        main(
            [
                "train",
                str(SMOKE),
                "train.epochs=1",
                f"stage2.method={method}",
                "stage2.epochs=1",
                "--run-dir",
                str(r),
            ]
        )
        == 0
    )
    rows = metrics_rows(r)
    assert len(rows) == 2 and rows[-1]["stage"] == method and "acc/all" in rows[-1]
    if method == "tau_norm":
        assert 0.0 <= rows[-1]["stage2/tau"] <= 2.0
    # the backbone of the checkpoint is the one stage 2 used (stage 2 never trains it)
    assert (r / "stage2.done").read_text() == method


def test_channels_last_values(tmp_path):
    """`train.channels_last=on` puts a CNN in channels_last on CPU too; `auto` leaves it off on CPU;
    anything else is a config error."""
    from tests.data.reference import write_idx as _write_idx

    rng = np.random.default_rng(0)
    for pre, n in (("train", 60), ("t10k", 20)):
        _write_idx(tmp_path / f"{pre}-images-idx3-ubyte.gz", rng.integers(0, 256, size=(n, 28, 28)))
        _write_idx(tmp_path / f"{pre}-labels-idx1-ubyte.gz", np.repeat(np.arange(10), n // 10))
    fmnist = ROOT / "configs" / "recipes" / "fmnist_lt.yaml"
    base = [f"data.root={tmp_path}", "data.imbalance=2", "train.epochs=1", "train.batch_size=16"]
    for value, expect in (("off", False), ("auto", False), ("on", True)):
        cfg = load_config(fmnist, [*base, f"train.channels_last={value}", "train.device=cpu"])
        tr = Trainer(cfg, tmp_path / f"run_{value}")
        conv = [m for m in tr.model.modules() if isinstance(m, torch.nn.Conv2d)][-1]  # 32 -> 64 channels
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) is expect, value
    tr.fit()  # the channels_last run trains and evaluates
    assert metrics_rows(tmp_path / "run_on")[-1]["epoch"] == 1
    with pytest.raises(ConfigError, match="train.channels_last"):
        load_config(fmnist, [*base, "train.channels_last=sometimes"])


def test_run_with_validation_and_sparse_nc(tmp_path):
    r = tmp_path / "r"
    args = ["train", str(SMOKE), "train.epochs=3", "data.val_fraction=0.2", "train.nc_every=2"]
    assert main([*args, "stage2.method=tau_norm", "--run-dir", str(r)]) == 0
    rows = [json.loads(x) for x in (r / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in rows] == [1, 2, 3, 3]
    for x in rows:
        assert 0.0 <= x["val/balanced_acc"] <= 1.0 and 0.0 <= x["val/acc"] <= 1.0
    # NC metrics on the 2nd evaluation and the last epoch only
    assert ["nc/nc1" in x for x in rows[:3]] == [False, True, True]
    counts = json.loads((r / "classes.json").read_text())["counts"]
    cfg = load_config(SMOKE)
    from nclab.data.profiles import exponential

    full = exponential(cfg.data.n_max, cfg.data.num_classes, cfg.data.imbalance)
    assert sum(counts) < sum(full) and all(0 < c <= f for c, f in zip(counts, full))
    assert rows[-1]["stage"] == "tau_norm"


def test_evaluating_less_often_or_in_other_batches_changes_no_training(tmp_path):
    """The grids evaluate every 5 or 10 epochs at batch 128 (docs/results.md): evaluation draws no random
    numbers and does not change the model, so the last row equals that of a run evaluating every epoch
    in one batch, up to the float rounding of the evaluation's batching."""
    base = ["train", str(SMOKE), "train.epochs=4", "data.val_fraction=0.2"]
    assert (
        main([*base, "train.eval_every=1", "train.eval_batch_size=4096", "--run-dir", str(tmp_path / "a")])
        == 0
    )
    assert (
        main([*base, "train.eval_every=4", "train.eval_batch_size=7", "--run-dir", str(tmp_path / "b")]) == 0
    )
    a, b = metrics_rows(tmp_path / "a"), metrics_rows(tmp_path / "b")
    assert [x["epoch"] for x in a] == [1, 2, 3, 4] and [x["epoch"] for x in b] == [4]
    for key in ("acc/all", "acc/per_class", "val/acc", "val/balanced_acc"):
        assert a[-1][key] == b[-1][key], key
    for key in ("loss/train", "loss/test", "nc/nc1", "nc/nc3"):
        assert a[-1][key] == pytest.approx(b[-1][key], rel=1e-4), key
    wa = torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)
    wb = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    for k, v in wa["model"].items():
        assert torch.equal(v, wb["model"][k]), k
