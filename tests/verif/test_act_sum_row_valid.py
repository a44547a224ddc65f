"""``act_sum`` #53 and #104 of the default preset (``mixpe mutate --blocks act_sum --mutants 200 --seed 1``
on w4a8-g128-16x16): ``row_valid``'s register (``hw/act_sum.py:55``, read by the parameter capture as
``sum_valid``) tied to 1 at its output (#53) or its input (#104). They are *not* equivalent at the
core's ports, so no proof of the campaign (every output equal on every cycle) can exist: before a
group's first emission the stuck ``sum_valid`` restarts the lane walk every cycle, and its last
restart is the cycle T when PE (0, l) loads the group's partial sum P; lane l's GDU then accumulates
``fp32(P) * s`` (the group's scale, the zero point times a zero row sum) onto bank 0, row 0 of its
first column with the reset descriptor (``first`` 0: onto the word, +0 after power-up), one cycle
before the group's own row 0 (``first`` set) overwrites it. The result reader's address rests on
bank 0, row 0 until the first result row, so that word shows on ``res.payload.data`` for one cycle
while ``res.valid`` is 0. No beat with ``res.valid`` set differs, which is why no test kills them.

The check runs the campaign's mutation (Yosys ``mutate -mode const1`` on the flop, ``-port Q`` or
``-port D``) on the small core of :mod:`gen.mutate.core_proofs` and, slow, on the default core
itself (the campaign's cell ``$flatten\\act_sum.$107``): original and mutant netlists side by side
under Icarus Verilog, random inputs with stalls on every port and random resets."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gen.mutate.netlist import PREPARE, Mutation, _yosys, rtlil_with_src
from gen.mutate.relational import module_wires
from gen.mutate.stream_proofs import prove_valid_beats, row_valid_proof
from hw.config import load_config

DEFAULT = load_config("w4a8-g128-16x16")
_ROOT = Path(__file__).resolve().parents[2]   # the campaign writes absolute source paths
_SRC = f"-src {_ROOT}/hw/act_sum.py:55"
#: act_sum mutant index -> its spec in the default preset's campaign (``gen.mutate.netlist.list_mutations``
#: on the ``mpgemm`` design with ``PLANS["act_sum"].sources``, 200, seed 1).
MUTANTS = {
    53: rf"mutate -mode const1 -module mpgemm -cell $flatten\act_sum.$107 -port Q -portbit 0 -wire sum_valid "
        rf"-wirebit 0 -src {_ROOT}/hw/param_capture.py:77 {_SRC}",
    104: rf"mutate -mode const1 -module mpgemm -cell $flatten\act_sum.$107 -port D -portbit 0 {_SRC}",
}

pytestmark = [pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) is not installed"),
              pytest.mark.xdist_group("act-sum-row-valid")]  # one worker builds the small core's netlists once


def _row_valid_flop(work: Path) -> str:
    """The ``$dff`` of ``act_sum`` that drives ``sum_valid`` in the flattened ``work/core.il``."""
    _yosys(work, "read_rtlil core.il\nhierarchy -top mpgemm\n" + "\n".join(PREPARE) + "\ntee -q -o flops.txt dump mpgemm/t:$dff\n",
           "flops")
    flops = [name for name, body in re.findall(r"  cell \$dff (\S+)\n(.*?)\n  end", (work / "flops.txt").read_text(), re.S)
             if name.startswith("$flatten\\act_sum.") and re.search(r"connect \\Q \\(sum_valid|act_sum\.row_valid)$", body, re.M)]
    assert len(flops) == 1, flops
    return flops[0]


def _testbench(wires: list, cycles: int, seed: int, probes: tuple[str, ...] = (), window: range = range(0)) -> str:
    """Original (``gold``) and mutant (``gate``) on the same random inputs: every ``valid``/``ready`` set
    with probability 200/256, a reset on the first two cycles and then with probability 1/1024; counts
    the cycles whose ``res`` payload differs while ``res.valid`` is 0 in both, and those where
    ``res.valid`` or a valid beat's payload differs; prints the hierarchical ``probes`` (e.g.
    ``gate_core.\\array.pe_0_0.psum``) on the cycles of ``window``."""
    inputs = [(name, width) for name, width, direction in wires if direction == "input" and name not in ("clk", "rst")]
    outputs = [(name, width) for name, width, direction in wires if direction == "output"]
    lines = ["module tb;", "reg clk = 0, rst = 1;", "integer cycle, idle, beats, first, seed;"]
    lines += [f"reg [{width - 1}:0] {name};" for name, width in inputs]
    lines += [f"wire [{width - 1}:0] gold_{name}, gate_{name};" for name, width in outputs]
    for side in ("gold", "gate"):
        ports = [".clk(clk)", ".rst(rst)", *(f".{name}({name})" for name, _ in inputs),
                 *(f".{name}({side}_{name})" for name, _ in outputs)]
        lines.append(f"{side} {side}_core(" + ", ".join(ports) + ");")
    lines += [f"initial begin seed = {seed}; idle = 0; beats = 0; first = -1;",
              f"  for (cycle = 0; cycle < {cycles}; cycle = cycle + 1) begin"]
    for name, width in inputs:
        if name.endswith(("valid", "ready")):
            lines.append(f"    {name} = ($random(seed) & 255) < 200;")
        else:
            lines.append(f"    {name} = {{" + ", ".join(["$random(seed)"] * ((width + 31) // 32)) + "};")
    lines += ["    rst = cycle < 2 || ($random(seed) & 1023) == 0;", "    #1;"]
    if probes:
        lines.append(f"    if (cycle >= {window.start} && cycle < {window.stop}) $display(\"cycle %0d" + " %h" * len(probes)
                     + '", cycle, ' + ", ".join(f"{probe} " for probe in probes) + ");")
    lines += ["    if (gold_res__valid !== gate_res__valid || (gold_res__valid && gold_res__payload !== gate_res__payload))",
              "      beats = beats + 1;",
              "    else if (gold_res__payload !== gate_res__payload) begin idle = idle + 1; if (first < 0) first = cycle; end",
              "    #4 clk = 1; #5 clk = 0;", "  end",
              '  $display("RESULT idle=%0d beats=%0d first=%0d", idle, beats, first);', "  $finish;", "end", "endmodule", ""]
    return "\n".join(lines)


def netlists(work: Path, config) -> str:
    """Write ``work/gold.v`` (``config``'s core) and ``work/gate_<i>.v`` for each of :data:`MUTANTS`
    (its mode and port, on the core's ``row_valid`` flop) and ``work/ports.txt`` (the core's ports); returns the flop's name."""
    from hw.mpgemm import MPGemm
    work.mkdir(parents=True, exist_ok=True)
    rtlil = rtlil_with_src(MPGemm(config), "mpgemm")
    (work / "core.il").write_text(rtlil)
    flop = _row_valid_flop(work)
    script = "read_rtlil core.il\nhierarchy -top mpgemm\n" + "\n".join(PREPARE) + "\ndesign -save base\n"
    for index, spec in MUTANTS.items():
        mutation = Mutation(index, spec)
        script += (f"design -load base\nmutate -mode {mutation.mode} -module mpgemm -cell {flop} "
                   f"-port {mutation.option('port')} -portbit 0\nrename mpgemm gate\nwrite_verilog -noattr gate_{index}.v\n")
    _yosys(work, script + "design -load base\nrename mpgemm gold\nwrite_verilog -noattr gold.v\n", "netlists")
    (work / "ports.txt").write_text(repr(module_wires(rtlil, "mpgemm")))
    return flop


def side_by_side(work: Path, index: int, cycles: int, seed: int = 1, probes: tuple[str, ...] = (),
                 window: range = range(0)) -> dict:
    """Mutant ``index`` against the original (:func:`netlists` in ``work``) for ``cycles`` cycles of
    random inputs; returns the testbench's counts: ``idle`` (cycles whose ``res`` payload differs while
    ``res.valid`` is 0), ``beats`` (cycles where ``res.valid`` or a valid beat differs), ``first``
    (the first idle difference's cycle, -1 without), ``trace`` (the probes' lines)."""
    import ast
    wires = ast.literal_eval((work / "ports.txt").read_text())
    (work / f"tb_{index}.v").write_text(_testbench(wires, cycles, seed, probes, window))
    subprocess.run(["iverilog", "-g2005", "-o", f"tb_{index}.vvp", "-s", "tb", f"tb_{index}.v", "gold.v", f"gate_{index}.v"],
                   cwd=work, check=True)
    run = subprocess.run(["vvp", "-n", f"tb_{index}.vvp"], cwd=work, check=True, capture_output=True, text=True)
    found = re.search(r"RESULT idle=(\d+) beats=(\d+) first=(-?\d+)", run.stdout)
    assert found, run.stdout[-2000:]
    trace = [line for line in run.stdout.splitlines() if line.startswith("cycle ")]
    return {"idle": int(found[1]), "beats": int(found[2]), "first": int(found[3]), "trace": trace}


@pytest.fixture(scope="module")
def small_core(tmp_path_factory):
    from gen.mutate.core_proofs import small_configuration
    work = tmp_path_factory.mktemp("small_core")
    netlists(work, small_configuration(DEFAULT))
    return work


@pytest.mark.synth
@pytest.mark.parametrize("index", [53, 104])
def test_stuck_row_valid_shows_only_on_idle_payloads_of_the_small_core(small_core, index):
    counts = side_by_side(small_core, index, cycles=600)
    assert counts["beats"] == 0, counts          # no valid beat differs: no test can kill it
    assert counts["idle"] > 0, counts            # but the ports differ: not equivalent, no proof can exist


@pytest.mark.slow
@pytest.mark.synth
def test_stuck_row_valid_shows_only_on_idle_payloads_of_the_default_core(tmp_path):
    flop = netlists(tmp_path, DEFAULT)
    assert all(f"-cell {flop} " in spec for spec in MUTANTS.values())   # the campaign's cell
    for index in MUTANTS:
        counts = side_by_side(tmp_path, index, cycles=1500)
        assert counts["beats"] == 0 and counts["idle"] > 0, (index, counts)


# The "same valid beats" proof of gen.mutate.stream_proofs: the mutants map to the stream core's row_valid
# register; the property (with its invariants) is proven there, and refuted for a mutant that changes res.valid.
@pytest.mark.parametrize("index", sorted(MUTANTS))
def test_the_row_valid_mutants_map_to_the_stream_core(index):
    proof = row_valid_proof(Mutation(index, MUTANTS[index]), DEFAULT)
    assert proof is not None and (proof.small.rows, proof.small.cols, proof.small.group_size) == (2, 4, 8)
    assert proof.options == f"-mode const1 -port {'Q' if index == 53 else 'D'} -portbit 0"


def test_other_cells_do_not_map():
    assert row_valid_proof(Mutation(1, r"mutate -mode const1 -module mpgemm -cell $flatten\act_sum.$9 -port Y "
                                       rf"-portbit 0 -src {_ROOT}/hw/act_sum.py:79"), DEFAULT) is None
    assert row_valid_proof(Mutation(2, MUTANTS[53].replace("const1", "const0")), DEFAULT) is None


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.parametrize("index", sorted(MUTANTS))
@pytest.mark.parametrize("preset", ["w4a8-g128-16x16", "w4a16-g128-16x16"])
def test_stuck_row_valid_keeps_every_valid_beat(tmp_path, preset, index):
    verdict = prove_valid_beats(tmp_path, row_valid_proof(Mutation(index, MUTANTS[index]), load_config(preset)), timeout=5400)
    assert verdict.equivalent, verdict.detail


@pytest.mark.slow
@pytest.mark.synth
def test_a_mutant_that_changes_res_valid_is_refuted(tmp_path):
    from hw.mpgemm import MPGemm
    proof = row_valid_proof(Mutation(53, MUTANTS[53]), DEFAULT)
    reader = rtlil_with_src(MPGemm(proof.small), "mpgemm").split("module \\mpgemm.reader\n")[1].split("\nend\n")[0]
    [cell] = re.findall(r"cell \$gt (\$\d+)\n(?:    .*\n)*?    connect \\Y \\res__valid\n", reader)
    verdict = prove_valid_beats(tmp_path, proof, timeout=1800, cell=f"$flatten\\reader.{cell}",
                                options="-mode const1 -port Y -portbit 0")
    assert not verdict.equivalent and "BASE" in verdict.detail, verdict.detail
