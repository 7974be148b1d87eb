"""Experiments as data: sweep specs expanded to runs (:mod:`~nclab.sweep.spec`), run by an engine
(:mod:`~nclab.sweep.engine`: local processes or Ray tasks; :mod:`~nclab.sweep.execute`: one run), and
tables aggregated from run directories (:mod:`~nclab.sweep.table`). Runs start through the CLI and are
read only through :mod:`nclab.rundir`; nothing here knows the training loop's internals. docs/sweep.md.
"""

from nclab.sweep.engine import run_sweep, summary
from nclab.sweep.spec import Run, SweepSpec, expand, load_spec
from nclab.sweep.table import aggregate, find_runs, format_rows, load_runs, write_block

__all__ = [
    "Run",
    "SweepSpec",
    "aggregate",
    "expand",
    "find_runs",
    "format_rows",
    "load_runs",
    "load_spec",
    "run_sweep",
    "summary",
    "write_block",
]
