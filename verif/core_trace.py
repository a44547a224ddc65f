"""The MixPE core's RTL on a workload, recording what its blocks see cycle by cycle.

A plain Verilog testbench feeds the ``mpgemm`` core's ``act``/``wgt``/``grp`` streams from files
(always valid until exhausted; a beat moves on every cycle the core is ready), takes every result
beat and compares it with the bit-exact golden model, and writes per cycle:

* the array's issue schedule (its ``valid`` and ``group_last`` inputs);
* the input ports of every instance of the edge blocks (``act_sum``, the aligner, the
  GDUs), read by hierarchical reference.

Those port streams are then replayed on each block's gate-level netlist
(:func:`verif.gate_level.simulate`), so the blocks switch exactly as they do inside the core on
that workload, and their netlist outputs can be checked against the RTL's.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from golden.mpgemm import bitexact_mpgemm
from hw.config import MixPEConfig
from verif.gate_level import (CLOCK, GateLevelError, Port, Stimulus, build_verilator, concatenation, read_samples,
                              run_tool, verilog_name, verilog_ports)
from verif.power_workloads import RESET_CYCLES, Workload

__all__ = ["CoreTrace", "EDGE_INSTANCES", "trace_core"]

#: Block name -> pattern of its instance names inside ``mpgemm`` (hw/mpgemm.py).
EDGE_INSTANCES = {"act_sum": r"act_sum", "fp_align": r"aligner", "gdu": r"gdu_\d+"}


@dataclasses.dataclass
class CoreTrace:
    """One RTL run of the core: ``schedule[cycle]`` is the (tile, step) issued that cycle or None;
    ``instances[block][name]`` the per-cycle input port values of each edge-block instance;
    ``cycles`` and ``useful_macs``."""
    schedule: list[tuple[int, int] | None]
    instances: dict[str, dict[str, Stimulus]]
    cycles: int
    useful_macs: int
    result_beats: int


def _instance_ports(text: str, instance: str) -> list[Port]:
    return verilog_ports(text, f"mpgemm.{instance}")


def _testbench(ports: list[Port], recorded: dict[str, list[Port]], expected_results: int, timeout: int) -> str:
    stream = {name: next(p for p in ports if p.name == f"{name}__payload").width for name in ("act", "wgt", "grp")}
    lines = ["`timescale 1ns/1ps", "module core_tb;", "  reg clk = 1'b0;", "  reg rst = 1'b1;",
             "  integer cycle = 0, results = 0, status;",
             "  reg [8*1024-1:0] path;",
             "  integer res_file, sched_file;"]
    for name, width in stream.items():
        lines += [f"  reg [{width - 1}:0] {name}_data = 0, {name}_next;", f"  reg {name}_have = 1'b0;",
                  f"  integer {name}_file;"]
    lines += [f"  integer file_{instance};" for instance in recorded]
    lines.append("  mpgemm dut (.clk(clk), .rst(rst), .res__ready(1'b1), "
                 + ", ".join(f".{name}__payload({name}_data), .{name}__valid({name}_have & ~rst)" for name in stream)
                 + ");")
    lines += [f"  always #5 clk = ~clk;", "  initial begin"]
    for name in stream:
        lines += [f'    if ($value$plusargs("{name}=%s", path)) {name}_file = $fopen(path, "r");',
                  f'    status = $fscanf({name}_file, "%h\\n", {name}_next);',
                  f"    {name}_data = {name}_next; {name}_have = (status == 1);"]
    lines += ['    if ($value$plusargs("res=%s", path)) res_file = $fopen(path, "w");',
              '    if ($value$plusargs("sched=%s", path)) sched_file = $fopen(path, "w");']
    lines += [f'    if ($value$plusargs("{instance}=%s", path)) file_{instance} = $fopen(path, "w");'
              for instance in recorded]
    lines += ["  end", "  always @(posedge clk) begin", "    cycle <= cycle + 1;",
              f"    if (cycle == {RESET_CYCLES - 1}) rst <= 1'b0;"]
    for name in stream:
        lines += [f"    if (!rst && {name}_have && dut.{name}__ready) begin",
                  f'      status = $fscanf({name}_file, "%h\\n", {name}_next);',
                  f"      {name}_data <= {name}_next; {name}_have <= (status == 1);", "    end"]
    lines += ["    if (!rst && dut.res__valid) begin",
              '      $fwrite(res_file, "%h\\n", dut.res__payload);',
              "      results = results + 1;",
              f"      if (results == {expected_results}) begin $fclose(res_file); $fclose(sched_file); "
              + " ".join(f"$fclose(file_{instance});" for instance in recorded) + " $finish; end",
              "    end",
              f"    if (cycle > {timeout}) begin $fclose(res_file); $finish; end",
              "  end",
              "  always @(negedge clk) begin",
              '    $fwrite(sched_file, "%h\\n", {dut.array.valid, dut.array.group_last});']
    for instance, instance_ports in recorded.items():
        exprs = [f"dut.{instance}.{verilog_name(port.name)}" for port in instance_ports]
        lines.append(f'    $fwrite(file_{instance}, "%h\\n", {{{concatenation(exprs)}}});')
    lines += ["  end", "endmodule", ""]
    return "\n".join(lines)


def trace_core(config: MixPEConfig, workload: Workload, work: Path, *, simulator: str = "verilator",
               build_root: Path | None = None) -> CoreTrace:
    """Run ``workload``'s tiles back to back through the ``mpgemm`` RTL of ``config``, check every
    result beat against :func:`golden.mpgemm.bitexact_mpgemm`, and return the recorded trace."""
    from hw.emit import build_block, emit_verilog
    from sw.packer import pack_gemm, tile_result_beats
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    verilog = emit_verilog(build_block("mpgemm", config), "mpgemm")
    rtl = work / "mpgemm.v"
    rtl.write_text(verilog)
    ports = verilog_ports(verilog, "mpgemm")
    instances = sorted(set(re.findall(r"^module \\mpgemm\.(\w+) ", verilog, re.M)))
    recorded: dict[str, list[Port]] = {}
    for block, pattern in EDGE_INSTANCES.items():
        for instance in instances:
            if re.fullmatch(pattern, instance):
                recorded[instance] = [p for p in _instance_ports(verilog, instance)
                                      if p.name != CLOCK and p.direction == "input"]
    if not any(re.fullmatch(EDGE_INSTANCES["gdu"], name) for name in recorded):
        raise GateLevelError(f"the mpgemm core of {config.name} has no GDU instance (looked for "
                             f"{EDGE_INSTANCES['gdu']!r} among {instances})")

    tiles, expected = [], []
    for tile in workload.tiles:
        (packed,) = pack_gemm(config, tile.x, tile.act_scale, tile.weights)
        tiles.append(packed)
        expected += tile_result_beats(config, bitexact_mpgemm(config, tile.x, tile.act_scale, tile.weights))
    files = {name: work / f"{name}.hex" for name in ("act", "wgt", "grp")}
    for name, path in files.items():
        path.write_text("".join(f"{beat:x}\n" for tile in tiles for beat in getattr(tile, name)))
    outputs = {"res": work / "res.hex", "sched": work / "sched.hex",
               **{instance: work / f"{instance}.hex" for instance in recorded}}
    for path in outputs.values():
        path.unlink(missing_ok=True)
    steps = sum(len(tile.act) for tile in tiles)
    timeout = 4 * (steps + len(tiles) * (config.rows + config.cols + 64)) + 1000
    tb_text = _testbench(ports, recorded, len(expected), timeout)
    plusargs = [f"+{name}={path.resolve()}" for name, path in {**files, **outputs}.items()]
    if simulator == "verilator":
        binary = build_verilator([rtl], build_root or work, tb_text, label="mpgemm", top="core_tb")
        run_tool([str(binary), *plusargs], work, "Verilator simulation of the mpgemm core")
    else:
        (work / "core_tb.v").write_text(tb_text)
        run_tool(["iverilog", "-g2012", "-o", "core_tb.vvp", "-s", "core_tb", "core_tb.v", str(rtl.resolve())], work,
                 "Icarus compile of the mpgemm core")
        run_tool(["vvp", "-n", "core_tb.vvp", *plusargs], work, "Icarus simulation of the mpgemm core")

    received = [int(line, 16) for line in outputs["res"].read_text().split()] if outputs["res"].is_file() else []
    if received != expected:
        wrong = next((i for i, (a, b) in enumerate(zip(received, expected)) if a != b), min(len(received), len(expected)))
        raise GateLevelError(f"the mpgemm RTL of {config.name} returned {len(received)} result beats for "
                             f"{len(expected)} expected; first difference from the golden model at beat {wrong}")
    flags = [int(line, 16) for line in outputs["sched"].read_text().split()]
    schedule, issued, tile_index, step = [], 0, 0, 0
    for value in flags:
        if value & 2:
            schedule.append((tile_index, step))
            step += 1
            if step == len(tiles[tile_index].act):
                tile_index, step = tile_index + 1, 0
            issued += 1
        else:
            schedule.append(None)
    if issued != steps:
        raise GateLevelError(f"the mpgemm RTL issued {issued} K steps for the {steps} of the workload")
    traces: dict[str, dict] = {}
    for block, pattern in EDGE_INSTANCES.items():
        for instance, instance_ports in recorded.items():
            if not re.fullmatch(pattern, instance):
                continue
            values = read_samples(outputs[instance], instance_ports)
            # An X at the start of an Icarus run (before its first event) is driven as 0.
            traces.setdefault(block, {})[instance] = Stimulus(
                instance_ports, {name: [value or 0 for value in column] for name, column in values.items()},
                skip=RESET_CYCLES)
    # Drop the reset cycles of the trace: the schedule starts at the first cycle after reset.
    return CoreTrace(schedule=schedule[RESET_CYCLES:], instances=traces, cycles=len(flags) - RESET_CYCLES,
                     useful_macs=workload.useful_macs, result_beats=len(received))
