"""Baseline: FP16 x FP16 multiply with FP32 accumulation."""

from ..config import MixPEConfig
from ..pe import SystolicPE
from ..fp_add import Float32Adder
from ..fp_mul import Float32Multiplier
from ..fp_widen import WidenToFloat32
from ..layouts import FP16_BITS, FP32_BITS

__all__ = ["Float16PE"]


class Float16PE(SystolicPE):
    """The FP16 PE (W16A16): ``acc = acc + fp32(x) * fp32(w)`` in IEEE binary32.

    Both FP16 operands are widened exactly to FP32 (:class:`hw.fp_widen.WidenToFloat32`, FP16
    subnormals become FP32 normals). Their product has at most 22 significant bits and an
    exponent within 2^-48 .. 2^32, so the FP32 multiply is exact; only the accumulation rounds
    (RNE, :func:`golden.fp32.fadd32`). ``acc`` starts at +0 and the drained value is
    ``((0 + p_0) + p_1) + ...`` in step order. NaN/infinity operands follow :mod:`golden.fp32`.

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        Only names the instance: the PE has no configurable width and stays FP16 x FP16 whatever
        ``config.activation`` is (the paper's W16A16 reference point).

    Members
    -------
    x, w : ``In(16)``
        Raw FP16 activation and weight.
    valid, group_last, x_out, w_out, valid_out, group_last_out
        As in :class:`~hw.pe.SystolicPE`.
    psum : ``Out(32)``, psum_valid : ``Out(1)``
        Drain register, raw FP32.

    Latency
    -------
    1 cycle.
    """

    def __init__(self, config: MixPEConfig):
        super().__init__(config, x_shape=FP16_BITS, w_shape=FP16_BITS, sum_shape=FP32_BITS)

    def accumulate(self, m, accumulator):
        x_widen = m.submodules.x_widen = WidenToFloat32(5, 10)
        w_widen = m.submodules.w_widen = WidenToFloat32(5, 10)
        multiply = m.submodules.multiply = Float32Multiplier()
        add = m.submodules.accumulate = Float32Adder()
        m.d.comb += [
            x_widen.i.eq(self.x),
            w_widen.i.eq(self.w),
            multiply.a.eq(x_widen.o),
            multiply.b.eq(w_widen.o),
            add.a.eq(accumulator),
            add.b.eq(multiply.o),
        ]
        return add.o
