"""Errors of the synthesis and timing flows."""

from hw.errors import MixPEError

__all__ = ["SynthError", "TimingError"]


class SynthError(MixPEError, RuntimeError):
    """Synthesis could not produce a valid report; the message says why (with Yosys log lines)."""


class TimingError(SynthError):
    """Static timing could not run or gave no valid result: a missing ``sta``, a Liberty file without
    timing tables, a netlist OpenSTA cannot link; the message says what is missing and how to fix it."""
