"""Proofs that settle mutants of the GDU which no port test can kill (docs/verification.md, "Measured on
an FP preset"): properties of the GDU's parts that make the mutation unobservable at its ports."""

import pytest
from amaranth import Module, Mux
from amaranth.back import rtlil
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.yosys_run import run_yosys
from hw.config import from_preset
from hw.fp_add import Float32Adder
from hw.gdu import NEGATIVE_ZERO

pytestmark = [pytest.mark.slow, pytest.mark.synth]


class _FirstGroupOperand(wiring.Component):
    """The accumulate stage's adder fed as in the GDU: ``Mux(first, first_operand, accumulator) + b``;
    ``first_operand`` is -0, or (``subnormal``) -0 with the mantissa bits on ``mantissa``."""
    first: In(1)
    accumulator: In(32)
    b: In(32)
    mantissa: In(23)
    o: Out(32)

    def __init__(self, stages: int, subnormal: bool):
        self._stages, self._subnormal = stages, subnormal
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        add = m.submodules.add = Float32Adder(stages=self._stages)
        first_operand = NEGATIVE_ZERO | self.mantissa if self._subnormal else NEGATIVE_ZERO
        m.d.comb += [add.a.eq(Mux(self.first, first_operand, self.accumulator)), add.b.eq(self.b), self.o.eq(add.o)]
        return m


def test_first_group_operand_is_any_negative_zero_under_daz(tmp_path):
    """w4a16-g128-16x16 gdu #89 (``hw/gdu.py:272``, bit 9 of the constant -0 tied to 1) and every
    mutant that sets bits of its mantissa: a negative subnormal first operand is a zero of its sign
    to the adder (DAZ), so every output of the pipelined adder is the same for every input stream
    (``sat -tempinduct``: from equal initial states, and by induction past the pipeline's depth)."""
    stages = from_preset("w4a16-g128-16x16").gdu_unit_stages
    for name, subnormal in (("gold", False), ("gate", True)):
        (tmp_path / f"{name}.il").write_text(rtlil.convert(_FirstGroupOperand(stages, subnormal), name=name))
    (tmp_path / "daz.ys").write_text(
        "read_rtlil gold.il\nread_rtlil gate.il\nproc\nopt_clean\n"
        "miter -equiv -flatten -make_assert gold gate miter\nhierarchy -top miter\nopt -fast -full\nopt_clean\n"
        "sat -verify -prove-asserts -set-init-zero -tempinduct -maxsteps 12 miter\n")
    run = run_yosys(tmp_path, "daz.ys", "daz.log", None, RuntimeError)
    assert run.returncode == 0 and "Induction step proven: SUCCESS!" in run.log, run.output[-2000:]
