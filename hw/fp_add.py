"""binary32 adder (combinational).

``Float32Adder``: ``a: In(32)``, ``b: In(32)``, ``o: Out(32)``, all raw binary32 bits.
Round-to-nearest-even; subnormal inputs are zeros of their sign (DAZ); the sum is rounded to
24 bits, then flushed to a zero of the exact sum's sign below 2^-126 (FTZ after rounding) or
turned into infinity at >= 2^128. Zero signs as IEEE RNE: x + (-x) = +0, (-0) + (-0) = -0,
(+0) + (-0) = +0. NaN inputs and inf + (-inf) give the canonical NaN 0x7FC00000.
Golden model: ``golden.fp32.fadd32``.
"""


from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fp_common import FLOAT32_SIGNIFICAND_BITS, decode_float32, normalize, round_and_pack_float32

__all__ = ["Float32Adder"]

# Guard, round and sticky bits below the significand. With an exponent difference d <= 3 the
# aligned addend is exact. With d >= 2 the result exceeds half the larger operand, so at most
# one bit cancels and the rounding position stays at bit 1 or above, while every bit shifted
# out is ORed into bit 0: that sticky LSB can move the value across no rounding boundary or
# halfway point, so the rounding is the correctly rounded one.
_EXTRA_BITS = 3
_ALIGNED_BITS = FLOAT32_SIGNIFICAND_BITS + _EXTRA_BITS


class Float32Adder(wiring.Component):
    """Combinational binary32 adder ``o = a + b`` (numerics in the module docstring).

    Members
    -------
    a, b : ``In(32)``
        Raw binary32 operands.
    o : ``Out(32)``
        Raw binary32 sum, rounded to nearest even.

    Latency
    -------
    0 cycles (combinational).
    """

    a: In(32)
    b: In(32)
    o: Out(32)

    @property
    def latency(self) -> int:
        """Cycles from the inputs to ``o`` (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        a = decode_float32(m, self.a, "a")
        b = decode_float32(m, self.b, "b")

        # Order the operands by magnitude; exponent:mantissa compares like the magnitude.
        # A zero/subnormal operand has significand 0 (DAZ) and is always the smaller one, or
        # both are zero; either way the general path below yields the right value.
        a_is_larger = Signal()
        m.d.comb += a_is_larger.eq(self.a[:31] >= self.b[:31])
        larger_sign = Signal()
        larger_exponent = Signal(8)
        larger_significand = Signal(FLOAT32_SIGNIFICAND_BITS)
        smaller_exponent = Signal(8)
        smaller_significand = Signal(FLOAT32_SIGNIFICAND_BITS)
        m.d.comb += [
            larger_sign.eq(Mux(a_is_larger, a.sign, b.sign)),
            larger_exponent.eq(Mux(a_is_larger, a.exponent, b.exponent)),
            larger_significand.eq(Mux(a_is_larger, a.significand, b.significand)),
            smaller_exponent.eq(Mux(a_is_larger, b.exponent, a.exponent)),
            smaller_significand.eq(Mux(a_is_larger, b.significand, a.significand)),
        ]

        exponent_difference = Signal(8)
        alignment_shift = Signal(range(_ALIGNED_BITS + 1))  # shifting further changes nothing
        m.d.comb += [
            exponent_difference.eq(larger_exponent - smaller_exponent),
            alignment_shift.eq(Mux(exponent_difference > _ALIGNED_BITS, _ALIGNED_BITS, exponent_difference)),
        ]
        smaller_extended = Cat(Const(0, _EXTRA_BITS), smaller_significand)
        shifted_out_mask = (Const(1, 1) << alignment_shift) - 1
        sticky = Signal()
        smaller_aligned = Signal(_ALIGNED_BITS)
        m.d.comb += [
            sticky.eq((smaller_extended & shifted_out_mask).any()),
            smaller_aligned.eq((smaller_extended >> alignment_shift) | sticky),
        ]

        effective_subtraction = Signal()
        larger_extended = Cat(Const(0, _EXTRA_BITS), larger_significand)
        raw_sum = Signal(_ALIGNED_BITS + 1)  # one carry bit
        m.d.comb += [
            effective_subtraction.eq(a.sign ^ b.sign),
            raw_sum.eq(Mux(effective_subtraction, larger_extended - smaller_aligned,
                           larger_extended + smaller_aligned)),
        ]

        normalized, leading_zeros = normalize(m, raw_sum, "sum")
        # Bit _ALIGNED_BITS of raw_sum (the carry) weighs 2^(larger_exponent + 1 - 127).
        exponent = Signal(signed(10))
        m.d.comb += exponent.eq(larger_exponent + 1 - leading_zeros)

        is_nan = Signal()
        is_inf = Signal()
        sum_is_zero = Signal()
        sign = Signal()
        m.d.comb += [
            is_nan.eq(a.is_nan | b.is_nan | (a.is_inf & b.is_inf & effective_subtraction)),
            is_inf.eq(a.is_inf | b.is_inf),
            sum_is_zero.eq(raw_sum == 0),
        ]
        with m.If(is_inf):
            m.d.comb += sign.eq(Mux(a.is_inf, a.sign, b.sign))
        with m.Elif(sum_is_zero):
            # Exact cancellation of unequal signs gives +0; two zeros keep a common sign.
            m.d.comb += sign.eq(a.sign & b.sign)
        with m.Else():
            m.d.comb += sign.eq(larger_sign)

        m.d.comb += self.o.eq(round_and_pack_float32(
            m, sign=sign, exponent=exponent, significand=normalized,
            is_zero=sum_is_zero, is_inf=is_inf, is_nan=is_nan, name="sum"))
        return m
