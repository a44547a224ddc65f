"""The "same valid beats" miter of :mod:`gen.mutate.stream_proofs` on the small core of the default preset:
``act_sum`` #53 and #104 (``row_valid`` tied to 1, ``tests/verif/test_act_sum_row_valid.py``) map to
the small core's ``row_valid`` register, and the miter, whose payload check is masked by
``res.valid``, still refutes a mutant that changes ``res.valid`` (the reader's compare tied to 1:
ABC's PDR finds the counterexample in frame 0)."""

import re
import shutil

import pytest

from gen.mutate.netlist import Mutation, rtlil_with_src
from gen.mutate.stream_proofs import ABC, prove_valid_beats, row_valid_proof
from hw.config import load_config

DEFAULT = load_config("w4a8-g128-16x16")
_SRC = "-src /work/main/hw/act_sum.py:55"
#: The campaign's specs (as in ``tests/verif/test_act_sum_row_valid.py``).
MUTANTS = {
    53: rf"mutate -mode const1 -module mpgemm -cell $flatten\act_sum.$107 -port Q -portbit 0 -wire sum_valid "
        rf"-wirebit 0 -src /work/main/hw/param_capture.py:77 {_SRC}",
    104: rf"mutate -mode const1 -module mpgemm -cell $flatten\act_sum.$107 -port D -portbit 0 {_SRC}",
}


@pytest.mark.parametrize("index", sorted(MUTANTS))
def test_the_row_valid_mutants_map_to_the_small_core(index):
    proof = row_valid_proof(Mutation(index, MUTANTS[index]), DEFAULT)
    assert proof is not None and (proof.small.rows, proof.small.cols) == (4, 6)
    assert proof.options == f"-mode const1 -port {'Q' if index == 53 else 'D'} -portbit 0"


def test_other_cells_do_not_map():
    assert row_valid_proof(Mutation(1, r"mutate -mode const1 -module mpgemm -cell $flatten\act_sum.$9 -port Y "
                                       r"-portbit 0 -src /work/main/hw/act_sum.py:79"), DEFAULT) is None


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.skipif(shutil.which(ABC) is None, reason=f"ABC ({ABC}) is not installed")
def test_a_mutant_that_changes_res_valid_is_refuted(tmp_path):
    from hw.mpgemm import MPGemm
    proof = row_valid_proof(Mutation(53, MUTANTS[53]), DEFAULT)
    reader = rtlil_with_src(MPGemm(proof.small), "mpgemm").split("module \\mpgemm.reader\n")[1].split("\nend\n")[0]
    [cell] = re.findall(r"cell \$gt (\$\d+)\n(?:    .*\n)*?    connect \\Y \\res__valid\n", reader)
    verdict = prove_valid_beats(tmp_path, proof, timeout=1800, cell=f"$flatten\\reader.{cell}",
                                options="-mode const1 -port Y -portbit 0")
    assert not verdict.equivalent and "counterexample in frame 0" in verdict.detail, verdict.detail
