"""Signed integer to binary32 conversion (combinational, or pipelined with ``stages``).

``IntToFloat32(width)``: ``i: In(signed(width))`` (2 <= width <= 64), ``o: Out(32)`` raw binary32
bits. Round-to-nearest-even; exact when ``|i| <= 2^24``; zero converts to +0. The result can
neither overflow nor fall below 2^-126. ``IntToFloat32(width, stages=n)`` registers the first n
of its cut points (:func:`hw.fp_stages.int_to_float_cuts`: none up to 24 bits); the result is the
same, ``latency`` cycles later. Golden model: ``golden.fp32.int_to_fp32``.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError
from .fp_common import FLOAT32_BIAS, Cuts, add_in_halves, check_stages, normalize, round_and_pack_float32
from .fp_stages import int_to_float_cuts, unit_cuts, unit_latency

__all__ = ["IntToFloat32"]


class IntToFloat32(wiring.Component):
    """Signed integer to binary32 converter (numerics in the module docstring).

    Parameters
    ----------
    width : int
        Width of the signed input, 2 to 64 (else :class:`~hw.config.ConfigError`).
    stages : int
        Pipeline depth (:func:`~hw.fp_stages.unit_cuts`); 0 (the default) is combinational.

    Members
    -------
    i : ``In(signed(width))``
        The integer.
    o : ``Out(32)``
        Raw binary32, rounded to nearest even (exact for ``|i| <= 2**24``).

    Latency
    -------
    ``unit_latency("int_to_float", stages, width)`` cycles (0 without stages: combinational) from ``i``
    to ``o``; a new input every cycle.
    """

    def __init__(self, width: int, *, stages: int = 0):
        if not isinstance(width, int) or not 2 <= width <= 64:
            raise ConfigError(f"width={width!r}: IntToFloat32 takes a signed width from 2 to 64")
        self._width = width
        self._stages = check_stages(stages)
        super().__init__({"i": In(signed(width)), "o": Out(32)})

    @property
    def width(self) -> int:
        return self._width

    @property
    def latency(self) -> int:
        """Cycles from the input to ``o``."""
        return unit_latency("int_to_float", self._stages, self._width)

    def elaborate(self, platform):
        m = Module()
        cuts = Cuts(m, unit_cuts("int_to_float", self._stages, self._width), int_to_float_cuts(64))
        # |i| = (i XOR sign) + sign; abs(-2^(width-1)) still fits unsigned.
        negative = self.i[-1]
        inverted = Signal(self._width)
        m.d.comb += inverted.eq(self.i.as_unsigned() ^ negative.replicate(self._width))
        magnitude, (negative,) = add_in_halves(m, cuts, "magnitude_low", inverted, Const(0, self._width), negative, negative)
        magnitude, negative = cuts("magnitude", magnitude, negative)

        normalized, leading_zeros = normalize(m, magnitude, "magnitude")
        # The MSB of `magnitude` weighs 2^(width-1).
        exponent = Signal(signed(10))
        is_zero = Signal()
        m.d.comb += [exponent.eq(FLOAT32_BIAS + self._width - 1 - leading_zeros), is_zero.eq(magnitude == 0)]
        normalized, exponent, negative, is_zero = cuts("normalized", normalized, exponent, negative, is_zero)

        m.d.comb += self.o.eq(round_and_pack_float32(
            m, sign=negative, exponent=exponent, significand=normalized,
            is_zero=is_zero, is_inf=0, is_nan=0, name="result", cuts=cuts))
        return m
