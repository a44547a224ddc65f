"""Exact widening of a narrow IEEE-like float format to binary32 (combinational).

``WidenToFloat32(exp_bits, man_bits)``: ``i: In(1 + exp_bits + man_bits)`` raw code (sign,
exponent with bias 2^(exp_bits-1) - 1, stored mantissa; the all-ones exponent encodes infinity
when the mantissa is 0, else NaN), ``o: Out(32)`` raw binary32 bits. 2 <= exp_bits <= 8,
1 <= man_bits <= 23, e.g. (5, 10) fp16 and (8, 7) bf16.

The conversion is exact: signed zeros and infinities are kept, every NaN becomes the canonical
quiet NaN 0x7FC00000, and subnormals of a format with fewer than 8 exponent bits are normalised
into binary32 normals. With 8 exponent bits (bf16) the subnormals are exactly binary32
subnormals and are passed on as such (units downstream treat them as zero, DAZ).
Golden model: ``golden.fp32.widen_to_fp32`` (``fp16_to_fp32``, ``bf16_to_fp32``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError
from .fp_common import (CANONICAL_NAN, FLOAT32_BIAS, FLOAT32_EXP_BITS, FLOAT32_MAN_BITS, decode_float,
                        infinity_float32, normalize, pack_float32, zero_float32)

__all__ = ["WidenToFloat32"]


class WidenToFloat32(wiring.Component):
    """Combinational exact narrow-float to binary32 converter (numerics in the module docstring).

    Parameters
    ----------
    exp_bits : int
        Exponent bits of the narrow format, 2 to 8.
    man_bits : int
        Stored mantissa bits of the narrow format, 1 to 23.

    Members
    -------
    i : ``In(1 + exp_bits + man_bits)``
        Raw narrow code.
    o : ``Out(32)``
        Raw binary32, the exact value (NaNs canonical).

    Latency
    -------
    0 cycles (combinational).
    """

    def __init__(self, exp_bits: int, man_bits: int):
        if not (2 <= exp_bits <= FLOAT32_EXP_BITS and 1 <= man_bits <= FLOAT32_MAN_BITS):
            raise ConfigError(f"exp_bits={exp_bits!r}, man_bits={man_bits!r}: WidenToFloat32 takes "
                              f"2 <= exp_bits <= {FLOAT32_EXP_BITS} and 1 <= man_bits <= {FLOAT32_MAN_BITS}")
        self._exp_bits = exp_bits
        self._man_bits = man_bits
        super().__init__({"i": In(1 + exp_bits + man_bits), "o": Out(32)})

    @property
    def exp_bits(self) -> int:
        return self._exp_bits

    @property
    def man_bits(self) -> int:
        return self._man_bits

    @property
    def latency(self) -> int:
        """Cycles from the inputs to ``o`` (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        exp_bits, man_bits = self._exp_bits, self._man_bits
        narrow = decode_float(m, self.i, exp_bits, man_bits, "narrow")
        rebias = FLOAT32_BIAS - (2 ** (exp_bits - 1) - 1)
        widen_mantissa = FLOAT32_MAN_BITS - man_bits

        def mantissa_field(mantissa):
            return Cat(Const(0, widen_mantissa), mantissa)

        normal_exponent = Signal(FLOAT32_EXP_BITS)
        m.d.comb += normal_exponent.eq(narrow.exponent + rebias)

        with m.If(narrow.is_nan):
            m.d.comb += self.o.eq(CANONICAL_NAN)
        with m.Elif(narrow.is_inf):
            m.d.comb += self.o.eq(infinity_float32(narrow.sign))
        with m.Elif(narrow.is_zero_or_subnormal & (narrow.mantissa == 0)):
            m.d.comb += self.o.eq(zero_float32(narrow.sign))
        with m.Elif(narrow.is_zero_or_subnormal):
            if rebias == 0:
                m.d.comb += self.o.eq(pack_float32(narrow.sign, Const(0, FLOAT32_EXP_BITS),
                                                  mantissa_field(narrow.mantissa)))
            else:
                # mantissa * 2^(1 - bias - man_bits) with its leading one at bit
                # man_bits - 1 - shift has the unbiased exponent -bias - shift, which for
                # exp_bits < 8 is at least -63 - 22, well inside the binary32 normal range.
                normalized, shift = normalize(m, narrow.mantissa, "subnormal")
                subnormal_exponent = Signal(FLOAT32_EXP_BITS)
                m.d.comb += [
                    subnormal_exponent.eq(rebias - shift),
                    self.o.eq(pack_float32(narrow.sign, subnormal_exponent,
                                           mantissa_field(Cat(Const(0, 1), normalized[:-1])))),
                ]
        with m.Else():
            m.d.comb += self.o.eq(pack_float32(narrow.sign, normal_exponent, mantissa_field(narrow.mantissa)))
        return m
