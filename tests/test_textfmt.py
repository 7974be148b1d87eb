"""nclab.textfmt: the one place numbers and tables are written, checked against hand-written text."""

import math

import pytest

from nclab.textfmt import inline, markdown_table, mean_std, num, text_table


def test_num_four_significant_digits_and_missing_values():
    assert num(0.000123456) == "0.0001235"
    assert num(-0.0564912) == "-0.05649"
    assert num(12345.6) == "1.235e+04"
    assert num(0.0) == "0"
    assert (num(math.inf), num(-math.inf), num(math.nan)) == ("inf", "-inf", "nan")
    assert (num(None), num(7), num("few")) == ("-", "7", "few")
    assert num(0.74521, digits=3) == "0.745"


def test_inline_pairs():
    assert inline({"W": 0.15094, "H": None, "rank": 9}) == "W 0.1509  H -  rank 9"
    assert inline({}) == ""


@pytest.mark.parametrize(
    "args, kw, text",
    [
        ((0.7012, 0.01534), {"percent": True}, "70.12 ± 1.53"),  # x100, 2 decimals
        ((0.5, None), {"percent": True}, "50.00"),
        ((0.123456, 0.0011), {}, "0.1235 ± 0.0011"),  # below 10: 4 decimals
        ((-9.99994, None), {}, "-9.9999"),
        ((1234.5, 56.78), {}, "1.23e+03 ± 57"),  # 3 significant digits, std 2
        ((0.012, 0.003), {"percent": True, "signed": True}, "+1.20 ± 0.30"),
        ((-0.0042, 0.0013), {"signed": True}, "-0.0042 ± 0.0013"),  # both below 0.01: 4 decimals
        ((-0.0042, 0.05), {"signed": True}, "-0.00 ± 0.05"),  # the std sets 2 decimals
        ((0.25, None), {"signed": True}, "+0.25"),
    ],
)
def test_mean_std_cells(args, kw, text):
    assert mean_std(*args, **kw) == text


def test_text_table_widths_alignment_and_no_trailing_spaces():
    text = text_table(
        ["count", "w", "cos"], [["500", "1.5", "-0.1"], ["5", "12.25", "-"]], align="><<", widths=[5, 4]
    )
    assert text.splitlines() == [
        "  count  w      cos",
        "    500  1.5    -0.1",
        "      5  12.25  -",
    ]
    # no header; a cell wider than the minimum widens its column for every row
    assert (
        text_table(None, [["a", "1"], ["long_key", "2"]], align="<<", indent="") == "a         1\nlong_key  2"
    )
    assert text_table(["x"], [], align=">") == "  x"
    with pytest.raises(ValueError, match="2 cells"):
        text_table(["a", "b"], [["1"]], align="<<")


def test_markdown_table():
    assert markdown_table(["run", "seeds"], [["a", "3"], ["b", "1"]]) == (
        "| run | seeds |\n|---|---|\n| a | 3 |\n| b | 1 |"
    )
    assert markdown_table(["x"], []) == "| x |\n|---|"
