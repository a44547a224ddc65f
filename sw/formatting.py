"""How numbers are written in the Markdown reports (``make synth``, ``make eval-smollm``)."""

from __future__ import annotations

__all__ = ["format_number"]


def format_number(value, digits: int = 0, *, thousands: bool = True, missing: str = "-") -> str:
    """A table cell: ``missing`` for None, an integer as it is, a float with ``digits`` decimals;
    with ``thousands`` the integer part has comma separators (``1,234``)."""
    if value is None:
        return missing
    separator = "," if thousands else ""
    if isinstance(value, float):
        return f"{value:{separator}.{digits}f}"
    return f"{value:{separator}}"
