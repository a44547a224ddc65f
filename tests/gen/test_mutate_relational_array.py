"""A relational proof at the ports of the PE array (:func:`gen.mutate.blocks.group_last_chain_invariants`,
sub-block wires by flattened name): a PE's ``group_last_out`` whose reset is ignored (mpgemm #85 of
the default preset's campaign, here on a 2 x 3 array) is proven equivalent; with the flag required
equal everywhere (not only where ``valid_out`` is 1) it is not."""

import dataclasses
import re

import pytest

from gen.mutate.blocks import group_last_chain_invariants
from gen.mutate.errors import MutateError
from gen.mutate.netlist import PREPARE, Mutation, rtlil_with_src
from gen.mutate.relational import prove_relational
from gen.yosys_run import run_yosys
from hw.array import PEArray
from hw.config import MixPEConfig

pytestmark = pytest.mark.synth

CONFIG = MixPEConfig(rows=2, cols=3, group_size=8, weight_bits=2, gdu_stages=1)


@pytest.fixture(scope="module")
def reset_ignored(tmp_path_factory):
    """(work dir, the mutation): PE(1, 1)'s ``group_last_out`` reset mux with its select tied to 0."""
    work = tmp_path_factory.mktemp("array")
    (work / "design.il").write_text(rtlil_with_src(PEArray(CONFIG), "array"))
    (work / "cells.ys").write_text("read_rtlil design.il\nhierarchy -top array\n" + "\n".join(PREPARE)
                                   + "\ntee -q -o cells.txt dump array/t:$mux\n")
    run_yosys(work, "cells.ys", "cells.log", 60, MutateError)
    [cell] = re.findall(r"cell \$mux (\S+)\n    parameter \\WIDTH 1\n    connect \\A \\pe_1_0\.group_last_out\n"
                        r"    connect \\B 1'0\n    connect \\S \\rst\n", (work / "cells.txt").read_text())
    return work, Mutation(1, f"mutate -mode const0 -module array -cell {cell} -port S -portbit 0")


def test_reset_ignored_where_valid_is_0_is_proven(reset_ignored):
    work, mutation = reset_ignored
    proven, detail = prove_relational(work, "design.il", "array", mutation, group_last_chain_invariants(CONFIG, 1, 1),
                                      timeout=120)
    assert proven, detail


def test_not_with_the_flag_required_equal(reset_ignored):
    work, mutation = reset_ignored
    proof = group_last_chain_invariants(CONFIG, 1, 1)
    strict = dataclasses.replace(proof, invariants=proof.invariants + ("gold_pe_1_1_group_last_out == gate_pe_1_1_group_last_out",))
    proven, _ = prove_relational(work, "design.il", "array", mutation, strict, timeout=120)
    assert not proven
