"""The blocks' equivalence proofs with invariants (:data:`gen.mutate.blocks.PLANS`) on ``act_sum`` of a
4-row core: the row counter's top bit toggled by a lower bit while emitting (act_sum #6 of the
default preset's campaign, R = 16) escapes the cheap invariants and is proven by the weaker ones
(:func:`gen.mutate.blocks.act_sum_row_bits_invariants`); a top bit stuck at 1 (the emission never
stops) is not."""

import re

import pytest

from gen.mutate.blocks import PLANS, act_sum_invariants, act_sum_row_bits_invariants
from gen.mutate.netlist import Mutation, rtlil_with_src
from gen.mutate.relational import prove_relational
from hw.act_sum import ActivationSum
from hw.config import MixPEConfig

pytestmark = pytest.mark.synth

CONFIG = MixPEConfig(rows=4, cols=4, group_size=8, weight_bits=2, gdu_stages=1)
TOP = 2  # R = 4: next_row counts 0..3 (the 2-bit row port) and idles at 4


@pytest.fixture(scope="module")
def act_sum(tmp_path_factory):
    work = tmp_path_factory.mktemp("act_sum")
    text = rtlil_with_src(ActivationSum(CONFIG), "act_sum")
    (work / "design.il").write_text(text)
    # Amaranth's register of next_row: "cell $dff $<n>" whose Q connects to \next_row
    [cell] = re.findall(r"cell \$dff (\$\d+)\n(?:    .*\n)*?    connect \\Q \\next_row\n", text)
    return work, cell


def _top_bit(cell: str, mode: str, index: int, ctrl: str = "") -> Mutation:
    return Mutation(index, f"mutate -mode {mode} -module act_sum -cell {cell} -port Q -portbit {TOP}{ctrl} "
                           f"-wire next_row -wirebit {TOP}")


def test_top_bit_toggled_while_emitting_needs_the_row_bits_invariants(act_sum):
    work, cell = act_sum
    # next_row reads 0, 1, 6, 3: the row port sees 0, 1, 2, 3 and the count stops at 3 as before
    mutation = _top_bit(cell, "cnot1", 1, " -ctrlbit 1")
    cheap, _ = prove_relational(work, "design.il", "act_sum", mutation, act_sum_invariants(CONFIG), timeout=120)
    assert not cheap
    proven, detail = prove_relational(work, "design.il", "act_sum", mutation, act_sum_row_bits_invariants(CONFIG),
                                      timeout=120)
    assert proven, detail


def test_top_bit_stuck_at_1_is_not_proven(act_sum):
    work, cell = act_sum
    proven, _ = prove_relational(work, "design.il", "act_sum", _top_bit(cell, "const1", 2),
                                 act_sum_row_bits_invariants(CONFIG), timeout=120)
    assert not proven


def test_act_sum_plans_try_the_cheap_invariants_first():
    for block in ("act_sum", "mpgemm"):
        assert PLANS[block].invariants == (("act_sum", act_sum_invariants), ("act_sum", act_sum_row_bits_invariants))
    assert act_sum_row_bits_invariants(CONFIG).depth == CONFIG.rows + 2
    assert "!gold_emitting || (gold_next_row < 4 && gold_next_row[1:0] == gate_next_row[1:0])" in \
        act_sum_row_bits_invariants(CONFIG).invariants
