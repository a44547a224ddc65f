"""binary32 multiplier (combinational).

``Float32Multiplier``: ``a: In(32)``, ``b: In(32)``, ``o: Out(32)``, all raw binary32 bits.
Round-to-nearest-even; subnormal inputs are zeros of their sign (DAZ); the product is rounded to
24 bits with an unbounded exponent, then flushed to a signed zero below 2^-126 (FTZ after
rounding) or turned into infinity at >= 2^128. The sign is the XOR of the operand signs, also
for zero, infinite and flushed results. NaN inputs and inf * 0 give the canonical NaN 0x7FC00000.
Golden model: ``golden.fp32.fmul32``.
"""


from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fp_common import FLOAT32_BIAS, decode_float32, round_and_pack_float32

__all__ = ["Float32Multiplier"]


class Float32Multiplier(wiring.Component):
    """Combinational binary32 multiplier; see the module docstring."""

    a: In(32)
    b: In(32)
    o: Out(32)

    @property
    def latency(self) -> int:
        return 0

    def elaborate(self, platform):
        m = Module()
        a = decode_float32(m, self.a, "a")
        b = decode_float32(m, self.b, "b")

        sign = Signal()
        is_nan = Signal()
        is_inf = Signal()
        is_zero = Signal()
        inf_times_zero = (a.is_inf & b.is_zero_or_subnormal) | (a.is_zero_or_subnormal & b.is_inf)
        m.d.comb += [
            sign.eq(a.sign ^ b.sign),
            is_nan.eq(a.is_nan | b.is_nan | inf_times_zero),
            is_inf.eq(a.is_inf | b.is_inf),
            is_zero.eq(a.is_zero_or_subnormal | b.is_zero_or_subnormal),
        ]

        # Both significands are in [2^23, 2^24), so the product is in [2^46, 2^48): at most a
        # one-bit normalisation, selected by the product's top bit.
        product = Signal(48)
        product_at_least_two = product[-1]
        normalized = Signal(48)
        exponent = Signal(signed(11))
        m.d.comb += [
            product.eq(a.significand * b.significand),
            normalized.eq(Mux(product_at_least_two, product, product << 1)),
            exponent.eq(a.exponent + b.exponent - FLOAT32_BIAS + product_at_least_two),
        ]

        m.d.comb += self.o.eq(round_and_pack_float32(
            m, sign=sign, exponent=exponent, significand=normalized,
            is_zero=is_zero, is_inf=is_inf, is_nan=is_nan, name="product"))
        return m
