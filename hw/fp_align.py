"""Block-floating-point alignment of floating-point activations at the array's left edge."""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError, MixPEConfig
from .layouts import activation_layout, pe_activation_layout

__all__ = ["ActivationAligner"]


class ActivationAligner(wiring.Component):
    """Turns one K step of raw floating-point activations into the PEs' signed integers (combinational).

    Per row r, for the code ``x[r]`` (sign s, exponent field e, mantissa f; ``M`` mantissa bits,
    ``G = config.guard`` guard bits) and the row's shared exponent ``e_max[r]`` of the group:

    * ``e_eff = max(e, 1)``, ``sig = f | (e != 0) << M`` (subnormals exact, no DAZ);
    * ``shift = e_max - e_eff``, saturated at ``M + G + 2`` (everything beyond aligns to 0);
    * ``aligned = (-1)**s * (((sig << G + 1) >> shift) + 1 >> 1)``: round to nearest, ties away
      from zero; ``pe_act_bits = M + 2 + G`` bits signed;
    * ``invalid[r]``: the code is Inf or NaN (per the format's convention) or ``shift < 0`` (the
      element exceeds the shared exponent); its ``aligned`` is 0.

    The aligned integer's LSB weighs ``2**(e_max + config.lsb_exponent_offset)``. Golden model:
    :func:`golden.fp_activations.align_activations`.

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        A configuration with floating-point activations (else :class:`~hw.config.ConfigError`);
        gives the format, the guard bits and R.

    Members
    -------
    x : ``In(ArrayLayout(unsigned(act_bits), R))``
        One K step of raw activation codes.
    e_max : ``In(ArrayLayout(unsigned(act_exp_bits), R))``
        Per row the group's shared exponent field.
    aligned : ``Out(ArrayLayout(signed(pe_act_bits), R))``
        Per row the aligned signed integer.
    invalid : ``Out(R)``
        Per row: the element is Inf, NaN or above the shared exponent.

    Latency
    -------
    0 cycles (combinational).
    """

    def __init__(self, config: MixPEConfig):
        if not config.fp_activation:
            raise ConfigError(f"activation={config.activation!r}: the aligner needs a floating-point format")
        self._config = config
        super().__init__({
            "x": In(activation_layout(config)),
            "e_max": In(data.ArrayLayout(unsigned(config.act_exp_bits), config.rows)),
            "aligned": Out(pe_activation_layout(config)),
            "invalid": Out(config.rows),
        })

    @property
    def latency(self) -> int:
        """Cycles from ``x``/``e_max`` to ``aligned``/``invalid``."""
        return 0

    def elaborate(self, platform):
        config = self._config
        fmt = config.act_format
        man_bits, exp_bits, guard = fmt.man_bits, fmt.exp_bits, config.guard
        max_shift = man_bits + guard + 2
        m = Module()
        for r in range(config.rows):
            code = self.x[r]
            mantissa = code[:man_bits]
            exponent = code[man_bits:man_bits + exp_bits]
            negative = code[-1]
            all_ones = exponent == (1 << exp_bits) - 1
            special = (all_ones & (mantissa == (1 << man_bits) - 1)) if fmt.specials == "fn" else all_ones
            e_eff = Mux(exponent == 0, 1, exponent)
            significand = Cat(mantissa, exponent != 0)

            shift = Signal(signed(exp_bits + 2), name=f"shift_{r}")
            shift_sat = Signal(range(max_shift + 1), name=f"shift_sat_{r}")
            invalid = Signal(name=f"invalid_{r}")
            # One extra low bit keeps the first bit shifted out, the rounding bit.
            widened = Cat(Const(0, guard + 1), significand)
            halved = Signal(man_bits + guard + 2, name=f"halved_{r}")
            magnitude = Signal(man_bits + guard + 1, name=f"magnitude_{r}")
            m.d.comb += [
                shift.eq(self.e_max[r] - e_eff),
                invalid.eq(special | (shift < 0)),
                shift_sat.eq(Mux(shift > max_shift, max_shift, shift[:len(shift_sat)])),
                halved.eq(widened >> shift_sat),
                magnitude.eq((halved + 1) >> 1),
                self.invalid[r].eq(invalid),
                self.aligned[r].eq(Mux(invalid, 0, Mux(negative, -magnitude, magnitude))),
            ]
        return m
