"""Baseline: the conventional mixed-precision PE that dequantizes every weight before multiplying."""

from amaranth import Cat, Const, Mux, Signal, signed, unsigned

from ..config import MixPEConfig
from ..formats import ActivationFormat
from ..pe import SystolicPE
from ..fp_add import Float32Adder
from ..fp_common import FLOAT32_BIAS, FLOAT32_MAN_BITS
from ..fp_int_to_float import IntToFloat32
from ..fp_mul import Float32Multiplier
from ..fp_widen import WidenToFloat32
from ..layouts import FP16_BITS, FP32_BITS

__all__ = ["DequantFloatPE", "activation_to_float32"]


def activation_to_float32(m, code, fmt: ActivationFormat):
    """Exact binary32 bits of one raw activation ``code`` of format ``fmt``, built in ``m``.

    INT8 through :class:`~hw.fp_int_to_float.IntToFloat32`; floating point through
    :class:`~hw.fp_widen.WidenToFloat32`, whose all-ones exponent is Inf/NaN, so for ``"fn"``
    formats (FP8 E4M3: only ``S.1..1.1..1`` is NaN) the rest of that binade is packed here as the
    normal numbers it encodes."""
    if not fmt.is_float:
        convert = m.submodules.act_to_float = IntToFloat32(fmt.bits)
        m.d.comb += convert.i.eq(code)
        return convert.o
    widen = m.submodules.act_widen = WidenToFloat32(fmt.exp_bits, fmt.man_bits)
    m.d.comb += widen.i.eq(code)
    if fmt.specials != "fn":
        return widen.o
    all_ones_exp, all_ones_man = 2 ** fmt.exp_bits - 1, 2 ** fmt.man_bits - 1
    mantissa = code[:fmt.man_bits]
    exponent = code[fmt.man_bits:fmt.man_bits + fmt.exp_bits]
    top_binade = Cat(Const(0, FLOAT32_MAN_BITS - fmt.man_bits), mantissa,
                     Const(all_ones_exp - fmt.bias + FLOAT32_BIAS, 8), code[-1])
    return Mux((exponent == all_ones_exp) & (mantissa != all_ones_man), top_binade, widen.o)


class DequantFloatPE(SystolicPE):
    """Dequantize-then-multiply PE for b-bit codes, INT8 or floating-point activations, FP32 accumulation.

    Every step with ``valid`` computes, in IEEE binary32 with the numerics of
    :mod:`golden.fp32` (RNE, subnormals flushed, canonical NaN):

    ======  ====================================================================================
    1       ``d = Q - z``                      exact integer, ``weight_bits + 1`` bits signed
    2       ``w = fp32(d) * fp32(s)``          s is the column's FP16 group scale, widened exactly;
                                              the product has at most b + 11 significant bits, so
                                              ``w`` is exactly ``(Q - z) * s`` (never rounded)
    3       ``p = fp32(x) * w``                fp32(x) is exact (:func:`activation_to_float32`: INT8,
                                              or the configured FP16/BF16/FP8 code); one rounding
    4       ``acc = acc + p``                  one rounding; ``acc`` starts at +0
    ======  ====================================================================================

    So the drained value is ``((0 + p_0) + p_1) + ...`` over the steps since the last drain,
    added in order. With INT8 activations the per-token scale is applied outside the PE (one
    FP32 multiply per output at the column edge); floating-point activations have none. The
    scale and zero point travel down the column with the code (registered like ``w``), as in a
    systolic array without a separate broadcast network. The FP32 units are the same generic
    blocks as in the GDU (``hw/fp_*.py``); synthesis removes the logic made constant by the
    narrow operands (b-bit d, the activation's significand).

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        Gives b and the activation format.

    Members
    -------
    x : ``In(signed(8))`` (INT8) or ``In(unsigned(act_bits))`` (raw floating-point code)
        Activation.
    w : ``In(unsigned(weight_bits))``
        Weight code.
    scale : ``In(16)``, zero : ``In(unsigned(weight_bits))``
        Raw FP16 group scale and integer zero point, travelling with ``x``.
    valid, group_last, x_out, w_out, scale_out, zero_out, valid_out, group_last_out
        As in :class:`~hw.pe.SystolicPE`.
    psum : ``Out(32)``, psum_valid : ``Out(1)``
        Drain register, raw FP32.

    Latency
    -------
    1 cycle, like the MixPE PE.
    """

    def __init__(self, config: MixPEConfig):
        x_shape = unsigned(config.act_bits) if config.fp_activation else signed(config.act_bits)
        super().__init__(config, x_shape=x_shape, w_shape=unsigned(config.weight_bits),
                         sum_shape=FP32_BITS, side={"scale": FP16_BITS, "zero": unsigned(config.weight_bits)})

    def accumulate(self, m, accumulator):
        config = self._config
        difference = Signal(signed(config.weight_bits + 1))
        m.d.comb += difference.eq(self.w - self.zero)

        weight_to_float = m.submodules.weight_to_float = IntToFloat32(config.weight_bits + 1)
        scale_widen = m.submodules.scale_widen = WidenToFloat32(5, 10)
        dequant = m.submodules.dequant = Float32Multiplier()
        multiply = m.submodules.multiply = Float32Multiplier()
        add = m.submodules.accumulate = Float32Adder()
        m.d.comb += [
            weight_to_float.i.eq(difference),
            scale_widen.i.eq(self.scale),
            dequant.a.eq(weight_to_float.o),
            dequant.b.eq(scale_widen.o),
            multiply.a.eq(activation_to_float32(m, self.x, config.act_format)),
            multiply.b.eq(dequant.o),
            add.a.eq(accumulator),
            add.b.eq(multiply.o),
        ]
        return add.o
