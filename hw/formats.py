"""Activation number formats: INT8 and parametric floating point (FP16, BF16, FP8 E4M3 / E5M2, any E/M).

A floating-point format has a sign bit, ``exp_bits`` exponent bits with bias ``2**(exp_bits-1) - 1``
and ``man_bits`` stored mantissa bits. Special values follow one of two conventions:

``"ieee"``
    The all-ones exponent encodes infinity (mantissa 0) and NaN (FP16, BF16, FP8 E5M2).
``"fn"``
    Finite only: no infinity, and only the all-ones code ``S.1..1.1..1`` is NaN; the rest of the
    all-ones exponent holds normal numbers (OCP FP8 E4M3, largest value 448).

Subnormals (exponent field 0) are values ``mantissa * 2**(1 - bias - man_bits)``, kept exactly.
"""

from __future__ import annotations

import dataclasses
import re

__all__ = ["ActivationFormat", "ACTIVATION_FORMATS", "activation_format", "FLOAT_FORMAT_PATTERN"]

#: Custom floating-point formats are named ``fp_e<E>m<M>`` (IEEE specials), e.g. ``fp_e6m9``.
FLOAT_FORMAT_PATTERN = re.compile(r"^fp_e(?P<exp>\d+)m(?P<man>\d+)$")
EXP_BITS_RANGE = (2, 8)
MAN_BITS_RANGE = (1, 10)


@dataclasses.dataclass(frozen=True)
class ActivationFormat:
    """One activation format.

    name
        Configuration name (``int8``, ``fp16``, ``bf16``, ``fp8_e4m3``, ``fp8_e5m2`` or ``fp_e<E>m<M>``).
    bits
        Width of one element on the activation stream.
    exp_bits, man_bits, specials
        Floating-point fields (0, 0, "" for INT8).
    torch_dtype
        Name of the matching ``torch`` dtype, or "" when torch has none.
    """

    name: str
    bits: int
    exp_bits: int = 0
    man_bits: int = 0
    specials: str = ""
    torch_dtype: str = ""

    @property
    def is_float(self) -> bool:
        return self.exp_bits > 0

    @property
    def bias(self) -> int:
        return 2 ** (self.exp_bits - 1) - 1

    @property
    def max_exponent_field(self) -> int:
        """Largest exponent field of a finite value."""
        all_ones = 2 ** self.exp_bits - 1
        return all_ones if self.specials == "fn" else all_ones - 1

    @property
    def max_finite(self) -> float:
        """Largest finite magnitude."""
        top_mantissa = 2 ** self.man_bits - (2 if self.specials == "fn" else 1)
        return (1 + top_mantissa / 2 ** self.man_bits) * 2.0 ** (self.max_exponent_field - self.bias)

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.man_bits)


_NAMED = {
    "int8": ActivationFormat("int8", 8, torch_dtype="int8"),
    "fp16": ActivationFormat("fp16", 16, 5, 10, "ieee", "float16"),
    "bf16": ActivationFormat("bf16", 16, 8, 7, "ieee", "bfloat16"),
    "fp8_e4m3": ActivationFormat("fp8_e4m3", 8, 4, 3, "fn", "float8_e4m3fn"),
    "fp8_e5m2": ActivationFormat("fp8_e5m2", 8, 5, 2, "ieee", "float8_e5m2"),
}
#: The named formats; ``fp_e<E>m<M>`` names any other IEEE-style format.
ACTIVATION_FORMATS = tuple(_NAMED)


def activation_format(name: str) -> ActivationFormat:
    """The format called ``name``; raises ``ValueError`` naming the allowed values."""
    if name in _NAMED:
        return _NAMED[name]
    match = FLOAT_FORMAT_PATTERN.match(name) if isinstance(name, str) else None
    if match:
        exp_bits, man_bits = int(match["exp"]), int(match["man"])
        if EXP_BITS_RANGE[0] <= exp_bits <= EXP_BITS_RANGE[1] and MAN_BITS_RANGE[0] <= man_bits <= MAN_BITS_RANGE[1]:
            return ActivationFormat(name, 1 + exp_bits + man_bits, exp_bits, man_bits, "ieee")
    raise ValueError(f"activation={name!r}: allowed values are {ACTIVATION_FORMATS} or 'fp_e<E>m<M>' with "
                     f"E in {EXP_BITS_RANGE[0]}..{EXP_BITS_RANGE[1]} and M in {MAN_BITS_RANGE[0]}..{MAN_BITS_RANGE[1]}")
