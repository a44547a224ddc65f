"""Group-scale decoder of the GDU: the raw 16-bit scale field to the FP32 scale (combinational, exact).

=============  ==================================================================================
``fp16``       the IEEE binary16 widening (:class:`~hw.fp_widen.WidenToFloat32`)
``e8m0``       code c in the low 8 bits: ``2^(c - 127)``, i.e. the FP32 exponent field c and a
               zero mantissa (c = 255 is NaN; c = 0, an FP32 subnormal, is flushed to +0)
``e4m3``       OCP FP8 E4M3 (``fn``) in the low 8 bits: the widening of a 4-bit-exponent format,
               except that exponent 15 holds the normal values 256 .. 448 and only S.1111.111 is NaN
=============  ==================================================================================

Then the configuration's :attr:`~hw.config.MixPEConfig.scale_exponent_offset` (-1 for FP4 codes,
whose PE value is twice the E2M1 value) is added to the exponent field of every finite nonzero
scale: an exact multiplication by 1/2 for every scale the golden model accepts
(:func:`golden.codes.scale_problem`), which keeps them FP32 normals; a field that would leave the
normal range becomes +-0. Golden model: :func:`golden.codes.decoded_scales`.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import MixPEConfig
from .fp_common import CANONICAL_NAN, FLOAT32_BIAS, FLOAT32_MAX_BIASED_EXPONENT, pack_float32
from .fp_widen import WidenToFloat32
from .layouts import FP16_BITS, FP32_BITS

__all__ = ["ScaleDecoder", "scale_widener"]

E4M3_EXP_BITS, E4M3_MAN_BITS = 4, 3


def scale_widener(config: MixPEConfig) -> wiring.Component:
    """The GDU's scale unit for ``config`` (``i``: raw 16-bit field, ``o``: FP32): the FP16 widening
    itself for FP16 scales without an exponent offset (the first release's netlist), else a
    :class:`ScaleDecoder`."""
    if config.scale_format == "fp16" and not config.scale_exponent_offset:
        return WidenToFloat32(5, 10)
    return ScaleDecoder(config)


class ScaleDecoder(wiring.Component):
    """Raw group-scale field to its exact FP32 value times ``2^scale_exponent_offset`` (module docstring).

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        Gives ``scale_format`` and ``scale_exponent_offset``.

    Members
    -------
    i : ``In(16)``
        Raw scale field (FP16 bits, or the 8-bit E8M0 / E4M3 code in the low bits).
    o : ``Out(32)``
        Raw FP32 scale.

    Latency
    -------
    0 cycles (combinational).
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        super().__init__({"i": In(FP16_BITS), "o": Out(FP32_BITS)})

    @property
    def latency(self) -> int:
        """Cycles from ``i`` to ``o`` (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        config = self._config
        value = Signal(FP32_BITS)
        if config.scale_format == "e8m0":
            code = self.i[:8]
            m.d.comb += value.eq(Mux(code == 2 ** 8 - 1, CANONICAL_NAN, pack_float32(0, code, Const(0, 23))))
        elif config.scale_format == "e4m3":
            widen = m.submodules.widen = WidenToFloat32(E4M3_EXP_BITS, E4M3_MAN_BITS)
            sign, exponent, mantissa = self.i[7], self.i[3:7], self.i[:3]
            top = Cat(Const(0, 20), mantissa, Const(15 + FLOAT32_BIAS - 7, 8), sign)   # exponent 15 is finite
            m.d.comb += [widen.i.eq(self.i[:8]),
                         value.eq(Mux((exponent == 15) & (mantissa != 7), top, widen.o))]
        else:
            widen = m.submodules.widen = WidenToFloat32(5, 10)
            m.d.comb += [widen.i.eq(self.i), value.eq(widen.o)]
        offset = config.scale_exponent_offset
        if not offset:
            m.d.comb += self.o.eq(value)
            return m
        field = value[23:31]
        shifted = Signal(range(-2, FLOAT32_MAX_BIASED_EXPONENT + 2))
        m.d.comb += shifted.eq(field + offset)
        special = (field == 0) | (field == FLOAT32_MAX_BIASED_EXPONENT)
        in_range = (shifted >= 1) & (shifted < FLOAT32_MAX_BIASED_EXPONENT)
        m.d.comb += self.o.eq(Mux(special, value,
                                  Mux(in_range, Cat(value[:23], shifted[:8], value[31]), Cat(Const(0, 31), value[31]))))
        return m
