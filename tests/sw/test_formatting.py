"""The one number formatter of the reports (sw/formatting.py)."""

from sw.formatting import format_number


def test_format_number():
    assert format_number(None) == "-"
    assert format_number(None, missing="—") == "—"
    assert format_number(1234567) == "1,234,567"
    assert format_number(1234567, 2) == "1,234,567"              # integers keep no decimals
    assert format_number(1234.5678, 2) == "1,234.57"
    assert format_number(1234.5) == "1,234"                       # round half to even
    assert format_number(1234.5678, 3, thousands=False) == "1234.568"
    assert format_number(2048, thousands=False) == "2048"
