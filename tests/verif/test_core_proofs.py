"""The core mutants that only the whole core shows equivalent, proven on the small core of the same
structure (:mod:`gen.mutate.core_proofs`: 4 x 6, 2 GDU lanes, g = 128, W4A8 or W4A16 with FP16
activations), the same properties failing on a mutant of the same cell that changes the ports, and
the mutated cell alone.

The specs are the campaign's (``mixpe mutate --blocks mpgemm --mutants 200 --seed 1`` on
w4a8-g128-16x16, ``build/mutate-h2/mpgemm-74c3858547d4/mutations.txt``; on w4a16-g128-16x16,
``build/mutate-h4/mpgemm-9bca7b04baee/mutations.txt``). The mapping is cheap and runs in the
default tier; each proof is a Yosys induction of minutes (slow)."""

import pytest

from gen.mutate.core_proofs import (band_first_proof, cell_alone_proof, flag_reset_proof, forward_reset_proof,
                                    prove_on_small_core, small_configuration, small_core_proof)
from gen.mutate.netlist import Mutation
from hw.config import load_config

DEFAULT = load_config("w4a8-g128-16x16")
FP = load_config("w4a16-g128-16x16")
_SRC = "-src /work/main/hw/pe.py:87"
#: mpgemm mutant index -> its spec in the default preset's campaign.
MUTANTS = {
    20: rf"mutate -mode inv -module mpgemm -cell $flatten\array.\pe_15_14.$47 -port Q -portbit 18 "
        rf"-wire array.pe_15_14.psum -wirebit 18 {_SRC}",
    53: rf"mutate -mode inv -module mpgemm -cell $flatten\array.\pe_4_1.$47 -port Q -portbit 14 "
        rf"-wire array.pe_4_1.psum -wirebit 14 {_SRC}",
    64: rf"mutate -mode cnot1 -module mpgemm -cell $flatten\array.\pe_14_8.$47 -port Q -portbit 6 -ctrlbit 3 "
        rf"-wire array.pe_14_8.psum -wirebit 6 {_SRC}",
    62: r"mutate -mode const0 -module mpgemm -cell $flatten\gdu_1.$134 -port A -portbit 1 "
        r"-src /work/main/hw/gdu.py:162",
}


#: The FP preset's mpgemm mutants proven on its small core (the reset multiplexers' roles are read from the
#: campaign's design; here by their twins' constructors).
FP_MUTANTS = {
    114: rf"mutate -mode inv -module mpgemm -cell $flatten\array.\pe_5_10.$47 -port Q -portbit 1 "
         rf"-wire array.pe_5_10.psum -wirebit 1 {_SRC}",
    200: rf"mutate -mode inv -module mpgemm -cell $flatten\array.\pe_2_14.$47 -port Q -portbit 24 "
         rf"-wire array.pe_2_14.psum -wirebit 24 {_SRC}",
}


def _fp_proof(index: int):
    """#170: PE (10, 5)'s psum reset $procmux$3084, its A input (the value loaded or held) bit 15 XOR-ed
    with NOT bit 11; #82: PE (15, 4)'s valid_out reset value inverted ($procmux$1273); #148: PE (13, 14)'s
    x_out reset value with bit 13 set ($procmux$1783)."""
    from gen.mutate.core_proofs import _psum_proof
    if index == 170:
        return _psum_proof(FP, small_configuration(FP), 10, 5, "-mode cnot0 -port A -portbit 15 -ctrlbit 11")
    if index == 82:
        return forward_reset_proof(FP, 15, 4, "valid_out", "-mode inv -port B -portbit 0")
    if index == 148:
        return forward_reset_proof(FP, 13, 14, "x_out", "-mode const1 -port B -portbit 13")
    return small_core_proof(Mutation(index, FP_MUTANTS[index]), FP)


def _proof(index: int):
    """#62's copy of the compare (the 7th of lane 1's ten, a select of the zero multiplexer) is what
    the campaign finds in its design (``small_core_proof`` with the campaign's directory)."""
    if index == 62:
        return band_first_proof(DEFAULT, 1, 6, "const0", 1)
    if index == 85:  # PE (7, 1)'s $procmux$4068: its role read from the campaign's design, as for #62
        return flag_reset_proof(DEFAULT, 7, 1)
    return small_core_proof(Mutation(index, MUTANTS[index]), DEFAULT)


def test_default_mutants_map_to_the_same_roles_on_the_small_core():
    small = small_configuration(DEFAULT)
    assert (small.rows, small.cols, small.lanes, small.lane_period(2)) == (4, 6, 2, 4)
    assert (small.psum_bits, small.group_interval) == (DEFAULT.psum_bits, DEFAULT.group_interval)
    assert [(_proof(i).role, _proof(i).place, _proof(i).options) for i in (20, 53, 64, 62)] == [
        ("pe_psum", (3, 4), "-mode inv -port Q -portbit 18"),              # last row, lane 0, last index
        ("pe_psum", (1, 1), "-mode inv -port Q -portbit 14"),              # a middle row, lane 1, index 0
        ("pe_psum", (2, 2), "-mode cnot1 -port Q -portbit 6 -ctrlbit 3"),  # a middle row, lane 0, middle index
        ("band_first", (1, 6), "-mode const0 -port A -portbit 1"),
    ]
    assert small_core_proof(Mutation(62, MUTANTS[62]), DEFAULT) is None  # the copy needs the campaign's design
    assert _proof(85).place == (1, 1)
    # a psum bit tied to a constant changes the sum read
    assert small_core_proof(Mutation(1, MUTANTS[20].replace("-mode inv", "-mode const1")), DEFAULT) is None


def test_fp_mutants_map_to_the_same_roles_on_the_small_core():
    """The FP preset's small core keeps its activation format, so the aligner, the invalid flags, the
    edge registers and the PE's widths (psum 29 bits) are the original's."""
    small = small_configuration(FP)
    assert (small.rows, small.cols, small.lanes, small.lane_period(2), small.activation) == (4, 6, 2, 4, "fp16")
    assert (small.psum_bits, small.pe_act_bits, small.edge_stages) == (FP.psum_bits, FP.pe_act_bits, FP.edge_stages)
    assert [(_fp_proof(i).role, _fp_proof(i).place, _fp_proof(i).options, _fp_proof(i).register)
            for i in (114, 200, 170, 82, 148)] == [
        ("pe_psum", (1, 2), "-mode inv -port Q -portbit 1", ""),
        ("pe_psum", (1, 4), "-mode inv -port Q -portbit 24", ""),
        ("pe_psum", (2, 3), "-mode cnot0 -port A -portbit 15 -ctrlbit 11", ""),
        ("forward_reset", (3, 2), "-mode inv -port B -portbit 0", "valid_out"),
        ("forward_reset", (2, 4), "-mode const1 -port B -portbit 13", "x_out"),
    ]


_COMPARE = """module \\mpgemm
  wire width 4 input 1 \\phase
  wire output 2 \\hit
  cell $eq $flatten\\array.$1
    parameter \\A_SIGNED 0
    parameter \\B_SIGNED 0
    parameter \\A_WIDTH 4
    parameter \\B_WIDTH 3
    parameter \\Y_WIDTH 1
    connect \\A \\phase
    connect \\B 3'100
    connect \\Y \\hit
  end
end
"""


@pytest.mark.synth
@pytest.mark.parametrize("options, proven", [
    ("-mode cnot1 -port A -portbit 1 -ctrlbit 3", True),   # FP #138: the flip needs bit 3, which 4 does not have
    ("-mode const0 -port B -portbit 0", True),             # FP #84's form: a constant bit tied to its own value
    ("-mode cnot1 -port A -portbit 1 -ctrlbit 2", False),  # 6 now compares equal
    ("-mode inv -port A -portbit 1", False),
])
def test_a_compare_with_a_constant_is_proven_with_the_cell_alone(tmp_path, options, proven):
    (tmp_path / "design.il").write_text(_COMPARE)
    mutation = Mutation(1, rf"mutate -module mpgemm -cell $flatten\array.$1 {options}")
    twin = cell_alone_proof(mutation, FP, tmp_path)
    assert twin.role == "cell" and twin.method == "the mutated cell alone + sat"
    assert prove_on_small_core(tmp_path / "proof", twin, timeout=120).equivalent == proven


def _prove(tmp_path, proof, mutation=None):
    return prove_on_small_core(tmp_path, proof, timeout=3600, mutation=mutation)


#: The small-core twin of a campaign mutant, per preset.
_TWINS = {"default": _proof, "fp": _fp_proof}


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.parametrize("preset, index", [("default", index) for index in (20, 53, 64, 62, 85)]
                         + [("fp", index) for index in (114, 200, 170, 82, 148)])
def test_mutant_is_proven_on_the_small_core(tmp_path, preset, index):
    verdict = _prove(tmp_path, _TWINS[preset](index))
    assert verdict.equivalent, verdict.detail


def _same_cell_otherwise(tmp_path, proof, options: str) -> Mutation:
    """The mutation of ``proof``'s small-core cell with ``options`` in place of its own."""
    from gen.mutate.core_proofs import _small_mutation, prepare_core
    design, _ = prepare_core(tmp_path, proof.small, proof.cut)
    spec = _small_mutation(proof, (tmp_path / design).read_text()).spec
    return Mutation(1, spec.replace(proof.options, options))


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.parametrize("preset, index, options", [
    ("default", 20, "-mode const1 -port Q -portbit 18"),  # stuck: wrong in every read of a sum with bit 18 clear
    ("default", 62, "-mode const1 -port A -portbit 1"),  # row 0 no longer latches: takes the previous column's zero
    ("default", 85, "-mode const1 -port S -portbit 0"),  # the flag always cleared: the PE never drains
    ("fp", 114, "-mode const1 -port Q -portbit 1"),  # the FP core's walk reads the stuck bit
    ("fp", 82, "-mode inv -port A -portbit 0"),  # valid_out inverted whatever the reset: bubbles become steps
    ("fp", 148, "-mode const1 -port A -portbit 13"),  # x_out's bit 13 set on every step, read while valid
])
def test_the_same_property_fails_on_a_mutant_that_changes_the_ports(tmp_path, preset, index, options):
    proof = _TWINS[preset](index)
    verdict = _prove(tmp_path, proof, _same_cell_otherwise(tmp_path, proof, options))
    assert not verdict.equivalent
