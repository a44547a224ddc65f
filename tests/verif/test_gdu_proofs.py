"""Proofs that settle mutants of the GDU which no port test can kill (docs/verification.md, "Measured on
an FP preset"): properties of the GDU's parts that make the mutation unobservable at its ports."""

import pytest
from amaranth import Module, Mux
from amaranth.back import rtlil
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.mutate.blocks import plan_for
from gen.mutate.netlist import list_mutations, rtlil_with_src
from gen.yosys_run import run_yosys
from hw.config import from_preset
from hw.emit import build_block
from hw.fp_add import Float32Adder
from hw.gdu import NEGATIVE_ZERO

pytestmark = [pytest.mark.slow, pytest.mark.synth]


def _yosys_proves(work, name: str, script: str, success: str) -> None:
    """Run ``script`` as ``work/<name>.ys``; it must end normally and log ``success``."""
    (work / f"{name}.ys").write_text(script)
    run = run_yosys(work, f"{name}.ys", f"{name}.log", None, RuntimeError)
    assert run.returncode == 0 and success in run.log, f"{name}: {run.output[-1000:]}"


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
    _yosys_proves(tmp_path, "daz", "read_rtlil gold.il\nread_rtlil gate.il\nproc\nopt_clean\n"
                  "miter -equiv -flatten -make_assert gold gate miter\nhierarchy -top miter\nopt -fast -full\nopt_clean\n"
                  "sat -verify -prove-asserts -set-init-zero -tempinduct -maxsteps 12 miter\n",
                  "Induction step proven: SUCCESS!")


#: w4a16-g128-16x16's survivors at 200 mutants, seed 1, that fold away, per block (the campaign lists
#: each block's mutations apart): (index, cell and port bit).
FOLDING_MUTANTS = {
    "gdu": ((18, "$108 -port B -portbit 6"), (24, "$115 -port B -portbit 3"), (29, "$115 -port A -portbit 0"),
            (50, "$120 -port A -portbit 3"), (51, "$179 -port Y -portbit 5"), (108, "$180 -port A -portbit 0"),
            (115, "$139 -port A -portbit 0"), (127, "$130 -port A -portbit 2"), (136, "$106 -port B -portbit 21"),
            (160, "$110 -port B -portbit 3"), (175, "$136 -port A -portbit 1"), (180, "$106 -port B -portbit 1"),
            (185, "$178 -port A -portbit 0"), (188, "$129 -port A -portbit 3"), (199, "$107 -port B -portbit 15")),
    "fp32": ((57, "$259 -port D -portbit 13"), (95, "$257 -port Q -portbit 15")),
}
#: Gold or mutant (``{mutation}``) as module ``{name}``: the GDU's own logic, its FP32 units black boxes.
#: Every ``init`` is 0 (Amaranth's), so it is dropped here and set to 0 for all below (a mutated
#: register output would leave a conflicting one).
_UNITS_AS_BLACK_BOXES = ("read_rtlil design.il\nhierarchy -top gdu\nproc\nmemory_collect\nopt_clean\n"
                         "blackbox gdu.to_float gdu.widen gdu.scale_mul gdu.accumulate\n{mutation}"
                         "attrmap -remove init\nrename gdu {name}\n")


@pytest.mark.parametrize("block", sorted(FOLDING_MUTANTS))
def test_gdu_mutants_that_fold_away_are_equivalent(tmp_path, block):
    """gdu: the 15 mutants of a constant bit that already has the forced value, a bit that nothing
    reads, or (#18, #188) a change the next cell's width or test removes; fp32: #57 and #95, bits of
    the accumulate stage's row copies that only the scale stage reads (``lsb_exponent``). With the
    FP32 units as black boxes (unmutated in both, so equal inputs give equal outputs) and the memory
    one cell, gold and mutant are optimised (register bits apart, unread ones and unread wires gone),
    matched by name and merged (``equiv_struct``); ``equiv_simple`` and ``equiv_induct`` (the held
    scale and zero point; the units and the memory left out, their outputs free) prove every matched
    signal, the ports among them. 6 to 20 s of Yosys CPU each."""
    config = from_preset("w4a16-g128-16x16")
    (tmp_path / "design.il").write_text(rtlil_with_src(build_block("gdu", config), "gdu"))
    mutations = {m.index: m for m in list_mutations(tmp_path, "design.il", 200, 1, plan_for(block, config).sources)}
    for index, cell in FOLDING_MUTANTS[block]:
        spec = mutations[index].spec
        assert f"-cell {cell}" in spec, f"#{index} is now {spec}: the design's listing changed"
        _yosys_proves(tmp_path, f"fold_{index}", _UNITS_AS_BLACK_BOXES.format(mutation=spec + "\n", name="gate")
                      + "design -stash gate\n" + _UNITS_AS_BLACK_BOXES.format(mutation="", name="gold")
                      + "design -copy-from gate -as gate gate\nsetundef -zero -init\nsimplemap t:$dff t:$dffe\n"
                      "opt -full\nopt_clean -purge\nequiv_make gold gate equiv\nhierarchy -top equiv\nequiv_struct\n"
                      "equiv_simple -seq 4\nequiv_induct -seq 4 * t:gdu.* %d t:$mem_v2 %d\nequiv_status -assert\n",
                      "Equivalence successfully proven!")


def test_scale_multiplier_carry_save_bits_the_fp32_survivors_touch_are_zero(tmp_path):
    """w4a16-g128-16x16 fp32 #74, #155, #182 (mutants of the GDU's scale multiplier, ``hw/fp_mul.py``):
    the bits they change or read are 0 for every input, from the carry-save tree's shape (partial
    product k spans bits k..k+23). #74 XORs bit 19 of ``partial_rows_8`` (the register of
    ``layer3_c3``) with its bit 12; #155 ties bit 39 of the majority of ``partial_rows_5..7``
    (``layer3_s0``, ``layer3_c0``, ``layer3_s3``) to 0, and two of the three never have it; #182 ties
    bit 47 of the copy of row 22's ``Mux`` read only by ``row21 & row22`` (``$206`` is row 21's copy
    there). Combinational at the register inputs (``sat -seq 1``: register outputs free); the
    registers start at 0, so their copies keep the bits 0."""
    (tmp_path / "design.il").write_text(rtlil_with_src(build_block("gdu", from_preset("w4a16-g128-16x16")), "gdu"))
    _yosys_proves(tmp_path, "bits", "read_rtlil design.il\nhierarchy -top gdu.scale_mul\nproc\nopt_clean\n"
                  "select -assert-any w:$206\nsat -seq 1 -verify -prove layer3_c3[12] 1'0 -prove layer3_s0[39] 1'0 "
                  "-prove layer3_c0[39] 1'0 -prove $206[47] 1'0 gdu.scale_mul\n", "SAT proof finished - no model found: SUCCESS!")
