"""Baseline: INT8 x INT8 multiplier PE with an integer group accumulator."""

from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import MixPEConfig

__all__ = ["Int8MultiplierPE"]

#: Weight operand width of this PE (a W8A8 PE, independent of the configured code width).
WEIGHT_BITS = 8


class Int8MultiplierPE(wiring.Component):
    """The conventional INT8 PE: ``x * w`` with a ``*`` multiplier, both signed 8-bit.

    Same array role and timing as :class:`hw.pe.ProcessingElement` (see :mod:`hw.baselines`):
    the product (16 bits signed, ``|x * w| <= 2^14``) is added to a group accumulator of
    ``16 + log2 g`` bits; on ``valid & group_last`` the sum moves to ``psum`` (one cycle later,
    ``psum_valid`` for one cycle) and the accumulator restarts from zero.

    Ports: x, w: In(signed(8)); valid, group_last: In(1); x_out, w_out, valid_out,
    group_last_out: Out (registered copies); psum: Out(signed(psum_bits)), psum_valid: Out(1).
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        super().__init__({
            "x": In(signed(config.act_bits)),
            "valid": In(1),
            "group_last": In(1),
            "w": In(signed(WEIGHT_BITS)),
            "x_out": Out(signed(config.act_bits)),
            "valid_out": Out(1),
            "group_last_out": Out(1),
            "w_out": Out(signed(WEIGHT_BITS)),
            "psum": Out(signed(self.psum_bits)),
            "psum_valid": Out(1),
        })

    @property
    def product_bits(self) -> int:
        return self._config.act_bits + WEIGHT_BITS

    @property
    def psum_bits(self) -> int:
        return self.product_bits + self._config.group_log2

    @property
    def latency(self) -> int:
        return 1

    def elaborate(self, platform):
        m = Module()
        accumulator = Signal(signed(self.psum_bits))
        product = Signal(signed(self.product_bits))
        m.d.comb += product.eq(self.x * self.w)
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
