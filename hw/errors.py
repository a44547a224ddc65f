"""The one base of every error this project raises on purpose.

Every error class of the project derives from :class:`MixPEError` and keeps the built-in base it
had (``ValueError`` for bad input, ``RuntimeError`` for a failed tool or check), so callers can
catch either. The CLI catches :class:`MixPEError` once: a bad input (a ``ValueError`` subclass)
exits with code 2, a failed tool or check with code 1, both as one line and never a traceback.
"""

__all__ = ["MixPEError", "exit_code"]


class MixPEError(Exception):
    """Base of every deliberate MixPE error; the message is one line naming what was wrong."""


def exit_code(error: MixPEError) -> int:
    """2 for bad input (``ValueError``), 1 for a failed tool, build or check."""
    return 2 if isinstance(error, ValueError) else 1
