"""Mutation testing (``mixpe mutate``, :mod:`gen.mutate`): the Yosys side on a tiny design (seconds),
the report, and (slow) a campaign of a few PE mutants end to end."""

import json
import re

import pytest
from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.cli import mutate as cli_mutate
from gen.mutate.blocks import MUTATION_BLOCKS, PLANS, TESTS, plan_for
from gen.mutate.campaign import (BlockResult, MutantRecord, Netlist, _cache_key, _earlier_keys, _netlist_key,
                                 _proof_key, _prove_survivors, _simulate, run_block)
from gen.mutate.netlist import (CONTROL, CUT_POINTS, MITER, EquivalenceResult, Mutation, list_mutations,
                                mutants_verilog, prove_equivalent, rtlil_with_src)
from gen.mutate.subblocks import FOLDING, OPERAND, prove_folding, prove_operand, sub_blocks
from gen.mutate.relational import module_wires
from gen.mutate.report import write_reports
from hw.config import ConfigError, from_preset
from hw.fp_mul import Float32Multiplier


class Gated(wiring.Component):
    """``o`` <= ``a`` when ``s`` else 0: the else-constant of the mux is the equivalent mutation's target."""
    a: In(4)
    s: In(1)
    o: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.o.eq(Mux(self.s, self.a, 0))
        return m


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    work = tmp_path_factory.mktemp("gated")
    (work / "design.il").write_text(rtlil_with_src(Gated(), "gated"))
    return work


def test_cli_blocks_match_the_plans():
    assert set(cli_mutate.BLOCKS) == set(MUTATION_BLOCKS) == set(cli_mutate.DEFAULT_MUTANTS)
    assert all(name in TESTS for plan in PLANS.values() for name in plan.fast + plan.full)
    assert plan_for("fp_align", from_preset("w4a8-g32-4x4")) is None
    with pytest.raises(ConfigError, match="block='alu'"):
        plan_for("alu", from_preset("w4a8-g32-4x4"))


@pytest.mark.synth
def test_list_and_netlist_of_all_mutants(gated):
    mutations = list_mutations(gated, "design.il", 6, 1, ("tests/gen/test_mutate.py",))
    assert [m.index for m in mutations] == list(range(1, 7))
    assert all(any(source.startswith("tests/gen/test_mutate.py:") for source in m.sources) for m in mutations)
    verilog = mutants_verilog(gated, "design.il", "gated", mutations)
    header = verilog[verilog.index("module gated("):].split(";")[0]
    assert CONTROL not in header, "the control signal must not be a port"
    assert f'$value$plusargs("{CONTROL}=%d"' in verilog


@pytest.mark.synth
def test_equivalent_and_observable_mutations(gated):
    mux_else = Mutation(1, "mutate -mode const0 -module gated -cell $3 -port A -portbit 0")
    output_bit = Mutation(2, "mutate -mode inv -module gated -cell $5 -port Q -portbit 0 -wire o -wirebit 0")
    proof = prove_equivalent(gated, "design.il", "gated", mux_else)
    assert proof.equivalent and proof.method == CUT_POINTS
    observable = prove_equivalent(gated, "design.il", "gated", output_bit)
    assert not observable.equivalent and observable.detail.startswith("not equivalent: counterexample")


class Staged(wiring.Component):
    """A register ``stage`` of ``a``, a term that is always 0 without being a constant ((a ^ b) & (a ^ ~b):
    only SAT sees it), and ``b``, which only an unread register takes; ``o`` <= the first two added."""
    a: In(4)
    b: In(4)
    o: Out(4)

    def elaborate(self, platform):
        m = Module()
        stage, unread = Signal(12), Signal(4)
        m.d.sync += [stage.eq(Cat(self.a, (self.a ^ self.b) & (self.a ^ ~self.b), self.b)), unread.eq(stage[8:]),
                     self.o.eq(stage[:4] + stage[4:8])]
        return m


@pytest.mark.synth
def test_cut_points_see_constant_and_unread_register_bits(tmp_path):
    """The cut-point proof (the cheap one, no induction in time) folds a register bit that never
    leaves its initial value and ignores internal wires: a pipeline bit tied to its constant value
    (#33 of the default preset's fp32 campaign) and an unread bit changed (#102) close there."""
    (tmp_path / "design.il").write_text(rtlil_with_src(Staged(), "staged"))
    stage_q = "mutate -module staged -cell $15 -port Q -wire stage"
    for mutation in (f"{stage_q} -mode const0 -portbit 4 -wirebit 4", f"{stage_q} -mode cnot1 -portbit 8 -ctrlbit 0 -wirebit 8"):
        proof = prove_equivalent(tmp_path, "design.il", "staged", Mutation(1, mutation), timeout=30)
        assert proof.equivalent and proof.method == CUT_POINTS, proof
    observable = prove_equivalent(tmp_path, "design.il", "staged", Mutation(2, f"{stage_q} -mode inv -portbit 0 -wirebit 0"))
    assert not observable.equivalent


class HighNibbleAdder(wiring.Component):
    """``o`` <= ``a[4:] + b``: the sub-block that never reads its operand's low 4 bits."""
    a: In(8)
    b: In(4)
    o: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.o.eq(self.a[4:] + self.b)
        return m


class FirstOperand(wiring.Component):
    """A register of ``Mux(first, 0x80, x)`` (cell ``$3``) feeds only the sub-block; ``p`` = ``x ^ 0x0F``
    (cell ``$6``) is a port."""
    first: In(1)
    x: In(8)
    b: In(4)
    o: Out(4)
    p: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.adder = adder = HighNibbleAdder()
        operand = Signal(8)
        m.d.sync += operand.eq(Mux(self.first, 0x80, self.x))
        m.d.comb += [adder.a.eq(operand), adder.b.eq(self.b), self.o.eq(adder.o), self.p.eq(self.x ^ 0x0F)]
        return m


@pytest.mark.synth
def test_proofs_that_keep_the_sub_blocks_apart(tmp_path):
    """A bit of the constant 0x80 tied to the value it has folds away with the sub-block a black box;
    one the sub-block never reads is equivalent only through the sub-block (its fan-out ends there);
    a bit it reads is neither, and a cell whose fan-out reaches a port is not for the second."""
    text = rtlil_with_src(FirstOperand(), "top")
    (tmp_path / "design.il").write_text(text)
    assert sub_blocks(text, "top") == {"adder": "top.adder"}
    [mux] = re.findall(r"cell \$mux (\$\d+)\n(?:    .*\n)*?    connect \\B 8'10000000", text)

    def bit(mode: str, portbit: int, cell: str = mux) -> Mutation:
        return Mutation(1, f"mutate -mode {mode} -module top -cell {cell} -port B -portbit {portbit}")

    folded = prove_folding(tmp_path, "design.il", "top", bit("const0", 2), timeout=60)
    assert folded.equivalent and folded.method == FOLDING, folded
    unread = bit("const1", 1)
    assert not prove_folding(tmp_path, "design.il", "top", unread, timeout=60).equivalent
    operand = prove_operand(tmp_path, "design.il", "top", unread, timeout=60)
    assert operand.equivalent and operand.method == f"{OPERAND} at top.adder", operand
    assert not prove_operand(tmp_path, "design.il", "top", bit("const1", 5), timeout=60).equivalent
    [xor] = re.findall(r"cell \$xor (\$\d+)\n", text)
    to_port = prove_operand(tmp_path, "design.il", "top", bit("const1", 7, xor), timeout=60)
    assert not to_port.equivalent and "reaches a port" in to_port.detail
    inside = Mutation(2, r"mutate -mode inv -module top -cell $flatten\adder.$3 -port Y -portbit 0")
    assert "not applicable" in prove_operand(tmp_path, "design.il", "top", inside, timeout=60).detail


def test_proven_verdicts_are_kept_for_the_next_run(tmp_path):
    """A proven verdict is stored under its key and not proven again; a time limit is tried again, and so
    is every mutant when the invariants or the small core (parts of the key) change or the cache is off."""
    (tmp_path / "design.il").write_text("module \\top\nend\n")
    survivors = [Mutation(i, f"mutate -mode inv -module top -cell ${i} -port Y -portbit 0") for i in (1, 2)]
    asked = []

    def map_tasks(function, tasks):
        for task in tasks:
            asked.append(task[2])
            yield task[2], (EquivalenceResult(True, "proven", f"{MITER} at top") if task[2] == 1
                            else EquivalenceResult(False, "timed out"))

    def prove(invariants=None, use_cache=True, small_core=None):
        asked.clear()
        return _prove_survivors(tmp_path, "top", survivors, lambda _: invariants or {}, small_core, 60.0, "netlist",
                                use_cache, map_tasks, lambda line: None)

    assert not prove()[2].equivalent and asked == [1, 2]
    again = prove()
    assert asked == [2] and again[1].equivalent and again[1].method == f"{MITER} at top"
    assert again[1].detail == "proven (cached proof)"
    prove({"top.x": "other invariants"})
    assert asked == [1, 2]
    prove(small_core=from_preset("w4a8-g128-16x16"))
    assert asked == [1, 2]
    prove(use_cache=False)
    assert asked == [1, 2]


def test_multiplier_invariants_name_its_pipeline_registers():
    """fp32's plan proves a survivor of the scale multiplier with invariants over every register of its
    pipeline (the product's data guarded by the stage's ``is_zero``), as the multiplier names them."""
    config = from_preset("w4a16-g128-16x16")
    proof = dict(PLANS["fp32"].invariants)["scale_mul"](config)
    multiplier = rtlil_with_src(Float32Multiplier(6, stages=config.gdu_unit_stages), "scale_mul")
    registers = {name for name, _, _ in module_wires(multiplier, "scale_mul") if re.fullmatch(r"[a-z_]+_\d+", name)}
    assert set(proof.signals) == registers and len(registers) == 38
    assert "gold_partial_rows_4 || gold_partial_rows_5 == gate_partial_rows_5" in proof.invariants
    assert "gold_rounded_5 == gate_rounded_5" in proof.invariants  # the sign


def test_mutation_of_a_flattened_sub_block_cell_for_its_module_alone():
    flat = Mutation(7, r"mutate -mode inv -module mpgemm -cell $flatten\array.pe_0_1.$35 -port Q -portbit 0 "
                       r"-wire array.pe_0_1.x -wirebit 0 -src /x/hw/pe.py:87")
    module, local = flat.submodule("mpgemm")
    assert module == "mpgemm.array.pe_0_1"
    assert local.spec == ("mutate -mode inv -module mpgemm.array.pe_0_1 -cell $35 -port Q -portbit 0 -wire x "
                          "-wirebit 0 -src /x/hw/pe.py:87")
    assert Mutation(1, "mutate -mode inv -module pe -cell $35 -port Q -portbit 0").submodule("pe") is None
    nested = Mutation(2, r"mutate -mode const0 -module mpgemm -cell $flatten\gdu_0.\scale_mul.$486 -port B -portbit 17")
    assert nested.submodule("mpgemm") == ("mpgemm.gdu_0.scale_mul", Mutation(
        2, "mutate -mode const0 -module mpgemm.gdu_0.scale_mul -cell $486 -port B -portbit 17"))
    assert flat.description == r"-mode inv -module mpgemm -cell $flatten\array.pe_0_1.$35 -port Q -portbit 0 " \
                               r"-wire array.pe_0_1.x -wirebit 0"


def test_report_score_and_holes(tmp_path):
    records = [MutantRecord(1, "-mode inv", "inv", ["hw/pe.py:1"], "killed", "fast: pe_bench (seed 1)"),
               MutantRecord(2, "-mode const0", "const0", ["hw/pe.py:2"], "equivalent", detail="proven",
                            equivalent_by=f"{MITER} at pe"),
               MutantRecord(3, "-mode const1", "const1", ["hw/pe.py:3"], "hole", detail="not proven")]
    result = BlockResult("pe", "pe", "w4a8-g32-4x4", 3, 1, 1, 1, 2.0, records)
    assert result.score == 0.5
    paths = write_reports([result], tmp_path, "mixpe mutate --blocks pe", 0.9)
    report = json.loads(paths["json"].read_text())
    assert report["blocks"][0] | {"score": 0.5} == report["blocks"][0]
    assert [(h["mutant"], h["sources"]) for h in report["holes"]] == [(3, ["hw/pe.py:3"])]
    assert "hw/pe.py:3" in paths["md"].read_text()
    assert report["blocks"][0]["equivalent_by"] == {MITER: 1}
    assert [(row["mutant"], row["equivalent_by"]) for row in report["equivalent"]] == [(2, f"{MITER} at pe")]


def test_resume_keeps_the_mutants_killed_by_earlier_benches(tmp_path):
    """Same netlist, changed benches (another cache key): the killed mutants stay killed, the survivors
    and the mutants never run go through the stages again."""
    (tmp_path / "mutants.v").write_text("module pe; endmodule\n")
    netlists = [Netlist("pe", tmp_path / "mutants.v", tmp_path, (1, 2, 3))]
    old = {"key": "old", "netlist": _netlist_key(PLANS["pe"], netlists, 1), "stage": "fast"}
    (tmp_path / "progress.jsonl").write_text(
        json.dumps(old | {"index": 1, "failed": "pe_bench (seed 1)"}) + "\n"
        + json.dumps(old | {"index": 2, "failed": None}) + "\n")
    ran = []

    def map_tasks(function, tasks):
        for task in tasks:
            ran.append((task[4], task[5]))
            yield task[4], None, 0.0

    mutations = [Mutation(i, f"mutate -mode inv -module pe -cell ${i} -port Y -portbit 0") for i in (1, 2, 3)]
    killed = _simulate(PLANS["pe"], from_preset("w4a8-g32-4x4"), tmp_path, mutations, netlists, 1, map_tasks,
                       lambda line: None)
    assert killed == {1: "fast: pe_bench (seed 1)"}
    assert [(index, runs) for index, runs in ran if index] == [(2, (("pe_bench", 1),)), (3, (("pe_bench", 1),)),
                                                               (2, (("pe_bench", 2),)), (3, (("pe_bench", 2),))]


@pytest.mark.slow
@pytest.mark.rtl
@pytest.mark.synth
def test_pe_campaign_end_to_end(tmp_path):
    result = run_block(PLANS["pe"], from_preset("w4a8-g32-4x4"), mutants=4, seed=3, out_root=tmp_path)
    assert result.mutants == 4 and result.killed + result.equivalent + result.holes == 4
    assert result.killed >= 2, [r.status for r in result.records]


def test_mutants_of_the_gdu_fp32_units_map_onto_the_unit_bench():
    """A mutated cell of a GDU unit applies to the unit bench's instance with the same body (the token
    multiplier's to the scale multiplier: same parameters on INT8); a cell of the GDU itself does not."""
    from hw.emit import build_block
    from gen.mutate.units import module_bodies, unit_mutations
    from verif.benches.fp32.harness import FP32Units
    config = from_preset("w4a8-g32-4x4")
    gdu, units = rtlil_with_src(build_block("gdu", config), "gdu"), rtlil_with_src(FP32Units(config), "fp32_units")
    assert module_bodies(gdu)["gdu.token_mul"] == module_bodies(units)["fp32_units.scale_mul"]
    mutations = [Mutation(1, r"mutate -mode cnot1 -module gdu -cell $flatten\token_mul.$727 -port Q -portbit 0 "
                             r"-ctrlbit 20 -wire token_mul.partial_rows_7 -wirebit 0 -src /x/hw/fp_common.py:100"),
                 Mutation(2, "mutate -mode cnot0 -module gdu -cell $247 -port D -portbit 14 -ctrlbit 0"),
                 Mutation(3, r"mutate -mode inv -module gdu -cell $flatten\accumulate.$257 -port B -portbit 3"),
                 Mutation(4, r"mutate -mode inv -module gdu -cell $flatten\accumulate.$procmux$75 -port B -portbit 3")]
    assert unit_mutations(mutations, "gdu", gdu, "fp32_units", units) == [
        Mutation(1, r"mutate -mode cnot1 -module fp32_units -cell $flatten\scale_mul.$727 -port Q -portbit 0 "
                    r"-ctrlbit 20 -wire scale_mul.partial_rows_7 -wirebit 0 -src /x/hw/fp_common.py:100"),
        Mutation(3, r"mutate -mode inv -module fp32_units -cell $flatten\adder.$257 -port B -portbit 3")]


class Pick(wiring.Component):
    """``o`` = ``a`` when ``s`` is 3, ``b`` when 1, else 0: Yosys' ``proc`` makes two ``$procmux`` cells, the
    inner one (``s[1]``) driving no public wire."""
    a: In(4)
    b: In(4)
    s: In(2)
    o: Out(4)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.s[0]):
            with m.If(self.s[1]):
                m.d.comb += self.o.eq(self.a)
            with m.Else():
                m.d.comb += self.o.eq(self.b)
        return m


class Picks(wiring.Component):
    """``count`` :class:`Pick` in a chain (``pick_0`` first): their ``$procmux`` cells are numbered one
    after another across the design."""
    a: In(4)
    b: In(4)
    s: In(2)
    o: Out(4)

    def __init__(self, count):
        self.count = count
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        o = self.a
        for i in range(self.count):
            m.submodules[f"pick_{i}"] = pick = Pick()
            m.d.comb += [pick.a.eq(o), pick.b.eq(self.b), pick.s.eq(self.s)]
            o = pick.o
        m.d.comb += self.o.eq(o)
        return m


def test_a_procmux_maps_onto_the_unit_cell_that_drives_the_same_wire(tmp_path):
    """A ``$procmux`` of either sub-block maps onto the unit design's cell of the same type and parameters
    that drives the same public wire (``pick_0.o``), whatever the numbers; refused: the inner cell (no
    public wire), a cell the design does not have, and a cell whose description two unit cells share."""
    from gen.mutate.units import prepared_module, unit_mutations
    (tmp_path / "unit").mkdir()
    (tmp_path / "design.il").write_text(design := rtlil_with_src(Picks(2), "picks"))
    (tmp_path / "unit" / "design.il").write_text(unit_design := rtlil_with_src(Picks(1), "unit"))
    core = prepared_module(tmp_path, "design.il", "picks")
    unit = prepared_module(tmp_path / "unit", "design.il", "unit")

    def driving(module, wire):
        [cell] = [name for name, cell in module["cells"].items()
                  if cell["connections"].get("Y") == module["netnames"][wire]["bits"]]
        return cell

    unit_cell, outer_0, outer_1 = driving(unit, "pick_0.o"), driving(core, "pick_0.o"), driving(core, "pick_1.o")
    [inner] = [name for name, cell in core["cells"].items()
               if cell["type"] == "$mux" and name.startswith("$flatten\\pick_0.") and name != outer_0]
    assert outer_0.rpartition(".")[2] != unit_cell.rpartition(".")[2]  # numbered differently
    cells = [outer_0, outer_1, inner, r"$flatten\pick_0.$procmux$999"]
    mutations = [Mutation(i, f"mutate -mode inv -module picks -cell {cell} -port Y -portbit 1")
                 for i, cell in enumerate(cells, start=1)]
    asked = []

    def prepared():
        asked.append(1)
        return core, unit

    assert unit_mutations(mutations, "picks", design, "unit", unit_design, prepared) == [
        Mutation(i, f"mutate -mode inv -module unit -cell {unit_cell} -port Y -portbit 1") for i in (1, 2)]
    assert asked == [1]
    assert unit_mutations(mutations, "picks", design, "unit", unit_design) == []
    twin = {**unit, "cells": {**unit["cells"], r"$flatten\pick_0.$procmux$1000": unit["cells"][unit_cell]}}
    assert unit_mutations(mutations, "picks", design, "unit", unit_design, lambda: (core, twin)) == []


def test_a_changed_unit_netlist_keeps_the_core_stages_outcomes(tmp_path):
    """With a unit bench, each stage's outcomes are kept under its own netlist's keys: a mutant newly
    mapped to the unit bench (#3) runs the unit stage again with the other unit mutants, while the core
    stages' kill (#2) and survivor (#3) stand, also when recorded under both netlists' keys together (the
    version before) for the netlists on disk. A proof is kept under such a key too; both are written again
    under the new keys."""
    plan, config, seed = PLANS["fp32"], from_preset("w4a8-g32-4x4"), 1
    (tmp_path / "unit-fp32").mkdir()
    unit, main = tmp_path / "unit-fp32" / "mutants.v", tmp_path / "mutants.v"
    unit.write_text("module unit_before; endmodule\n")
    main.write_text("module gdu; endmodule\n")
    before = [Netlist("fp32", unit, unit.parent, (1,)), Netlist("gdu", main, tmp_path, (1, 2, 3))]
    old = {"key": _cache_key(plan, before, seed), "netlist": _netlist_key(plan, before, seed)}
    (tmp_path / "progress.jsonl").write_text("".join(json.dumps(old | record) + "\n" for record in (
        {"stage": "unit", "index": 1, "failed": None}, {"stage": "fast", "index": 2, "failed": "gdu_bench (seed 1)"},
        {"stage": "fast", "index": 3, "failed": None}, {"stage": "full", "index": 3, "failed": None})))
    earlier = _earlier_keys(plan, tmp_path, seed)
    unit.write_text("module unit_after; endmodule\n")
    netlists = [Netlist("fp32", unit, unit.parent, (1, 3)), before[1]]
    mutations = [Mutation(i, f"mutate -mode inv -module gdu -cell ${i} -port Y -portbit 0") for i in (1, 2, 3)]
    ran = []

    def map_tasks(function, tasks):
        for task in tasks:
            ran.append((task[0], task[4], task[5]))
            yield task[4], None, 0.0

    def simulate(earlier_keys):
        ran.clear()
        killed = _simulate(plan, config, tmp_path, mutations, netlists, seed, map_tasks, lambda line: None,
                           earlier_keys)
        return killed, [(bench, index, runs) for bench, index, runs in ran if index]

    assert simulate(earlier) == ({2: "fast: gdu_bench (seed 1)"}, [
        ("fp32", 1, (("fp32_bench", 1),)), ("fp32", 3, (("fp32_bench", 1),)), ("gdu", 1, (("gdu_bench", 1),)),
        ("gdu", 1, (("gdu_bench", 2),))])
    assert simulate(None) == ({2: "fast: gdu_bench (seed 1)"}, [])  # written again under the stages' own keys
    (tmp_path / "design.il").write_text("module \\gdu\nend\n")
    spec = "mutate -mode inv -module gdu -cell $3 -port Y -portbit 0"
    old_proof = _proof_key(old["netlist"], tmp_path / "design.il", {}, None, spec)
    (tmp_path / "proofs.jsonl").write_text(json.dumps({"key": old_proof, "index": 3, "detail": "proven",
                                                       "method": MITER}) + "\n")

    def prove(function, tasks):
        return [(task[2], EquivalenceResult(False, "not proven")) for task in tasks]

    def verdict(*earlier_netlist_keys):
        return _prove_survivors(tmp_path, "gdu", [Mutation(3, spec)], lambda _: {}, None, 60.0,
                                _netlist_key(plan, netlists[1:], seed), True, prove, lambda line: None,
                                earlier_netlist_keys)[3]

    assert not verdict().equivalent
    assert verdict(*(combined for combined, stages in earlier["netlist"].items()
                     if stages["full"] == _netlist_key(plan, netlists[1:], seed))).equivalent
    assert verdict().equivalent  # written again under the current key


def test_dask_map_runs_every_task_with_its_output_in_the_log(tmp_path):
    from gen.mutate.campaign import dask_map
    from gen.scale.cluster import connect
    with connect(workers=1) as client:
        results = list(dask_map(client, tmp_path / "workers.log")(print, ["a", "b"]))
    assert results == [None, None]
    assert (tmp_path / "workers.log").read_text().split() == ["a", "b"]


def test_a_clock_input_mutation_is_never_proven(tmp_path):
    """Yosys' sat and equiv passes read every flip-flop as a one-cycle delay whatever its clock edge: an
    inverted clock (FP act_sum #13, killed by the array scenario, had been "proven" at act_sum's ports)
    is left a hole without running them, even when the prover would say "proven"."""
    (tmp_path / "design.il").write_text("module \\top\nend\n")
    survivors = [Mutation(13, "mutate -mode inv -module top -cell $1 -port CLK -portbit 0")]

    def map_tasks(function, tasks):
        for task in tasks:
            yield task[2], EquivalenceResult(True, "proven", MITER)

    verdicts = _prove_survivors(tmp_path, "top", survivors, lambda _: {}, None, 60.0, "netlist", True, map_tasks,
                                lambda line: None)
    assert not verdicts[13].equivalent and "clock input (CLK)" in verdicts[13].detail
