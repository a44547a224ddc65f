"""Weight-code and group-scale formats of the core (pure Python: no Amaranth, no torch).

A weight code is ``weight_bits`` wide on the weight stream; the PE multiplies the activation by
its *PE value*, a small signed integer, and the GDU multiplies the group's integer sum by the
group scale decoded to FP32 (:mod:`hw.scale_decode`). The real weight is
``code value x scale``; for FP4 the PE value is twice the E2M1 value, and the factor 1/2 is
folded into the decoded scale as an exact exponent offset (:func:`scale_exponent_offset`).

=============  =========  =========================================================================
format         bits       PE value of code c
=============  =========  =========================================================================
``int``        2 .. 8     c (unsigned; the zero point z is subtracted in the GDU: D = P - z A)
``fp4_e2m1``   4          2 x E2M1(c): sign c[3], exponent c[2:1], mantissa c[0]; 0, +-1, +-2,
                          +-3, +-4, +-6, +-8, +-12 (OCP MX: MXFP4, NVFP4)
``pow2``       2 .. 5     (-1)^c[b-1] x 2^c[b-2:0]: sign and exponent, no zero (DenseShift)
=============  =========  =========================================================================

Group scale formats (one per group, on the group stream's 16-bit scale field):

=============  =========================================================================
``fp16``       IEEE binary16, zero or normal (the first release)
``e8m0``       OCP MX E8M0: 2^(c - 127), c in 0 .. 254 (255 is NaN); MXFP4's scale per 32
``e4m3``       OCP FP8 E4M3 (``fn``: no infinity, S.1111.111 is NaN); NVFP4's scale per 16,
               FireQ's group scale for integer codes
=============  =========================================================================
"""

from __future__ import annotations

__all__ = ["WEIGHT_FORMATS", "SCALE_FORMATS", "FORMAT_WEIGHT_BITS", "E2M1_DOUBLED", "check_formats", "pe_value", "value_max",
           "signed_values", "scale_exponent_offset"]

WEIGHT_FORMATS = ("int", "fp4_e2m1", "pow2")
SCALE_FORMATS = ("fp16", "e8m0", "e4m3")
#: Code widths each weight format allows.
FORMAT_WEIGHT_BITS = {"int": tuple(range(2, 9)), "fp4_e2m1": (4,), "pow2": (2, 3, 4, 5)}
#: Twice the E2M1 magnitude of the low three code bits (exponent, mantissa).
E2M1_DOUBLED = (0, 1, 2, 3, 4, 6, 8, 12)


def pe_value(weight_format: str, weight_bits: int, code: int) -> int:
    """The integer the PE multiplies the activation by for ``code``."""
    sign_bit = 1 << (weight_bits - 1)
    if weight_format == "int":
        return code
    magnitude = E2M1_DOUBLED[code & 7] if weight_format == "fp4_e2m1" else 1 << (code & (sign_bit - 1))
    return -magnitude if code & sign_bit else magnitude


def value_max(weight_format: str, weight_bits: int) -> int:
    """Largest |PE value|: ``2**b - 1``, 12 (FP4) or ``2**(2**(b-1) - 1)`` (power of two)."""
    return max(abs(pe_value(weight_format, weight_bits, code)) for code in range(2 ** weight_bits))


def signed_values(weight_format: str) -> bool:
    """Whether the codes carry their own sign (no zero point: every group's z is 0)."""
    return weight_format != "int"


def scale_exponent_offset(weight_format: str) -> int:
    """Power of two the decoded group scale is multiplied by: -1 for FP4 (its PE value is twice
    the E2M1 value), else 0."""
    return -1 if weight_format == "fp4_e2m1" else 0


def check_formats(weight_format: str, scale_format: str, weight_bits: int, weight_encoding: str,
                  zero_mode: str, scale_mode: str = "flat") -> str | None:
    """The one-line problem with these configuration fields (for a ``ConfigError``), or None."""
    if weight_format not in WEIGHT_FORMATS:
        return f"weight_format={weight_format!r}: allowed values are {WEIGHT_FORMATS}"
    if weight_bits not in FORMAT_WEIGHT_BITS[weight_format]:
        return f"weight_bits={weight_bits}: weight_format={weight_format!r} allows {FORMAT_WEIGHT_BITS[weight_format]}"
    if signed_values(weight_format) and (weight_encoding, zero_mode) != ("unsigned", "integer"):
        return (f"weight_format={weight_format!r}: its codes carry their own sign, so it needs "
                f"weight_encoding='unsigned' and zero_mode='integer' (zero points 0), got {weight_encoding!r} "
                f"and {zero_mode!r}")
    if scale_format not in SCALE_FORMATS:
        return f"scale_format={scale_format!r}: allowed values are {SCALE_FORMATS}"
    if scale_mode != "flat" and (weight_format, scale_format) != ("int", "fp16"):
        return (f"scale_mode={scale_mode!r}: K-quant sub-scales need weight_format='int' and scale_format='fp16', "
                f"got {weight_format!r} and {scale_format!r}")
    if zero_mode == "float_offset" and scale_format != "fp16":
        return f"scale_format={scale_format!r}: zero_mode='float_offset' needs scale_format='fp16'"
    return None
