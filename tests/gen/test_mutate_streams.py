"""The ``streams`` option of :class:`gen.mutate.relational.RelationalProof`: a stream's payload is compared
only on its valid beats. On a counter whose payload is the count on valid beats (odd counts) and 0
otherwise, the mutant that shows the count on every cycle is proven with the option and not without
it; the one that shows 0 on valid beats is not proven with it. Both failures are counterexamples from
the initial state (the base case), not a too short induction."""

import re

import pytest
from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out

from gen.mutate.netlist import Mutation, rtlil_with_src
from gen.mutate.relational import RelationalProof, prove_relational

pytestmark = pytest.mark.synth

STREAMS = (("o__payload", "o__valid"),)


class Beats(wiring.Component):
    o: Out(stream.Signature(4))

    def elaborate(self, platform):
        m = Module()
        count = Signal(4)
        m.d.sync += count.eq(count + 1)
        m.d.comb += [self.o.valid.eq(count[0]), self.o.payload.eq(Mux(count[0], count, 0))]
        return m


@pytest.fixture(scope="module")
def beats(tmp_path_factory):
    work = tmp_path_factory.mktemp("beats")
    text = rtlil_with_src(Beats(), "beats")
    (work / "design.il").write_text(text)
    [cell] = re.findall(r"cell \$mux (\$\d+)\n", text)
    return work, cell


def _select_tied(cell: str, mode: str, index: int) -> Mutation:
    return Mutation(index, f"mutate -mode {mode} -module beats -cell {cell} -port S -portbit 0")


def _prove(work, mutation, streams):
    return prove_relational(work, "design.il", "beats", mutation,
                            RelationalProof(signals=(), invariants=(), depth=3, streams=streams), timeout=120)


def _counterexample(work, index: int) -> bool:
    return "model found for base case: FAIL!" in (work / f"relational_{index}.log").read_text()


def test_a_payload_changed_only_without_valid_is_proven_on_valid_beats(beats):
    work, cell = beats
    assert _prove(work, _select_tied(cell, "const1", 1), STREAMS)[0]
    assert not _prove(work, _select_tied(cell, "const1", 2), ())[0] and _counterexample(work, 2)


def test_a_payload_changed_on_valid_beats_is_not(beats):
    work, cell = beats
    assert not _prove(work, _select_tied(cell, "const0", 3), STREAMS)[0] and _counterexample(work, 3)
