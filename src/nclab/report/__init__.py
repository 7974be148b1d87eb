"""Reports from run directories: figures (matplotlib, imported lazily) and a self-contained HTML page.

Nothing else in nclab imports this package.
"""

from nclab.report.rundir import Run, load_run


def build_report(run_dirs, out, *, rcond=None):  # noqa: ANN001, ANN201 - lazy wrapper (no matplotlib at import)
    """See :func:`nclab.report.html.build_report`."""
    from nclab.report.html import build_report as _build

    return _build(run_dirs, out, rcond=rcond)


__all__ = ["Run", "build_report", "load_run"]
