"""Signed integer to binary32 conversion (combinational).

``IntToFloat32(width)``: ``i: In(signed(width))`` (2 <= width <= 64), ``o: Out(32)`` raw binary32
bits. Round-to-nearest-even; exact when ``|i| <= 2^24``; zero converts to +0. The result can
neither overflow nor fall below 2^-126. Golden model: ``golden.fp32.int_to_fp32``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError
from .fp_common import FLOAT32_BIAS, normalize, round_and_pack_float32

__all__ = ["IntToFloat32"]


class IntToFloat32(wiring.Component):
    """Combinational signed integer to binary32 converter (numerics in the module docstring).

    Parameters
    ----------
    width : int
        Width of the signed input, 2 to 64 (else :class:`~hw.config.ConfigError`).

    Members
    -------
    i : ``In(signed(width))``
        The integer.
    o : ``Out(32)``
        Raw binary32, rounded to nearest even (exact for ``|i| <= 2**24``).

    Latency
    -------
    0 cycles (combinational).
    """

    def __init__(self, width: int):
        if not isinstance(width, int) or not 2 <= width <= 64:
            raise ConfigError(f"width={width!r}: IntToFloat32 takes a signed width from 2 to 64")
        self._width = width
        super().__init__({"i": In(signed(width)), "o": Out(32)})

    @property
    def width(self) -> int:
        return self._width

    @property
    def latency(self) -> int:
        """Cycles from the inputs to ``o`` (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        negative = Signal()
        magnitude = Signal(self._width)  # abs(-2^(width-1)) still fits unsigned
        m.d.comb += [negative.eq(self.i < 0), magnitude.eq(abs(self.i))]

        normalized, leading_zeros = normalize(m, magnitude, "magnitude")
        # The MSB of `magnitude` weighs 2^(width-1).
        exponent = Signal(signed(10))
        m.d.comb += exponent.eq(FLOAT32_BIAS + self._width - 1 - leading_zeros)

        m.d.comb += self.o.eq(round_and_pack_float32(
            m, sign=negative, exponent=exponent, significand=normalized,
            is_zero=magnitude == 0, is_inf=0, is_nan=0, name="result"))
        return m
