"""Text that nclab prints or writes: one number, a mean +- std cell, a plain-text and a Markdown table.

The commands (``nclab ufm``, ``nclab measure``, ``nclab demo``), ``nclab table`` and the HTML report all
write numbers through this module, so that a value reads the same everywhere: 4 significant digits, a
missing value (None) as ``-``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["inline", "markdown_table", "mean_std", "num", "text_table"]


def num(v: Any, *, digits: int = 4) -> str:
    """One value: a float with ``digits`` significant digits (``inf``, ``nan`` as Python writes them),
    None as ``-``, anything else as ``str``.

    Example:
        >>> num(0.0123456), num(1234567.0), num(None), num(9), num(float("inf")), num(0.7452, digits=3)
        ('0.01235', '1.235e+06', '-', '9', 'inf', '0.745')
    """
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def inline(values: Mapping[str, Any]) -> str:
    """Named values on one line, ``name value`` pairs two spaces apart.

    Example:
        >>> inline({"nc1": 0.012345, "nc3": None})
        'nc1 0.01235  nc3 -'
    """
    return "  ".join(f"{k} {num(v)}" for k, v in values.items())


def mean_std(mean: float, std: float | None, *, percent: bool = False, signed: bool = False) -> str:
    """A table cell ``mean ± std`` (``mean`` alone when ``std`` is None).

    ``percent``: the values are fractions, written x100 with 2 decimals. Otherwise 4 decimals below 10 in
    magnitude, else 3 significant digits (the std 2). ``signed`` (a difference): the mean with its sign,
    2 decimals, or 4 when both mean and std are below 0.01 in magnitude.

    Example:
        >>> mean_std(0.7012, 0.0153, percent=True), mean_std(0.05, None), mean_std(123.4, 5.67)
        ('70.12 ± 1.53', '0.0500', '123 ± 5.7')
        >>> mean_std(-0.004, 0.001, signed=True), mean_std(0.012, None, percent=True, signed=True)
        ('-0.0040 ± 0.0010', '+1.20')
    """
    scale = 100.0 if percent else 1.0
    m, sd = scale * mean, (scale * std if std is not None else None)
    if signed:
        f = ".2f" if percent or abs(m) >= 0.01 or (sd or 0) >= 0.01 else ".4f"
        return f"{m:+{f}}" + (f" ± {sd:{f}}" if sd is not None else "")
    if percent:
        return f"{m:.2f}" + (f" ± {sd:.2f}" if sd is not None else "")
    if abs(m) < 10:
        return f"{m:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")
    return f"{m:.3g}" + (f" ± {sd:.2g}" if sd is not None else "")


def text_table(
    header: Sequence[str] | None,
    rows: Iterable[Sequence[str]],
    *,
    align: str,
    widths: Sequence[int] = (),
    indent: str = "  ",
) -> str:
    """Columns two spaces apart, each as wide as its widest cell (header included) and at least
    ``widths[i]``; ``align`` holds ``<`` (left) or ``>`` (right) per column. No trailing spaces.

    Example:
        >>> print(text_table(["class", "acc"], [["0", "0.91"], ["10", "0.5"]], align="><"))
          class  acc
              0  0.91
             10  0.5
    """
    body = [list(r) for r in rows]
    lines = ([list(header)] if header is not None else []) + body
    if any(len(r) != len(align) for r in lines):
        raise ValueError(f"text_table: every row needs {len(align)} cells (one per align character)")
    w = [max([len(r[i]) for r in lines] + [widths[i] if i < len(widths) else 0]) for i in range(len(align))]
    return "\n".join(
        (indent + "  ".join(f"{c:{a}{n}}" for c, a, n in zip(r, align, w))).rstrip() for r in lines
    )


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown (GitHub) table: a header row, a ``|---|`` rule, one line per row.

    Example:
        >>> print(markdown_table(["run", "acc (%)"], [["a", "70.00"]]))
        | run | acc (%) |
        |---|---|
        | a | 70.00 |
    """
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
