"""Baseline: FP16 x FP16 multiply with FP32 accumulation."""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import MixPEConfig
from ..fp_add import Float32Adder
from ..fp_mul import Float32Multiplier
from ..fp_widen import WidenToFloat32
from ..layouts import FP16_BITS, FP32_BITS

__all__ = ["Float16PE"]


class Float16PE(wiring.Component):
    """The FP16 PE (W16A16): ``acc = acc + fp32(x) * fp32(w)`` in IEEE binary32.

    Both FP16 operands are widened exactly to FP32 (:class:`hw.fp_widen.WidenToFloat32`, FP16
    subnormals become FP32 normals). Their product has at most 22 significant bits and an
    exponent within 2^-48 .. 2^32, so the FP32 multiply is exact; only the accumulation rounds
    (RNE, :func:`golden.fp32.fadd32`). ``acc`` starts at +0 and the drained value is
    ``((0 + p_0) + p_1) + ...`` in step order. NaN/infinity operands follow :mod:`golden.fp32`.

    Ports: x, w: In(16) raw FP16; valid, group_last: In(1); x_out, w_out, valid_out,
    group_last_out: registered copies; psum: Out(32) raw FP32, psum_valid: Out(1). Latency 1.
    The configuration only names the instance (the PE has no configurable width).
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        super().__init__({
            "x": In(FP16_BITS),
            "valid": In(1),
            "group_last": In(1),
            "w": In(FP16_BITS),
            "x_out": Out(FP16_BITS),
            "valid_out": Out(1),
            "group_last_out": Out(1),
            "w_out": Out(FP16_BITS),
            "psum": Out(FP32_BITS),
            "psum_valid": Out(1),
        })

    @property
    def latency(self) -> int:
        return 1

    def elaborate(self, platform):
        m = Module()
        x_widen = m.submodules.x_widen = WidenToFloat32(5, 10)
        w_widen = m.submodules.w_widen = WidenToFloat32(5, 10)
        multiply = m.submodules.multiply = Float32Multiplier()
        accumulate = m.submodules.accumulate = Float32Adder()
        accumulator = Signal(FP32_BITS)
        m.d.comb += [
            x_widen.i.eq(self.x),
            w_widen.i.eq(self.w),
            multiply.a.eq(x_widen.o),
            multiply.b.eq(w_widen.o),
            accumulate.a.eq(accumulator),
            accumulate.b.eq(multiply.o),
        ]
        m.d.sync += [
            self.x_out.eq(self.x),
            self.valid_out.eq(self.valid),
            self.group_last_out.eq(self.group_last),
            self.w_out.eq(self.w),
            self.psum_valid.eq(self.valid & self.group_last),
        ]
        with m.If(self.valid):
            with m.If(self.group_last):
                m.d.sync += [self.psum.eq(accumulate.o), accumulator.eq(0)]
            with m.Else():
                m.d.sync += accumulator.eq(accumulate.o)
        return m
