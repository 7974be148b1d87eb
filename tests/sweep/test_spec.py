"""Sweep specs: the cartesian product, run naming, after chains and clear one-line errors (no training)."""

from pathlib import Path

import pytest

from nclab.cli import main
from nclab.errors import ConfigError
from nclab.sweep import expand, load_spec

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPE = CONFIGS / "recipes" / "synthetic.yaml"


def _spec(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(text.replace("RECIPE", str(RECIPE)).replace("METHODS", str(CONFIGS / "methods")))
    return p


GRID = """
base: [RECIPE]
overrides: [train.epochs=2]
axes:
  imbalance: {"10": [data.imbalance=10], "50": [data.imbalance=50]}
  method:
    ce: [METHODS/ce.yaml]
    la: [METHODS/la.yaml, loss.kwargs.tau=0.5]
    crt: {from: {method: ce}, overrides: [stage2.method=crt]}
seeds: [0, 3]
resources: {cpus: 2, gpus: 0.5}
"""


def test_cartesian_product_and_run_naming(tmp_path):
    spec = load_spec(_spec(tmp_path, GRID))
    assert spec.resources == {"cpus": 2.0, "gpus": 0.5}
    runs = expand(spec, tmp_path / "out")
    assert len(runs) == 2 * 3 * 2
    labels = {r.label for r in runs}
    assert "imbalance=50/method=la/seed=3" in labels
    la = next(r for r in runs if r.label == "imbalance=50/method=la/seed=3")
    assert la.dir == tmp_path / "out" / "imbalance=50" / "method=la" / "seed=3"
    assert la.files == [str(RECIPE), str(CONFIGS / "methods" / "la.yaml")]
    assert la.overrides == ["train.epochs=2", "data.imbalance=50", "loss.kwargs.tau=0.5", "train.seed=3"]
    assert la.order == (1, 1) and la.source is None
    # an `after` run starts from the run with the named choice, the other axes and the seed the same
    crt = next(r for r in runs if r.label == "imbalance=10/method=crt/seed=3")
    assert crt.source.label == "imbalance=10/method=ce/seed=3"
    assert crt.overrides == ["stage2.method=crt"] and crt.files == []
    pos = {r.label: i for i, r in enumerate(runs)}
    assert all(pos[r.source.label] < pos[r.label] for r in runs if r.source)


def test_a_run_config_in_a_folder_with_an_equals_sign_is_read_from_the_specs_folder(tmp_path, monkeypatch):
    """A base file such as a sweep run's record (method=ce/config.yaml) is a file relative to the spec,
    wherever the sweep is started from."""
    (tmp_path / "method=ce").mkdir()
    (tmp_path / "method=ce" / "config.yaml").write_text(RECIPE.read_text())
    spec = _spec(tmp_path, "base: [method=ce/config.yaml]\naxes: {m: {a: [train.epochs=1]}}\n")
    monkeypatch.chdir(tmp_path / "method=ce")
    (run,) = expand(load_spec(spec), tmp_path / "out")
    assert run.files == [str(tmp_path / "method=ce" / "config.yaml")]
    assert run.overrides == ["train.epochs=1", "train.seed=0"]


@pytest.mark.parametrize(
    "text,msg",
    [
        ("base: [RECIPE]\naxes: {}\n", "axes must be a non-empty mapping"),
        ("base: [RECIPE]\naxes: {method: {}}\n", "axis 'method' is empty"),
        ("axes: {m: {crt: {from: {methd: ce}}}}\n", "unknown axis 'methd'"),
        ("axes: {m: {a: [], crt: {from: {m: ce}}}}\n", "matches no run"),
        ("axes: {m: {a: [nope.yaml]}}\n", "does not exist"),
        ("axes: {m: {a: [train.epochs]}}\n", "neither a config file"),
        ("axis: {m: {a: []}}\n", "unknown keys"),
        ("axes: {m: {a: []}}\nseeds: []\n", "seeds must be"),
        ("axes: {m: {a: []}}\ncommand: eval\n", "command must be train or fed"),
        ("axes: [\n", "cannot read sweep spec"),
    ],
)
def test_bad_specs_are_one_line_errors(tmp_path, text, msg):
    p = _spec(tmp_path, text)
    with pytest.raises(ConfigError, match=msg):
        load_spec(p)


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["sweep", str(tmp_path / "missing.yaml"), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    bad = _spec(tmp_path, "base: [RECIPE]\naxes: {m: {a: [train.epoch=3]}}\n")  # a key the schema lacks
    assert main(["sweep", str(bad), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "run m=a/seed=0" in err and "Valid keys" in err and len(err.strip().splitlines()) == 1
    assert main(["table", str(tmp_path)]) == 2
    assert "no complete runs" in capsys.readouterr().err


def test_dry_run_lists_the_runs(tmp_path, capsys):
    assert main(["sweep", str(_spec(tmp_path, GRID)), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "12 runs"
    assert any(line.startswith("after") and "(from imbalance=10/method=ce/seed=0)" in line for line in out)
    assert any(line.startswith("start") and "--run-dir" in line for line in out)
    assert not (tmp_path / "out").exists()


def test_only_selects_runs_and_brings_the_sources_of_after_runs(tmp_path, capsys):
    from nclab.sweep.spec import select

    spec = load_spec(_spec(tmp_path, GRID))
    runs = expand(spec, tmp_path / "out")
    labels = [r.label for r in select(spec, runs, ["method=la", "method=crt", "seed=3"])]
    assert labels == [  # in the grid's order, crt's source (ce) with it
        "imbalance=10/method=ce/seed=3",
        "imbalance=10/method=la/seed=3",
        "imbalance=10/method=crt/seed=3",
        "imbalance=50/method=ce/seed=3",
        "imbalance=50/method=la/seed=3",
        "imbalance=50/method=crt/seed=3",
    ]
    assert [r.label for r in select(spec, runs, ["imbalance=50", "method=ce", "seed=0"])] == [
        "imbalance=50/method=ce/seed=0"
    ]
    assert select(spec, runs, []) == runs
    argv = ["sweep", str(spec.path), "--out", str(tmp_path / "out"), "--dry-run", "--only", "method=la"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "4 runs"


@pytest.mark.parametrize(
    "term,msg",
    [
        ("method", "--only takes AXIS=CHOICE or seed=N, got 'method'"),
        ("loss=ce", "no axis 'loss' (axes: imbalance, method)"),
        ("method=focal", "axis method has no choice 'focal' (choices: ce, la, crt)"),
        ("seed=1", "the spec's seeds are [0, 3]"),
    ],
)
def test_a_bad_only_is_a_one_line_error(tmp_path, capsys, term, msg):
    argv = ["sweep", str(_spec(tmp_path, GRID)), "--out", str(tmp_path / "out"), "--only", term]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
