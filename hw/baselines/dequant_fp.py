"""Baseline: the conventional mixed-precision PE that dequantizes every weight before multiplying."""

from amaranth import Signal, signed, unsigned

from ..config import MixPEConfig
from ..pe import SystolicPE
from ..fp_add import Float32Adder
from ..fp_int_to_float import IntToFloat32
from ..fp_mul import Float32Multiplier
from ..fp_widen import WidenToFloat32
from ..layouts import FP16_BITS, FP32_BITS

__all__ = ["DequantFloatPE"]


class DequantFloatPE(SystolicPE):
    """Dequantize-then-multiply PE for b-bit codes and INT8 activations, FP32 accumulation.

    Every step with ``valid`` computes, in IEEE binary32 with the numerics of
    :mod:`golden.fp32` (RNE, subnormals flushed, canonical NaN):

    ======  ====================================================================================
    1       ``d = Q - z``                      exact integer, ``weight_bits + 1`` bits signed
    2       ``w = fp32(d) * fp32(s)``          s is the column's FP16 group scale, widened exactly;
                                              the product has at most b + 11 significant bits, so
                                              ``w`` is exactly ``(Q - z) * s`` (never rounded)
    3       ``p = fp32(x) * w``                fp32(x) is exact; one rounding (RNE)
    4       ``acc = acc + p``                  one rounding; ``acc`` starts at +0
    ======  ====================================================================================

    So the drained value is ``((0 + p_0) + p_1) + ...`` over the steps since the last drain,
    added in order. The per-token activation scale is applied outside the PE (one FP32 multiply
    per output at the column edge). The scale and zero point travel down the column with the
    code (registered like ``w``), as in a systolic array without a separate broadcast network.
    The four FP32 units are the same generic blocks as in the GDU (``hw/fp_*.py``); synthesis
    removes the logic made constant by the narrow operands (8-bit x, b-bit d).

    Ports: x: In(signed(8)), w: In(unsigned(b)), scale: In(16) raw FP16, zero: In(unsigned(b)),
    valid, group_last: In(1) (``group_last`` marks the step after which the sum drains);
    x_out, w_out, scale_out, zero_out, valid_out, group_last_out: registered copies;
    psum: Out(32) raw FP32, psum_valid: Out(1). Latency 1, like the MixPE PE.
    """

    def __init__(self, config: MixPEConfig):
        super().__init__(config, x_shape=signed(config.act_bits), w_shape=unsigned(config.weight_bits),
                         sum_shape=FP32_BITS, side={"scale": FP16_BITS, "zero": unsigned(config.weight_bits)})

    def accumulate(self, m, accumulator):
        config = self._config
        difference = Signal(signed(config.weight_bits + 1))
        m.d.comb += difference.eq(self.w - self.zero)

        weight_to_float = m.submodules.weight_to_float = IntToFloat32(config.weight_bits + 1)
        scale_widen = m.submodules.scale_widen = WidenToFloat32(5, 10)
        dequant = m.submodules.dequant = Float32Multiplier()
        act_to_float = m.submodules.act_to_float = IntToFloat32(config.act_bits)
        multiply = m.submodules.multiply = Float32Multiplier()
        add = m.submodules.accumulate = Float32Adder()
        m.d.comb += [
            weight_to_float.i.eq(difference),
            scale_widen.i.eq(self.scale),
            dequant.a.eq(weight_to_float.o),
            dequant.b.eq(scale_widen.o),
            act_to_float.i.eq(self.x),
            multiply.a.eq(act_to_float.o),
            multiply.b.eq(dequant.o),
            add.a.eq(accumulator),
            add.b.eq(multiply.o),
        ]
        return add.o
