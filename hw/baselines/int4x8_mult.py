"""Baseline: b-bit weight code x the PE activation operand with a ``*`` multiplier (MixPE's PE without shift & add)."""

from amaranth import Signal, signed, unsigned

from ..config import MixPEConfig
from ..pe import SystolicPE

__all__ = ["Int4x8MultiplierPE"]


class Int4x8MultiplierPE(SystolicPE):
    """``x * Q`` written as a multiplication instead of MixPE's explicit shift & add.

    Ports, widths and timing are exactly those of :class:`hw.pe.ProcessingElement` (unsigned
    ``weight_bits`` code ``w``, signed ``pe_act_bits`` ``x``: INT8, or with floating-point
    activations the integer aligned at the array edge; ``product_bits`` product, ``psum_bits``
    group sum), so the two differ only in how the product is written; any area difference is what
    synthesis makes of a generic multiplier versus the AND-gated shifted adder tree.

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        As :class:`hw.pe.ProcessingElement`.

    Members
    -------
    x, w, valid, group_last, x_out, w_out, valid_out, group_last_out, psum, psum_valid
        As :class:`hw.pe.ProcessingElement`.

    Latency
    -------
    1 cycle.
    """

    def __init__(self, config: MixPEConfig):
        super().__init__(config, x_shape=signed(config.pe_act_bits), w_shape=unsigned(config.weight_bits),
                         sum_shape=signed(config.psum_bits))

    def accumulate(self, m, accumulator):
        product = Signal(signed(self._config.product_bits))
        m.d.comb += product.eq(self.x * self.w)  # |x * Q| <= 2^(a-1) * (2^b - 1) fits product_bits
        return accumulator + product
