"""The MixPE processing element: shift & add multiply into a double-buffered group accumulator."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import MixPEConfig

__all__ = ["ProcessingElement", "shift_add_product"]


def shift_add_product(activation, code, weight_bits: int):
    """``activation * code`` as the sum of ``activation << i`` over the set bits ``i`` of the
    unsigned ``code`` (no multiplier). Signed result of ``activation width + weight_bits`` bits."""
    terms = [Mux(code[bit], activation << bit, 0) for bit in range(weight_bits)]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


class ProcessingElement(wiring.Component):
    """One PE of the output-stationary array.

    Each cycle with ``valid`` set it adds ``x * w`` (shift & add) to its group accumulator. On
    the group's last step (``group_last``) the completed sum moves to the drain register
    ``psum`` (valid for exactly one cycle, ``psum_valid``) and accumulation restarts from zero,
    so the next group accumulates while this one drains. The activation, its flags and the
    weight code are registered out to the right and bottom neighbours (one cycle per hop).

    Ports (widths from the configuration):
        x, valid, group_last: In    activation (signed act_bits) and flags from the left
        w: In                       weight code (unsigned weight_bits) from the top
        x_out, valid_out, group_last_out, w_out: Out   registered copies for the neighbours
        psum: Out(signed(psum_bits)), psum_valid: Out(1)   drain register

    Latency: ``psum`` holds a group's sum one cycle after its last step is presented."""

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
        """Cycles from a group's last step at the inputs to its sum in ``psum``."""
        return 1

    def elaborate(self, platform):
        config = self._config
        m = Module()
        accumulator = Signal(signed(config.psum_bits))
        product = Signal(signed(config.product_bits))
        m.d.comb += product.eq(shift_add_product(self.x, self.w, config.weight_bits))

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
