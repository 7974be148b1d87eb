"""`nclab measure` (nclab.commands.measure): JSON against the reference, the table, bad files exit 2 with one
line, --rcond (the measurement itself: tests/metrics/test_measure.py)."""

import json

import numpy as np
import pytest
import torch

from nclab.cli import main
from tests.metrics.reference import long_tailed, reference


@pytest.fixture
def feature_file(tmp_path):
    h, y, w, b, counts = long_tailed(k=5, d=4, seed=21)
    path = tmp_path / "feats.npz"
    np.savez(path, features=h.astype(np.float32), labels=y, weights=w, bias=b, counts=np.array(counts))
    return path, (h, y, w, b)


def test_json_output_matches_reference(feature_file, capsys):
    path, (h, y, w, b) = feature_file
    assert main(["measure", str(path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    ref = reference(h.astype(np.float32).astype(np.float64), y, w, b)
    assert res["nc1"] == pytest.approx(ref["nc1"], rel=1e-4)
    assert res["nc4"] == pytest.approx(ref["nc4"])


def test_table_output_and_pt_file(tmp_path, capsys):
    h, y, w, b, _ = long_tailed(k=4, d=3, seed=22)
    path = tmp_path / "f.pt"
    torch.save({"features": torch.tensor(h), "labels": torch.tensor(y)}, path)
    assert main(["measure", str(path), "--center", "balanced"]) == 0
    out = capsys.readouterr().out
    assert "nc1" in out and "center balanced" in out and "few" in out


@pytest.mark.parametrize(
    "content,msg",
    [
        (None, "no such file"),
        (b"not a zip", "cannot read"),
        ({"features": np.zeros((4, 2))}, "lacks key(s) labels"),
        ({"features": np.array([[np.nan, 1], [1, 2]]), "labels": np.array([0, 1])}, "NaN or Inf"),
    ],
)
def test_bad_files_exit_2_with_one_line(tmp_path, cli, content, msg):
    path = tmp_path / "bad.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        np.savez(path, **content)
    r = cli("measure", str(path))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0] and "Traceback" not in r.stderr


def test_rcond_and_the_readable_columns_first(tmp_path, capsys):
    """`nclab measure --rcond` sets the rank tolerance of Sigma_B^+ (against the float64 reference);
    the table leads with CDNV and the stable NC1, then the exact NC1 with its rank."""
    from tests.metrics.reference import ill_conditioned_means

    h, y = ill_conditioned_means()[:2]
    path = tmp_path / "ill.npz"
    np.savez(path, features=np.asarray(h, dtype=np.float64), labels=np.asarray(y))
    assert main(["measure", str(path), "--json", "--rcond", "1e-3"]) == 0
    res = json.loads(capsys.readouterr().out)
    ref = reference(np.asarray(h, dtype=np.float64), np.asarray(y), rcond=1e-3)
    assert res["nc1"] == pytest.approx(ref["nc1"], rel=1e-6)
    assert main(["measure", str(path)]) == 0
    lines = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()[1:5]]
    assert lines == ["nc1_cdnv", "nc1_stable", "nc1", "nc1_rank"]
