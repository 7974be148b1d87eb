"""Commands that need an optional extra say which one, in one line, with exit code 2.

A venv without the extras is expensive to build, so a subprocess blocks the imports instead
(``sys.modules[name] = None`` makes ``import name`` raise ImportError, as an absent package does).
torchmetrics decides from the installed distributions' metadata, not from an import, whether it may
import matplotlib, so it is imported before the block (without matplotlib installed it imports fine).
"""

import json
import subprocess
import sys

import pytest

from nclab.errors import NclabError
from nclab.extras import MissingExtraError, missing_extra, require
from tests.conftest import ROOT, cli_env

SCRIPT = r"""
import contextlib, io, json, sys
import torchmetrics
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from nclab.cli import main
out = []
for argv in json.loads(sys.argv[2]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    out.append([code, err.getvalue()])
print(json.dumps(out))
"""


def _run_blocked(blocked: str, commands: list[list[str]], cwd) -> list[tuple[int, str]]:
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, blocked, json.dumps(commands)],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=cwd,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return [tuple(x) for x in json.loads(r.stdout.strip().splitlines()[-1])]


def test_commands_without_matplotlib_or_flower_name_the_extra(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "classes.json").write_text(json.dumps({"names": ["a", "b"], "counts": [10, 2]}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "acc/all": 0.5}) + "\n")
    commands = [
        ["demo", "--out", str(tmp_path / "demo")],
        ["report", str(run)],
        ["ufm", "reproduce", "hong-ling", "--out", str(tmp_path / "figs"), "--quick"],
        ["fed", str(ROOT / "configs" / "recipes" / "fed_synthetic.yaml"), "--run-dir", str(tmp_path / "fed")],
    ]
    results = _run_blocked("matplotlib,flwr", commands, tmp_path)
    for argv, (code, err), extra in zip(commands, results, ["report", "report", "report", "fed"]):
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"pip install 'nclab[{extra}]'" in err and err.startswith(f"nclab {argv[0]}: error: "), err
    # nothing was half done before the message
    assert not (tmp_path / "demo").exists() and not (tmp_path / "figs").exists()
    assert not (run / "report.html").exists()


def test_require_and_missing_extra(monkeypatch):
    assert require("math").sqrt(9.0) == 3.0
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(
        MissingExtraError, match=r"ImageNet-LT images need Pillow: pip install 'nclab\[data\]'"
    ):
        require("PIL", what="ImageNet-LT images")
    assert issubclass(MissingExtraError, NclabError)
    monkeypatch.setitem(sys.modules, "somepkg_nclab_test", None)
    with pytest.raises(MissingExtraError, match="pip install somepkg_nclab_test"):
        require("somepkg_nclab_test")
    err = ModuleNotFoundError("No module named 'ray'", name="ray")
    assert missing_extra(err) == "this command needs Ray: pip install 'nclab[sweep]'"
    assert missing_extra(ModuleNotFoundError("x", name="numpy")) is None


def test_tensorboard_without_the_package_names_the_extra(monkeypatch, tmp_path):
    from nclab.train.tensorboard import TensorBoardLogger

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(MissingExtraError, match=r"nclab\[tensorboard\]"):
        TensorBoardLogger(tmp_path)
