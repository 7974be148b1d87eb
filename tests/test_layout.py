"""Tests mirror the sources (issue #17): every module with logic in a mirrored package has its test
module, ``src/nclab/<pkg>/<mod>.py`` -> ``tests/<pkg>/test_<mod>.py`` and ``src/nclab/<mod>.py`` ->
``tests/test_<mod>.py``. Tests of behaviour across modules (properties, bad inputs, devices, DDP) may
live in further files named for what they test.

Covers the whole of ``src/nclab``: every package and every top-level module, found on disk, so that a
new module needs its test module too. ``__init__.py`` and ``__main__.py`` are left out (re-exports and the
entry point; their behaviour is tested through the modules they expose).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "nclab"
TESTS = ROOT / "tests"

SKIPPED = ("__init__.py", "__main__.py")
MIRRORED_PACKAGES = tuple(sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()))
MIRRORED_TOP_LEVEL = tuple(sorted(p.stem for p in SRC.glob("*.py") if p.name not in SKIPPED))


def has_logic(path: Path) -> bool:
    """A module defines a function or a class at its top level (re-export and constant modules do not)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in tree.body)


def mirrored(path: Path) -> Path:
    rel = path.relative_to(SRC)
    return TESTS.joinpath(*rel.parts[:-1], f"test_{rel.stem}.py")


def modules() -> list[Path]:
    out = [SRC / f"{name}.py" for name in MIRRORED_TOP_LEVEL]
    for pkg in MIRRORED_PACKAGES:
        out += sorted((SRC / pkg).rglob("*.py"))
    return [p for p in out if p.name not in SKIPPED]


def test_the_check_covers_every_source_module():
    """Every ``.py`` file under src/nclab is checked, or is a package's ``__init__``/``__main__``."""
    checked = set(modules())
    left = [p for p in SRC.rglob("*.py") if p not in checked and p.name not in SKIPPED]
    assert not left, f"source modules the layout check does not see: {left}"
    assert {"train", "fed", "commands", "ufm", "sweep", "report"} <= set(MIRRORED_PACKAGES)
    assert {"cli", "checkpoint", "rundir"} <= set(MIRRORED_TOP_LEVEL)


@pytest.mark.parametrize("pkg", MIRRORED_PACKAGES)
def test_every_module_with_logic_has_its_mirrored_test_module(pkg):
    paths = [p for p in modules() if p.is_relative_to(SRC / pkg) and has_logic(p)]
    missing = [str(mirrored(p).relative_to(ROOT)) for p in paths if not mirrored(p).is_file()]
    assert not missing, f"add the mirrored test modules (tests mirror sources): {missing}"


@pytest.mark.parametrize("name", MIRRORED_TOP_LEVEL)
def test_every_top_level_module_has_its_test_module(name):
    path = SRC / f"{name}.py"
    assert not has_logic(path) or mirrored(path).is_file(), f"add {mirrored(path).relative_to(ROOT)}"


def test_the_checker_sees_logic_and_maps_paths(tmp_path):
    code = tmp_path / "m.py"
    code.write_text('"""doc."""\nX = 1\n')
    assert not has_logic(code)
    code.write_text("def f():\n    pass\n")
    assert has_logic(code)
    assert mirrored(SRC / "metrics" / "stats.py") == TESTS / "metrics" / "test_stats.py"
    assert mirrored(SRC / "errors.py") == TESTS / "test_errors.py"
