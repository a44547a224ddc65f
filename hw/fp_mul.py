"""binary32 multiplier (combinational, or pipelined with ``stages``).

``Float32Multiplier``: ``a: In(32)``, ``b: In(32)``, ``o: Out(32)``, all raw binary32 bits.
Round-to-nearest-even; subnormal inputs are zeros of their sign (DAZ); the product is rounded to
24 bits with an unbounded exponent, then flushed to a signed zero below 2^-126 (FTZ after
rounding) or turned into infinity at >= 2^128. The sign is the XOR of the operand signs, also
for zero, infinite and flushed results. NaN inputs and inf * 0 give the canonical NaN 0x7FC00000.

``Float32Multiplier(offset_bits=n)`` (n > 0) adds the port ``exp_offset: In(signed(n))`` and
computes ``a * b * 2**exp_offset`` with a single rounding: the offset joins the product's
exponent before rounding, so overflow and flushing follow the scaled value.
The significand product is a carry-save tree (24 partial-product rows reduced by layers of
full adders to two rows), then a carry-propagate addition in two halves. With ``stages=n`` the
multiplier registers the first n of its cut points (:data:`hw.fp_stages.MULTIPLIER_CUTS`); the result
is the same, ``latency`` cycles later.
Golden model: ``golden.fp32.fmul32`` (with ``exp_offset``).
"""


from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, Signature

from .config import ConfigError
from .fp_common import (FLOAT32_BIAS, FLOAT32_SIGNIFICAND_BITS, Cuts, carry_save_layer, check_stages, decode_float32,
                        round_and_pack_float32)
from .fp_stages import MULTIPLIER_CUTS, unit_cuts, unit_latency

__all__ = ["Float32Multiplier"]

_PRODUCT_BITS = 2 * FLOAT32_SIGNIFICAND_BITS
#: The carry-propagate addition's lower part: its carry out, and its bits from _STICKY_BITS up;
#: the product bits below _STICKY_BITS only feed the sticky bit. 28 bits leave a 20-bit carry
#: chain for the upper part.
_LOW_BITS = 28
_STICKY_BITS = FLOAT32_SIGNIFICAND_BITS - 2
#: Full-adder layers before the ``partial_rows`` cut (24 rows -> 16 -> 11 -> 8 -> 6, then 4, 3, 2).
_LAYERS_BEFORE_PARTIAL_ROWS = 4


class Float32Multiplier(wiring.Component):
    """binary32 multiplier ``o = a * b * 2**exp_offset`` (numerics in the module docstring).

    Parameters
    ----------
    offset_bits : int
        Width of the signed ``exp_offset`` port; 0 (the default) leaves the port out.
    stages : int
        Pipeline depth (:func:`~hw.fp_stages.unit_cuts`); 0 (the default) is combinational.

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
    ``unit_latency("multiplier", stages)`` cycles (0 without stages: combinational) from
    ``a``/``b``/``exp_offset`` to ``o``; a new operand pair every cycle.
    """

    def __init__(self, offset_bits: int = 0, *, stages: int = 0):
        if not isinstance(offset_bits, int) or offset_bits < 0:
            raise ConfigError(f"offset_bits={offset_bits!r}: must be a non-negative integer (0: no exp_offset port)")
        self._offset_bits = offset_bits
        self._stages = check_stages(stages)
        members = {"a": In(32), "b": In(32), "o": Out(32)}
        if offset_bits:
            members["exp_offset"] = In(signed(offset_bits))
        super().__init__(Signature(members))

    @property
    def latency(self) -> int:
        """Cycles from the inputs to ``o``."""
        return unit_latency("multiplier", self._stages)

    def elaborate(self, platform):
        m = Module()
        cuts = Cuts(m, unit_cuts("multiplier", self._stages), MULTIPLIER_CUTS)
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

        # Biased exponents add to 1 - 127 .. 254 + 254 - 127; the offset widens that range.
        exponent = Signal(signed(max(11, self._offset_bits + 2)))
        offset = self.exp_offset if self._offset_bits else 0
        m.d.comb += exponent.eq(a.exponent + b.exponent - FLOAT32_BIAS + offset)

        # Partial products, reduced in carry-save form to two rows. The exponent and the flags
        # travel with the rows.
        rows = [Mux(b.significand[bit], a.significand << bit, 0) for bit in range(FLOAT32_SIGNIFICAND_BITS)]
        side = (exponent, sign, is_nan, is_inf, is_zero)
        layer = 0
        while len(rows) > 2:
            if layer == _LAYERS_BEFORE_PARTIAL_ROWS:
                registered = cuts("partial_rows", *side, *rows)
                side, rows = registered[:len(side)], list(registered[len(side):])
            rows = carry_save_layer(m, rows, _PRODUCT_BITS, f"layer{layer}")
            layer += 1
        x, y = rows

        # The carry-propagate addition in two parts. Only the top 26 product bits matter
        # individually; the 22 below them only as a sticky bit, which is read from the rows
        # without carries: x + y = 0 (mod 2^n) exactly when every bit of x ^ y equals the bit
        # below it of x | y.
        low = Signal(_LOW_BITS + 1)
        low_nonzero = Signal()
        m.d.comb += [
            low.eq(x[:_LOW_BITS] + y[:_LOW_BITS]),
            low_nonzero.eq(((x ^ y) ^ ((x | y) << 1))[:_STICKY_BITS].any()),
        ]
        carry, below, x, y, low_nonzero, *side = cuts(
            "low_sum", low[_LOW_BITS], low[_STICKY_BITS:_LOW_BITS], x[_LOW_BITS:], y[_LOW_BITS:], low_nonzero, *side)
        high = Signal(_PRODUCT_BITS - _LOW_BITS)
        m.d.comb += high.eq(x + y + carry)
        high, below, low_nonzero, exponent, sign, is_nan, is_inf, is_zero = cuts(
            "product", high, below, low_nonzero, *side)

        # Both significands are in [2^23, 2^24), so the product is in [2^46, 2^48): at most a
        # one-bit normalisation, selected by the product's top bit. The rounding sees the 24
        # kept bits, the guard bit and one sticky bit.
        product_at_least_two = high[-1]
        top = Cat(below, high)  # product bits 22 .. 47
        normalized = Signal(FLOAT32_SIGNIFICAND_BITS + 2)
        normalized_exponent = Signal.like(exponent)
        m.d.comb += [
            normalized.eq(Mux(product_at_least_two, Cat(low_nonzero | top[0], top[1:]),
                              Cat(low_nonzero, top[:-1]))),
            normalized_exponent.eq(exponent + product_at_least_two),
        ]

        m.d.comb += self.o.eq(round_and_pack_float32(
            m, sign=sign, exponent=normalized_exponent, significand=normalized,
            is_zero=is_zero, is_inf=is_inf, is_nan=is_nan, name="product", cuts=cuts))
        return m
