"""Floating-point constants of the MixPE numerics, and Higham's gamma_n, defined once for the Python side.

Every Python module (golden models, host software, testbench case builders) takes these from
here; the RTL keeps its own Amaranth constants in :mod:`hw.fp_common` (``hw`` imports nothing
above it), and ``tests/golden/test_numerics.py`` checks that the values both define agree.
Imports nothing heavy (no torch), so light modules may use it.
"""

from __future__ import annotations

from hw.errors import MixPEError

__all__ = ["NumericsError", "FP16_MAX", "FP16_MAX_BITS", "FP16_MIN_NORMAL", "FP32_MAX", "FP32_MIN_NORMAL",
           "CANONICAL_NAN_BITS", "FP32_UNIT_ROUNDOFF", "FP64_UNIT_ROUNDOFF", "gamma"]

#: Largest finite IEEE binary16 value, and its raw code.
FP16_MAX = 65504.0
FP16_MAX_BITS = 0x7BFF
#: Smallest normal binary16 magnitude; the hardware flushes FP16 subnormals, so scales and offsets
#: are zero or at least this.
FP16_MIN_NORMAL = 2.0 ** -14
#: Largest finite IEEE binary32 value, (2 - 2**-23) * 2**127.
FP32_MAX = (2.0 - 2.0 ** -23) * 2.0 ** 127
#: Smallest normal binary32 magnitude; the FP32 units flush results below it (FTZ) and read inputs
#: below it as zero (DAZ).
FP32_MIN_NORMAL = 2.0 ** -126
#: The one NaN every FP32 unit produces: quiet, positive, payload 0.
CANONICAL_NAN_BITS = 0x7FC00000
#: Unit roundoff of round-to-nearest binary32 and binary64.
FP32_UNIT_ROUNDOFF = 2.0 ** -24
FP64_UNIT_ROUNDOFF = 2.0 ** -53


class NumericsError(MixPEError, ValueError):
    """A numeric helper got an argument outside its domain; the message names it and what is allowed."""


def gamma(n: int, unit_roundoff: float) -> float:
    """Higham's gamma_n = n*u / (1 - n*u): bound on |prod (1 + delta_i)^(+-1) - 1| over n roundings
    of unit roundoff u ("Accuracy and Stability of Numerical Algorithms", Lemma 3.1); needs n*u < 1."""
    if not 0 <= n * unit_roundoff < 1:
        raise NumericsError(f"gamma: n={n} with unit roundoff {unit_roundoff!r}; needs 0 <= n*u < 1")
    return n * unit_roundoff / (1 - n * unit_roundoff)
