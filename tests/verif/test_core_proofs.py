"""The default preset's core mutants that only the whole core shows equivalent, proven on the small
core of the same structure (:mod:`gen.mutate.core_proofs`: 4 x 6, 2 GDU lanes, g = 128, W4A8), and
the same properties failing on a mutant of the same cell that changes the ports.

The specs are the campaign's (``mixpe mutate --blocks mpgemm --mutants 200 --seed 1`` on
w4a8-g128-16x16, ``build/mutate-h2/mpgemm-74c3858547d4/mutations.txt``). The mapping is cheap and
runs in the default tier; each proof is a Yosys induction of minutes (slow)."""

import pytest

from gen.mutate.core_proofs import band_first_proof, flag_reset_proof, small_configuration, small_core_proof
from gen.mutate.netlist import Mutation
from hw.config import load_config

DEFAULT = load_config("w4a8-g128-16x16")
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
    # a psum bit tied to a constant changes the sum read; an FP core has another structure
    assert small_core_proof(Mutation(1, MUTANTS[20].replace("-mode inv", "-mode const1")), DEFAULT) is None
    assert small_core_proof(Mutation(20, MUTANTS[20]), load_config("w4a16-g128-16x16")) is None


def _prove(tmp_path, proof, mutation=None):
    from gen.mutate.core_proofs import prove_on_small_core
    return prove_on_small_core(tmp_path, proof, timeout=3600, mutation=mutation)


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.parametrize("index", [20, 53, 64, 62, 85])
def test_default_mutant_is_proven_on_the_small_core(tmp_path, index):
    verdict = _prove(tmp_path, _proof(index))
    assert verdict.equivalent, verdict.detail


def _same_cell_otherwise(tmp_path, proof, options: str) -> Mutation:
    """The mutation of ``proof``'s small-core cell with ``options`` in place of its own."""
    from gen.mutate.core_proofs import _small_mutation, prepare_core
    design, _ = prepare_core(tmp_path, proof.small, proof.cut)
    spec = _small_mutation(proof, (tmp_path / design).read_text()).spec
    return Mutation(1, spec.replace(proof.options, options))


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.parametrize("index, options", [
    (20, "-mode const1 -port Q -portbit 18"),   # the bit stuck: wrong in every read of a sum with bit 18 clear
    (62, "-mode const1 -port A -portbit 1"),    # row 0 no longer latches: it takes the previous column's zero
    (85, "-mode const1 -port S -portbit 0"),    # the flag always cleared: the PE never drains
])
def test_the_same_property_fails_on_a_mutant_that_changes_the_ports(tmp_path, index, options):
    proof = _proof(index)
    verdict = _prove(tmp_path, proof, _same_cell_otherwise(tmp_path, proof, options))
    assert not verdict.equivalent
