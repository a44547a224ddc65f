"""Equivalence by induction with invariants (:mod:`gen.mutate.relational`) on ``act_sum`` of a 2-row
core: the mutant that ties the idle-only top bit of the row counter to 0 (act_sum #23 of the
w4a8-g32-4x4 campaign, the same bit on 16 x 16) is proven equivalent with the block's invariants
(:func:`gen.mutate.blocks.act_sum_invariants`); a mutant of a bit the emission reads is not. A
mutant that re-numbers the idle top bit while emitting (act_sum #6, #152, #89, #121 of the 16 x 16
campaigns) is proven with its own count (:func:`gen.mutate.blocks.row_counter_invariants`), and a
wrong count is not."""

import re

import pytest

import dataclasses

from gen.mutate.blocks import PLANS, act_sum_invariants, row_counter_invariants
from gen.mutate.netlist import Mutation, rtlil_with_src
from gen.mutate.relational import RelationalProof, module_wires, prove_relational
from hw.act_sum import ActivationSum
from hw.config import MixPEConfig

pytestmark = pytest.mark.synth


def _act_sum(tmp_path_factory, rows: int):
    config = MixPEConfig(rows=rows, cols=2, group_size=8, weight_bits=2, gdu_stages=1)
    work = tmp_path_factory.mktemp(f"act_sum_{rows}")
    text = rtlil_with_src(ActivationSum(config), "act_sum")
    (work / "design.il").write_text(text)
    # Amaranth's register of next_row: "cell $dff $<n>" whose Q connects to \next_row
    [cell] = re.findall(r"cell \$dff (\$\d+)\n(?:    .*\n)*?    connect \\Q \\next_row\n", text)
    return config, work, cell


@pytest.fixture(scope="module")
def act_sum(tmp_path_factory):
    return _act_sum(tmp_path_factory, 2)


@pytest.fixture(scope="module")
def act_sum_4(tmp_path_factory):
    return _act_sum(tmp_path_factory, 4)


def _counter_bit_tied_to_0(cell: str, bit: int, index: int) -> Mutation:
    return Mutation(index, f"mutate -mode const0 -module act_sum -cell {cell} -port Q -portbit {bit} "
                           f"-wire next_row -wirebit {bit}")


def test_idle_only_counter_bit_is_proven_equivalent(act_sum):
    config, work, cell = act_sum
    widths = {name: width for name, width, _ in module_wires((work / "design.il").read_text(), "act_sum")}
    top = widths["next_row"] - 1  # R = 2: next_row counts 0, 1 and idles at 2 (bit 1)
    proven, detail = prove_relational(work, "design.il", "act_sum", _counter_bit_tied_to_0(cell, top, 1),
                                      act_sum_invariants(config), timeout=120)
    assert proven, detail


def test_a_read_counter_bit_is_not(act_sum):
    config, work, cell = act_sum
    proven, _ = prove_relational(work, "design.il", "act_sum", _counter_bit_tied_to_0(cell, 0, 2),
                                 act_sum_invariants(config), timeout=120)
    assert not proven


def test_plans_name_invariants_of_act_sum():
    assert dict(PLANS["act_sum"].invariants)["act_sum"] is act_sum_invariants
    proof = act_sum_invariants(MixPEConfig(rows=4, cols=4, group_size=8, weight_bits=2))
    assert isinstance(proof, RelationalProof) and "running_3" in proof.signals
    assert "!gold_emitting || (gold_next_row < 4 && gold_next_row == gate_next_row)" in proof.invariants


def test_a_renumbered_counter_is_proven_with_its_own_count(act_sum_4):
    config, work, cell = act_sum_4
    text = (work / "design.il").read_text()
    # Bit 2 (the idle bit of 0..4) inverted where bit 0 is 1: the mutant counts 0, 5, 6, 3 (rows 0..3 below bit 2).
    mutation = Mutation(3, f"mutate -mode cnot1 -module act_sum -cell {cell} -port Q -portbit 2 -ctrlbit 0 "
                           f"-wire next_row -wirebit 2")
    proof = row_counter_invariants(config, mutation, text)
    assert proof is not None and "gold_next_row == 1 ? 3'd5" in proof.invariants[-1]
    proven, detail = prove_relational(work, "design.il", "act_sum", mutation, proof, timeout=120)
    assert proven, detail
    wrong = dataclasses.replace(proof, invariants=(*proof.invariants[:-1], proof.invariants[-1].replace("3'd5", "3'd1")))
    assert not prove_relational(work, "design.il", "act_sum", mutation, wrong, timeout=120)[0]


def test_a_count_that_misnumbers_a_row_has_no_invariants(act_sum_4):
    config, work, cell = act_sum_4
    text = (work / "design.il").read_text()
    read_bit = Mutation(4, f"mutate -mode cnot1 -module act_sum -cell {cell} -port Q -portbit 1 -ctrlbit 0 "
                           f"-wire next_row -wirebit 1")
    assert row_counter_invariants(config, read_bit, text) is None
    other_cell = Mutation(5, "mutate -mode inv -module act_sum -cell $1 -port Q -portbit 2")
    assert row_counter_invariants(config, other_cell, text) is None
