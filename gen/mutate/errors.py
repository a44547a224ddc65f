"""Errors of mutation testing."""

from hw.errors import MixPEError

__all__ = ["MutateError"]


class MutateError(MixPEError, RuntimeError):
    """Yosys could not list, apply or check mutations, or the unmutated design failed its tests."""
