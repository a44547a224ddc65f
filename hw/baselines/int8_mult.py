"""Baseline: INT8 x INT8 multiplier PE with an integer group accumulator."""

from amaranth import Signal, signed

from ..config import ConfigError, MixPEConfig
from ..pe import SystolicPE

__all__ = ["Int8MultiplierPE"]

#: Weight operand width of this PE (a W8A8 PE, independent of the configured code width).
WEIGHT_BITS = 8


class Int8MultiplierPE(SystolicPE):
    """The conventional INT8 PE: ``x * w`` with a ``*`` multiplier, both signed 8-bit.

    Same array role and timing as :class:`hw.pe.ProcessingElement` (see :mod:`hw.baselines`):
    the product (16 bits signed, ``|x * w| <= 2^14``) is added to a group accumulator of
    ``16 + log2 g`` bits; on ``valid & group_last`` the sum moves to ``psum`` (one cycle later,
    ``psum_valid`` for one cycle) and the accumulator restarts from zero.

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        INT8 activations only (a floating-point ``config.activation`` raises
        :class:`~hw.config.ConfigError`); gives g.

    Members
    -------
    x, w : ``In(signed(8))``
        Activation and weight.
    valid, group_last, x_out, w_out, valid_out, group_last_out
        As in :class:`~hw.pe.SystolicPE`.
    psum : ``Out(signed(psum_bits))``, psum_valid : ``Out(1)``
        Drain register.

    Latency
    -------
    1 cycle, as :class:`~hw.pe.SystolicPE`.
    """

    @staticmethod
    def check(config: MixPEConfig) -> None:
        """Raise :class:`~hw.config.ConfigError` unless ``config`` has INT8 activations."""
        if config.fp_activation:
            raise ConfigError(f"activation={config.activation!r}: int8_mult is an INT8 x INT8 PE; "
                             f"allowed activation: 'int8'")

    def __init__(self, config: MixPEConfig):
        self.check(config)
        self._config = config
        super().__init__(config, x_shape=signed(config.act_bits), w_shape=signed(WEIGHT_BITS),
                         sum_shape=signed(self.psum_bits))

    @property
    def product_bits(self) -> int:
        return self._config.act_bits + WEIGHT_BITS

    @property
    def psum_bits(self) -> int:
        return self.product_bits + self._config.group_log2

    def accumulate(self, m, accumulator):
        product = Signal(signed(self.product_bits))
        m.d.comb += product.eq(self.x * self.w)
        return accumulator + product
