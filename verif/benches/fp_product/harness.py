"""Test harness of the floating-point product path: the edge aligner feeding one PE per weight code."""

from amaranth import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.config import MixPEConfig
from hw.fp_align import ActivationAligner
from hw.pe import ProcessingElement

__all__ = ["FPProductPath"]


class FPProductPath(wiring.Component):
    """One activation code per cycle through :class:`~hw.fp_align.ActivationAligner` (one row) into
    ``2**b`` PEs, PE ``q`` holding weight code ``q``; every step is a one-step group, so
    ``product[q]`` is ``aligned * q`` one cycle after the step (``product_valid``), the path
    every activation of the array takes. ``invalid`` is the aligner's flag, combinational.

    Ports:
        x: In(unsigned(bits)), e_max: In(unsigned(E)), valid: In(1)
        product: Out(ArrayLayout(signed(psum_bits), 2**b)), product_valid: Out(1), invalid: Out(1)
    """

    def __init__(self, config: MixPEConfig):
        self._row = config.replace(rows=1, cols=1, name=f"{config.name}-product")
        super().__init__({
            "x": In(self._row.act_bits),
            "e_max": In(self._row.act_exp_bits),
            "valid": In(1),
            "product": Out(data.ArrayLayout(signed(config.psum_bits), config.code_max + 1)),
            "product_valid": Out(1),
            "invalid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        aligner = m.submodules.aligner = ActivationAligner(self._row)
        m.d.comb += [aligner.x[0].eq(self.x), aligner.e_max[0].eq(self.e_max), self.invalid.eq(aligner.invalid[0])]
        for code in range(self._row.code_max + 1):
            pe = m.submodules[f"pe_{code}"] = ProcessingElement(self._row)
            m.d.comb += [pe.x.eq(aligner.aligned[0]), pe.w.eq(code), pe.valid.eq(self.valid),
                         pe.group_last.eq(1), self.product[code].eq(pe.psum)]
            if code == 0:
                m.d.comb += self.product_valid.eq(pe.psum_valid)
        return m
