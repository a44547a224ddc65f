"""binary32 multiplier (combinational).

``Float32Multiplier``: ``a: In(32)``, ``b: In(32)``, ``o: Out(32)``, all raw binary32 bits.
Round-to-nearest-even; subnormal inputs are zeros of their sign (DAZ); the product is rounded to
24 bits with an unbounded exponent, then flushed to a signed zero below 2^-126 (FTZ after
rounding) or turned into infinity at >= 2^128. The sign is the XOR of the operand signs, also
for zero, infinite and flushed results. NaN inputs and inf * 0 give the canonical NaN 0x7FC00000.

``Float32Multiplier(offset_bits=n)`` (n > 0) adds the port ``exp_offset: In(signed(n))`` and
computes ``a * b * 2**exp_offset`` with a single rounding: the offset joins the product's
exponent before rounding, so overflow and flushing follow the scaled value.
Golden model: ``golden.fp32.fmul32`` (with ``exp_offset``).
"""


from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, Signature

from .config import ConfigError
from .fp_common import FLOAT32_BIAS, decode_float32, round_and_pack_float32

__all__ = ["Float32Multiplier"]


class Float32Multiplier(wiring.Component):
    """Combinational binary32 multiplier ``o = a * b * 2**exp_offset`` (numerics in the module docstring).

    Parameters
    ----------
    offset_bits : int
        Width of the signed ``exp_offset`` port; 0 (the default) leaves the port out.

    Members
    -------
    a, b : ``In(32)``
        Raw binary32 operands.
    exp_offset : ``In(signed(offset_bits))``
        Only with ``offset_bits > 0``: power of two applied before the single rounding.
    o : ``Out(32)``
        Raw binary32 product, rounded to nearest even.

    Latency
    -------
    0 cycles (combinational).
    """

    def __init__(self, offset_bits: int = 0):
        if not isinstance(offset_bits, int) or offset_bits < 0:
            raise ConfigError(f"offset_bits={offset_bits!r}: must be a non-negative integer (0: no exp_offset port)")
        self._offset_bits = offset_bits
        members = {"a": In(32), "b": In(32), "o": Out(32)}
        if offset_bits:
            members["exp_offset"] = In(signed(offset_bits))
        super().__init__(Signature(members))

    @property
    def latency(self) -> int:
        """Cycles from the inputs to ``o`` (combinational)."""
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
        # Biased exponents add to 1 - 127 .. 254 + 254 - 127; the offset widens that range.
        exponent = Signal(signed(max(11, self._offset_bits + 2)))
        offset = self.exp_offset if self._offset_bits else 0
        m.d.comb += [
            product.eq(a.significand * b.significand),
            normalized.eq(Mux(product_at_least_two, product, product << 1)),
            exponent.eq(a.exponent + b.exponent - FLOAT32_BIAS + product_at_least_two + offset),
        ]

        m.d.comb += self.o.eq(round_and_pack_float32(
            m, sign=sign, exponent=exponent, significand=normalized,
            is_zero=is_zero, is_inf=is_inf, is_nan=is_nan, name="product"))
        return m
