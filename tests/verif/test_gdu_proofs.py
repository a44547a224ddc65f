"""Proofs that settle mutants of the GDU which no port test can kill (docs/verification.md, "Measured on
an FP preset"): properties of the GDU's parts that make the mutation unobservable at its ports."""

import pytest

from gen.mutate.blocks import plan_for
from gen.mutate.fp_invariants import multiplier_zero_operand_invariants
from gen.mutate.netlist import Mutation, list_mutations, rtlil_with_src
from gen.mutate.relational import prove_relational
from gen.mutate.subblocks import FOLDING, OPERAND, prove_folding, prove_operand
from gen.yosys_run import run_yosys
from hw.config import from_preset
from hw.emit import build_block

pytestmark = [pytest.mark.slow, pytest.mark.synth]

PRESET = "w4a16-g128-16x16"


def _yosys_proves(work, name: str, script: str, success: str) -> None:
    """Run ``script`` as ``work/<name>.ys``; it must end normally and log ``success``."""
    (work / f"{name}.ys").write_text(script)
    run = run_yosys(work, f"{name}.ys", f"{name}.log", None, RuntimeError)
    assert run.returncode == 0 and success in run.log, f"{name}: {run.output[-1000:]}"


@pytest.fixture(scope="module")
def gdu_design(tmp_path_factory):
    """The GDU of the preset as the campaign proves it (``design.il``), and the 200 mutations of each
    block's listing (seed 1)."""
    work = tmp_path_factory.mktemp("gdu")
    config = from_preset(PRESET)
    (work / "design.il").write_text(rtlil_with_src(build_block("gdu", config), "gdu"))
    listings = {block: {m.index: m for m in list_mutations(work, "design.il", 200, 1, plan_for(block, config).sources)}
                for block in ("gdu", "fp32")}
    return work, listings


def _listed(listings, block: str, index: int, cell: str) -> Mutation:
    mutation = listings[block][index]
    assert f"-cell {cell}" in mutation.spec, f"#{index} is now {mutation.spec}: the design's listing changed"
    return mutation


def test_first_group_operand_is_any_negative_zero_under_daz(gdu_design):
    """gdu #89 (``hw/gdu.py:272``, bit 9 of the constant -0 of ``Mux(first, -0, accumulator)`` tied to 1):
    the operand's fan-out ends in the accumulate stage's adder, which reads the negative subnormal
    0x80000200 as -0 (DAZ), so its outputs agree for every input stream (the campaign's
    :data:`~gen.mutate.subblocks.OPERAND` proof). The same bit of the exponent field (bit 23: a normal
    -2^-126) is not proven."""
    work, listings = gdu_design
    daz = _listed(listings, "gdu", 89, "$106 -port B -portbit 9")
    verdict = prove_operand(work, "design.il", "gdu", daz, timeout=1800)
    assert verdict.equivalent and verdict.method == f"{OPERAND} at gdu.accumulate", verdict
    normal = daz.with_options(portbit="23")
    assert not prove_operand(work, "design.il", "gdu", Mutation(1089, normal.spec), timeout=1800).equivalent


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


@pytest.mark.parametrize("block", sorted(FOLDING_MUTANTS))
def test_gdu_mutants_that_fold_away_are_equivalent(gdu_design, block):
    """gdu: the 15 mutants of a constant bit that already has the forced value, a bit that nothing
    reads, or (#18, #188) a change the next cell's width or test removes; fp32: #57 and #95, bits of
    the accumulate stage's row copies that only the scale stage reads (``lsb_exponent``). The
    campaign's :data:`~gen.mutate.subblocks.FOLDING` proof (the FP32 units black boxes, the memory
    one cell) proves each: 6 to 20 s of Yosys CPU."""
    work, listings = gdu_design
    for index, cell in FOLDING_MUTANTS[block]:
        verdict = prove_folding(work, "design.il", "gdu", _listed(listings, block, index, cell), timeout=600)
        assert verdict.equivalent and verdict.method == FOLDING, (index, verdict)


def test_zero_multiplier_operand_gives_a_signed_zero_whatever_its_significand(gdu_design):
    """fp32 #33 (``hw/fp_common.py:154``, bit 2 of the scale multiplier's ``a`` significand inverted
    when its bit 23 is 0, i.e. exactly when ``a``'s exponent field is 0): proven at the ports of
    ``gdu.scale_mul`` with :func:`~gen.mutate.fp_invariants.multiplier_zero_operand_invariants` (the
    product's registers agree unless the stage's ``is_zero`` is set), as the campaign does. A bit
    flipped whatever the exponent (bit 2 inverted) is not proven."""
    work, listings = gdu_design
    mutation = _listed(listings, "fp32", 33, r"$flatten\scale_mul.$351 -port Y -portbit 2")
    module, local = mutation.submodule("gdu")
    invariants = multiplier_zero_operand_invariants(from_preset(PRESET))
    proven, detail = prove_relational(work, "design.il", module, local, invariants, timeout=1800)
    assert proven, detail
    always = Mutation(1033, f"mutate -mode inv -module {module} -cell {local.option('cell')} -port Y -portbit 2")
    assert not prove_relational(work, "design.il", module, always, invariants, timeout=1800)[0]


def test_scale_multiplier_carry_save_bits_the_fp32_survivors_touch_are_zero(gdu_design):
    """w4a16-g128-16x16 fp32 #74, #155, #182 (mutants of the GDU's scale multiplier, ``hw/fp_mul.py``):
    the bits they change or read are 0 for every input, from the carry-save tree's shape (partial
    product k spans bits k..k+23). #74 XORs bit 19 of ``partial_rows_8`` (the register of
    ``layer3_c3``) with its bit 12; #155 ties bit 39 of the majority of ``partial_rows_5..7``
    (``layer3_s0``, ``layer3_c0``, ``layer3_s3``) to 0, and two of the three never have it; #182 ties
    bit 47 of the copy of row 22's ``Mux`` read only by ``row21 & row22`` (``$206`` is row 21's copy
    there). Combinational at the register inputs (``sat -seq 1``: register outputs free); the
    registers start at 0, so their copies keep the bits 0."""
    _yosys_proves(gdu_design[0], "bits", "read_rtlil design.il\nhierarchy -top gdu.scale_mul\nproc\nopt_clean\n"
                  "select -assert-any w:$206\nsat -seq 1 -verify -prove layer3_c3[12] 1'0 -prove layer3_s0[39] 1'0 "
                  "-prove layer3_c0[39] 1'0 -prove $206[47] 1'0 gdu.scale_mul\n", "SAT proof finished - no model found: SUCCESS!")
