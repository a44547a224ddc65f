"""binary32 adder (combinational, or pipelined with ``stages``).

``Float32Adder``: ``a: In(32)``, ``b: In(32)``, ``o: Out(32)``, all raw binary32 bits.
Round-to-nearest-even; subnormal inputs are zeros of their sign (DAZ); the sum is rounded to
24 bits, then flushed to a zero of the exact sum's sign below 2^-126 (FTZ after rounding) or
turned into infinity at >= 2^128. Zero signs as IEEE RNE: x + (-x) = +0, (-0) + (-0) = -0,
(+0) + (-0) = +0. NaN inputs and inf + (-inf) give the canonical NaN 0x7FC00000.
``Float32Adder(stages=n)`` registers the first n of its cut points
(:data:`hw.fp_stages.ADDER_CUTS`); the result is the same, ``latency`` cycles later.
Golden model: ``golden.fp32.fadd32``.
"""


from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fp_common import FLOAT32_SIGNIFICAND_BITS, Cuts, check_stages, decode_float32, normalize, round_and_pack_float32
from .fp_stages import ADDER_CUTS, unit_cuts, unit_latency

__all__ = ["Float32Adder"]

# Guard, round and sticky bits below the significand. With an exponent difference d <= 3 the
# aligned addend is exact. With d >= 2 the result exceeds half the larger operand, so at most
# one bit cancels and the rounding position stays at bit 1 or above, while every bit shifted
# out is ORed into bit 0: that sticky LSB can move the value across no rounding boundary or
# halfway point, so the rounding is the correctly rounded one.
_EXTRA_BITS = 3
_ALIGNED_BITS = FLOAT32_SIGNIFICAND_BITS + _EXTRA_BITS


class Float32Adder(wiring.Component):
    """binary32 adder ``o = a + b`` (numerics in the module docstring).

    Parameters
    ----------
    stages : int
        Pipeline depth (:func:`~hw.fp_stages.unit_cuts`); 0 (the default) is combinational.

    Members
    -------
    a, b : ``In(32)``
        Raw binary32 operands.
    o : ``Out(32)``
        Raw binary32 sum, rounded to nearest even.

    Latency
    -------
    ``unit_latency("adder", stages)`` cycles (0 without stages: combinational) from ``a``/``b``
    to ``o``; a new operand pair every cycle.
    """

    a: In(32)
    b: In(32)
    o: Out(32)

    def __init__(self, *, stages: int = 0):
        self._stages = check_stages(stages)
        super().__init__()

    @property
    def latency(self) -> int:
        """Cycles from the inputs to ``o``."""
        return unit_latency("adder", self._stages)

    def elaborate(self, platform):
        m = Module()
        cuts = Cuts(m, unit_cuts("adder", self._stages), ADDER_CUTS)
        a = decode_float32(m, self.a, "a")
        b = decode_float32(m, self.b, "b")

        # The special cases, the zero result and the sign are settled from the operands; they
        # travel with the datapath. Under DAZ the sum is zero when two zeros are added or equal
        # significands at equal exponents subtracted; its sign is then +0 unless both operands
        # are negative; an infinity's sign wins, else the larger operand's.
        is_nan = Signal()
        is_inf = Signal()
        effective_subtraction = Signal()
        sum_is_zero = Signal()
        m.d.comb += [
            effective_subtraction.eq(a.sign ^ b.sign),
            is_nan.eq(a.is_nan | b.is_nan | (a.is_inf & b.is_inf & effective_subtraction)),
            is_inf.eq(a.is_inf | b.is_inf),
            sum_is_zero.eq(Mux(effective_subtraction,
                               (a.exponent == b.exponent) & (a.significand == b.significand),
                               (a.significand == 0) & (b.significand == 0))),
        ]

        # Order the operands by magnitude; exponent:mantissa compares like the magnitude.
        # A zero/subnormal operand has significand 0 (DAZ) and is always the smaller one, or
        # both are zero; either way the general path below yields the right value.
        a_is_larger = Signal()
        m.d.comb += a_is_larger.eq(self.a[:31] >= self.b[:31])
        sign = Signal()
        larger_exponent = Signal(8)
        larger_significand = Signal(FLOAT32_SIGNIFICAND_BITS)
        smaller_exponent = Signal(8)
        smaller_significand = Signal(FLOAT32_SIGNIFICAND_BITS)
        with m.If(is_inf):
            m.d.comb += sign.eq(Mux(a.is_inf, a.sign, b.sign))
        with m.Elif(sum_is_zero):
            m.d.comb += sign.eq(a.sign & b.sign)
        with m.Else():
            m.d.comb += sign.eq(Mux(a_is_larger, a.sign, b.sign))
        m.d.comb += [
            larger_exponent.eq(Mux(a_is_larger, a.exponent, b.exponent)),
            larger_significand.eq(Mux(a_is_larger, a.significand, b.significand)),
            smaller_exponent.eq(Mux(a_is_larger, b.exponent, a.exponent)),
            smaller_significand.eq(Mux(a_is_larger, b.significand, a.significand)),
        ]
        flags = (effective_subtraction, sign, sum_is_zero, is_inf, is_nan)
        (larger_exponent, larger_significand, smaller_exponent, smaller_significand, *flags) = cuts(
            "ordered", larger_exponent, larger_significand, smaller_exponent, smaller_significand, *flags)
        effective_subtraction = flags[0]

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
        # A subtraction adds the complement of the smaller operand and 1 (the carry in).
        addend = Signal(_ALIGNED_BITS)
        larger_extended = Cat(Const(0, _EXTRA_BITS), larger_significand)
        m.d.comb += addend.eq(smaller_aligned ^ effective_subtraction.replicate(_ALIGNED_BITS))
        larger_exponent, larger_extended, addend, *flags = cuts(
            "aligned", larger_exponent, larger_extended, addend, *flags)
        effective_subtraction, sign, sum_is_zero, is_inf, is_nan = flags

        total = Signal(_ALIGNED_BITS + 1)
        raw_sum = Signal(_ALIGNED_BITS + 1)  # one carry bit; a subtraction's carry out is dropped
        m.d.comb += [
            total.eq(larger_extended + addend + effective_subtraction),
            raw_sum.eq(Cat(total[:_ALIGNED_BITS], total[_ALIGNED_BITS] & ~effective_subtraction)),
        ]
        raw_sum, larger_exponent, sign, sum_is_zero, is_inf, is_nan = cuts(
            "sum", raw_sum, larger_exponent, sign, sum_is_zero, is_inf, is_nan)

        normalized, leading_zeros = normalize(m, raw_sum, "sum")
        # Bit _ALIGNED_BITS of raw_sum (the carry) weighs 2^(larger_exponent + 1 - 127).
        exponent = Signal(signed(10))
        m.d.comb += exponent.eq(larger_exponent + 1 - leading_zeros)
        normalized, exponent, sign, sum_is_zero, is_inf, is_nan = cuts(
            "normalized", normalized, exponent, sign, sum_is_zero, is_inf, is_nan)

        m.d.comb += self.o.eq(round_and_pack_float32(
            m, sign=sign, exponent=exponent, significand=normalized,
            is_zero=sum_is_zero, is_inf=is_inf, is_nan=is_nan, name="sum", cuts=cuts))
        return m
