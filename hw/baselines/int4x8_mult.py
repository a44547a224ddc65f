"""Baseline: b-bit weight code x INT8 with a ``*`` multiplier (MixPE's PE without shift & add)."""

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import MixPEConfig

__all__ = ["Int4x8MultiplierPE"]


class Int4x8MultiplierPE(wiring.Component):
    """``x * Q`` written as a multiplication instead of MixPE's explicit shift & add.

    Ports, widths and timing are exactly those of :class:`hw.pe.ProcessingElement` (unsigned
    ``weight_bits`` code ``w``, signed INT8 ``x``, ``product_bits`` product, ``psum_bits`` group
    sum), so the two differ only in how the product is written; any area difference is what
    synthesis makes of a generic multiplier versus the AND-gated shifted adder tree.
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        super().__init__({
            "x": In(signed(config.act_bits)),
            "valid": In(1),
            "group_last": In(1),
            "w": In(unsigned(config.weight_bits)),
            "x_out": Out(signed(config.act_bits)),
            "valid_out": Out(1),
            "group_last_out": Out(1),
            "w_out": Out(unsigned(config.weight_bits)),
            "psum": Out(signed(config.psum_bits)),
            "psum_valid": Out(1),
        })

    @property
    def latency(self) -> int:
        return 1

    def elaborate(self, platform):
        config = self._config
        m = Module()
        accumulator = Signal(signed(config.psum_bits))
        product = Signal(signed(config.product_bits))
        m.d.comb += product.eq(self.x * self.w)  # |x * Q| <= 128 * (2^b - 1) fits product_bits
        m.d.sync += [
            self.x_out.eq(self.x),
            self.valid_out.eq(self.valid),
            self.group_last_out.eq(self.group_last),
            self.w_out.eq(self.w),
            self.psum_valid.eq(self.valid & self.group_last),
        ]
        with m.If(self.valid):
            with m.If(self.group_last):
                m.d.sync += [self.psum.eq(accumulator + product), accumulator.eq(0)]
            with m.Else():
                m.d.sync += accumulator.eq(accumulator + product)
        return m
