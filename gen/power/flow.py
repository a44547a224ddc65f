"""The ``make power`` run: each design's PE and edge blocks, simulated at gate level on real work,
then OpenSTA power at the design's own clock, per PE and per R x C array.

For every workload (:mod:`verif.power_workloads`):

1. the MixPE core's RTL runs the workload's tiles (:func:`verif.core_trace.trace_core`, results
   checked against the golden model), giving the issue schedule and the port streams of its edge
   blocks (activation sums, aligner, GDUs);
2. every design's PE netlist is simulated, side by side with its RTL, on the operand streams of
   ``positions`` PE positions over that schedule (the same tiles and schedule for every design,
   each in its own operand format); the edge-block netlists replay the recorded streams;
3. the measured toggles and high time of every net go onto its pins in OpenSTA, which reports
   internal, switching and leakage power at the clock of the PE alone (PE records) and at the
   array's clock (array records: the slowest of the blocks it is built from).

Array power = R x C x PE power + each edge block's power times its count (the blocks from
:func:`gen.synth.array_needs`, the count as the core instantiates them, e.g. one GDU per lane);
``int8_mult`` and ``int4x8_mult`` share MixPE's act_sum and GDUs and see the same group-sum streams
(their weight operand is the same code), so they reuse MixPE's edge-block results.

Energy per MAC = power / clock / useful MACs per cycle: for a PE, its valid steps on real (not
padded) rows and columns per simulated cycle; for an array, the workload's useful MACs over the
core's cycles (issue, dequant and bank stalls, and the final drain included).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from pathlib import Path

from gen.power.sta import PowerError, PowerInputError, check_power_tables, pin_annotations, report_power
from hw.config import MixPEConfig

__all__ = ["FLOW_VERSION", "PowerSettings", "run_power"]

#: Bump when the measurement or the record format changes (invalidates cached records).
FLOW_VERSION = 1


@dataclasses.dataclass(frozen=True)
class PowerSettings:
    """What ``make power`` simulates: ``workloads`` of ``tiles`` tiles each (seeded), the PE streams
    of ``positions`` sampled PE positions, the streams of up to ``edge_instances`` GDUs, on ``simulator``;
    ``array=False`` measures the PEs only (no edge blocks, no array records)."""
    workloads: tuple[str, ...] = ("smollm2", "uniform")
    tiles: int = 4
    positions: int = 4
    edge_instances: int = 4
    seed: int = 1
    uniform_k: int = 512
    simulator: str = "verilator"
    array: bool = True

    def __post_init__(self):
        from verif.power_names import SIMULATORS, WORKLOADS
        for name in self.workloads:
            if name not in WORKLOADS:
                raise PowerInputError(f"workload={name!r}: allowed workloads are {WORKLOADS}")
        for field in ("tiles", "positions", "edge_instances"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise PowerInputError(f"{field}={value!r}: must be a positive integer")
        if self.simulator not in SIMULATORS:
            raise PowerInputError(f"simulator={self.simulator!r}: allowed simulators are {SIMULATORS}")


def _sources_hash() -> str:
    """Hash of the code the measurement depends on: the hardware, the golden model, the workloads'
    inputs (packer, SmolLM2, checkpoint import, corpus) and the simulation and power modules."""
    root = Path(__file__).resolve().parent.parent.parent
    digest = hashlib.sha256()
    paths = sorted((root / "hw").rglob("*.py")) + sorted((root / "golden").glob("*.py"))
    paths += [root / "sw" / f"{name}.py" for name in ("packer", "smollm", "checkpoint", "corpus")]
    paths += [root / "verif" / f"{name}.py" for name in ("gate_level", "power_workloads", "core_trace", "smollm_tiles")]
    paths += sorted((root / "gen" / "power").glob("*.py"))
    for path in paths:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class _Block:
    """One synthesized (design, block): its synthesis record (with timing) and timing-driven netlist."""
    design: str
    block: str
    record: dict
    netlist_path: Path

    @property
    def top(self) -> str:
        return f"{self.design}_{self.block}"

    @property
    def fmax_mhz(self) -> float:
        return float(self.record["fmax_mhz"])

    @property
    def area_um2(self) -> float:
        """Area of the timing-driven netlist: the one clocked at ``fmax_mhz`` and simulated."""
        return float(self.record.get("timing_area_um2") or self.record["area_um2"])


def _synthesized(config: MixPEConfig, designs: list[str], liberty, synth_root: Path, use_cache: bool, array: bool,
                 log) -> dict[tuple[str, str], _Block]:
    """Synthesis and timing records (cached by ``make synth``) of every PE (and with ``array`` edge
    block) needed."""
    from gen.synth import array_needs, run_synthesis
    from gen.synth.yosys import netlist_path
    needed = {(design, "pe") for design in designs}
    for design in designs if array else ():
        needed.update((d, b) for d, b, _ in array_needs(design, config)[0])
    blocks = sorted({block for _, block in needed})
    records = run_synthesis(config, designs=sorted({d for d, _ in needed}), blocks=blocks, liberty=liberty,
                            out_root=synth_root, use_cache=use_cache, log=log)
    result = {}
    for record in records:
        key = (record["design"], record["block"])
        if key not in needed:
            continue
        if "fmax_mhz" not in record or not record.get("critical_path_ns"):
            raise PowerError(f"{key[0]}/{key[1]}: the synthesis record has no timing (critical_path_ns, fmax_mhz); "
                             f"the power flow needs 'make timing' results for the Liberty file")
        result[key] = _Block(key[0], key[1], record, netlist_path(synth_root, config, key[0], key[1], liberty, "timing"))
    missing = sorted(needed - set(result))
    if missing:
        raise PowerError(f"no synthesis result for {missing}")
    return result


def _rtl(config: MixPEConfig, block: _Block, work: Path) -> tuple[Path, str]:
    """The block's RTL, emitted under a name of its own (the netlist's top keeps the plain name)."""
    from gen.synth.designs import build_component
    from hw.emit import emit_verilog
    name = f"{block.top}_rtl"
    path = work / f"{name}.v"
    text = emit_verilog(build_component(block.design, block.block, config), name)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path, name


def _positions(config: MixPEConfig, settings: PowerSettings) -> list[tuple[int, int]]:
    cells = [(r, c) for r in range(config.rows) for c in range(config.cols)]
    return random.Random(settings.seed).sample(cells, min(settings.positions, len(cells)))


def _spread(names: list[str], count: int) -> list[str]:
    """``count`` of ``names`` evenly spread (first and last included)."""
    if count >= len(names):
        return list(names)
    step = (len(names) - 1) / max(count - 1, 1)
    return [names[round(i * step)] for i in range(count)]


class _Measurer:
    """Simulates blocks at gate level and runs OpenSTA on them, for one configuration."""

    def __init__(self, config, liberty, settings, work: Path, log):
        from verif.gate_level import cell_models
        self.config, self.liberty, self.settings, self.work, self.log = config, liberty, settings, work, log
        self.models = cell_models(liberty.path, work / "cells")

    def simulate(self, block: _Block, stimulus, label: str):
        """Gate-level activity of ``block`` under ``stimulus``; :class:`PowerError` if its outputs
        differ from the RTL's or nothing switched. Returns (activity, netlist)."""
        from verif.gate_level import Netlist, simulate
        rtl, module = _rtl(self.config, block, self.work / "rtl")
        netlist = Netlist.parse(block.netlist_path, block.top)
        start = time.monotonic()
        result = simulate(rtl, module, stimulus, self.work / "runs" / f"{block.top}-{label}", netlist=netlist,
                          models=self.models, simulator=self.settings.simulator, build_root=self.work / "sim")
        if result.mismatch:
            raise PowerError(f"{block.design}/{block.block} on {label}: the gate-level netlist differs from the RTL at "
                             f"{result.mismatch}; synthesis did not keep the design")
        activity = result.activity
        if activity.unknown:
            raise PowerError(f"{block.design}/{block.block} on {label}: {activity.unknown} net samples of the netlist are "
                             f"X or Z after reset; their activity is unknown")
        if activity.toggles.sum() == 0:
            raise PowerError(f"{block.design}/{block.block} on {label}: the simulation produced no switching activity "
                             f"(every net constant over {activity.cycles} cycles): check the stimulus")
        if self.log:
            self.log(f"  gate-level {block.design}/{block.block} {label}: {activity.cycles} cycles, "
                     f"{len(activity.nets)} nets, outputs equal to the RTL's [{time.monotonic() - start:.1f} s]")
        return activity, netlist

    def power(self, netlist, activity, clock_mhz: float, label: str):
        annotations, measured, nets = pin_annotations(netlist, activity)
        return report_power(netlist, self.liberty, 1000.0 / clock_mhz, annotations, measured, nets,
                            self.work / "sta" / f"{netlist.top}-{label}-{clock_mhz:.3f}")


def _instances(config: MixPEConfig, trace, block: str, count: str) -> int:
    """How many ``block`` units the array has: as many as the core instantiates (e.g. one GDU per
    lane), else :func:`gen.synth.array_needs`' count ("1", "C": one per column, "L": one per lane)."""
    from gen.synth.area import instance_count
    if block in trace.instances:
        return len(trace.instances[block])
    if count not in ("1", "C", "L"):
        raise PowerError(f"block {block!r}: unknown instance count {count!r} (expected '1', 'C' or 'L')")
    return instance_count(config, count)


def _match_ports(block_ports, instance_ports, instance: str, module: str) -> dict[str, str]:
    """Block port name -> instance port name: the same name, else the one remaining port of the same
    width (Amaranth may name a submodule's port after the signal it feeds, e.g. a memory's address)."""
    names = {p.name for p in instance_ports}
    matched = {p.name: p.name for p in block_ports if p.name in names}
    left = [p for p in instance_ports if p.name not in matched.values()]
    for port in block_ports:
        if port.name in matched:
            continue
        candidates = [p for p in left if p.width == port.width]
        if len(candidates) != 1:
            raise PowerError(f"the core's instance {instance} has no port {port.name!r} ({port.width} bits) of "
                             f"block {module}, and {len(candidates)} unmatched ports of that width")
        matched[port.name] = candidates[0].name
        left.remove(candidates[0])
    return matched


def _block_stimulus(block_rtl: Path, module: str, traces: dict, instances: list[str]):
    """The recorded input streams of ``instances`` of one edge block, one after the other, on the
    standalone block's input ports; the reset is kept only at the start."""
    from verif.gate_level import CLOCK, Stimulus, verilog_ports
    ports = [p for p in verilog_ports(block_rtl.read_text(), module) if p.direction == "input" and p.name != CLOCK]
    stimulus = None
    for index, instance in enumerate(instances):
        recorded = traces[instance]
        names = _match_ports(ports, recorded.ports, instance, module)
        skip = 0 if index == 0 else recorded.skip
        part = Stimulus(ports, {p.name: recorded.values[names[p.name]][skip:] for p in ports}, recorded.skip)
        stimulus = part if stimulus is None else stimulus.concatenated(part)
    return stimulus


def _edge_multiplier_stimulus(config: MixPEConfig, module_rtl: Path, module: str, workload, trace):
    """The token-scale FP32 multiplier of one ``dequant_fp`` lane (lane 0: columns 0, L, 2L, ...):
    each of its columns' R FP32 results times its row's token scale, one per cycle from the cycle
    column 0's PE(0, 0) drains (t_last + 2), column after column, inputs held in between."""
    from golden.fp32 import bits
    from verif.gate_level import CLOCK, Stimulus, verilog_ports
    from verif.power_workloads import RESET_CYCLES
    ports = [p for p in verilog_ports(module_rtl.read_text(), module) if p.direction == "input" and p.name != CLOCK]
    names = [p.name for p in ports]
    if not {"a", "b"} <= set(names) <= {"a", "b", "exp_offset"}:
        raise PowerError(f"{module}: expected FP32 multiplier inputs a, b (and exp_offset), found {names}")
    last_issue = {}
    for cycle, step in enumerate(trace.schedule):
        if step is not None:
            last_issue[step[0]] = cycle
    drains = {}
    columns = range(0, config.cols, config.lanes)
    for index, tile in enumerate(workload.tiles):
        scale = tile.act_scale.float()
        result = (tile.x_float.double() @ tile.w_float.double().T).float() / scale[:, None]
        for position, (c, r) in enumerate((c, r) for c in columns for r in range(config.rows)):
            drains[last_issue[index] + 2 + position] = (int(bits(result[r, c:c + 1])[0]) & 0xFFFFFFFF,
                                                        int(bits(scale[r:r + 1])[0]) & 0xFFFFFFFF)
    values = {name: [0] * RESET_CYCLES for name in names}
    held = (0, 0)
    for cycle in range(len(trace.schedule)):
        held = drains.get(cycle, held)
        values["a"].append(held[0])
        values["b"].append(held[1])
        if "exp_offset" in values:
            values["exp_offset"].append(0)
    return Stimulus(ports, values, skip=RESET_CYCLES)


def _mw(watts: float) -> float:
    return watts * 1e3


def _record(config, design, block, workload_name, area, timing: dict, clock_mhz, power, instances,
            macs_per_cycle, source, extra=None) -> dict:
    """One report record; ``power`` is a PowerResult of one instance (scaled by ``instances``),
    ``timing`` holds the block's ``critical_path_ns`` and ``fmax_mhz``."""
    scale = instances
    total = power.total_w * scale
    energy = total / (clock_mhz * 1e6) / macs_per_cycle * 1e12 if macs_per_cycle else None
    from gen.synth.designs import design_formats
    activation, weight = design_formats(design, config)
    return {
        "design": design, "block": block, "workload": workload_name, "activation": activation, "weight": weight,
        "config": config.name, "config_hash": config.hash, "instances": instances,
        "area_um2": area * instances,
        "critical_path_ns": timing["critical_path_ns"], "fmax_mhz": timing["fmax_mhz"],
        "clock_mhz": clock_mhz,
        "power_mw": _mw(total), "internal_mw": _mw(power.internal_w * scale),
        "switching_mw": _mw(power.switching_w * scale), "leakage_mw": _mw(power.leakage_w * scale),
        "sequential_mw": _mw(power.sequential_w * scale), "combinational_mw": _mw(power.combinational_w * scale),
        "macs_per_cycle": macs_per_cycle, "energy_pj_per_mac": energy,
        "activity_source": source, "annotated_net_fraction": power.annotated_fraction,
        **(extra or {}),
    }


def _pe_macs_per_cycle(workload, schedule, positions) -> float:
    useful = 0
    for row, col in positions:
        for step in schedule:
            if step is not None:
                tile = workload.tiles[step[0]]
                useful += row < tile.useful_rows and col < tile.useful_cols
    return useful / (len(schedule) * len(positions))


def _measure_workload(config, settings, blocks, designs, measurer, workload_name, log) -> list[dict]:
    from verif.core_trace import trace_core
    from verif.gate_level import CLOCK, verilog_ports
    from verif.power_workloads import design_operands, make_workload, pe_stimulus
    work = measurer.work
    start = time.monotonic()
    workload = make_workload(config, workload_name, count=settings.tiles, seed=settings.seed,
                             uniform_k=settings.uniform_k)
    trace = trace_core(config, workload, work / "core" / workload_name, simulator=settings.simulator,
                       build_root=work / "sim")
    if log:
        log(f"{workload_name}: {workload.description}; MixPE core RTL {trace.cycles} cycles, "
            f"{trace.result_beats} result beats equal to the golden model [{time.monotonic() - start:.1f} s]")
    positions = _positions(config, settings)
    pe_macs = _pe_macs_per_cycle(workload, trace.schedule, positions)
    array_macs = trace.useful_macs / trace.cycles
    simulator = {"verilator": "Verilator", "icarus": "Icarus Verilog"}[settings.simulator]
    where = f"{settings.positions} PE positions" if settings.positions > 1 else "one PE position"

    from gen.synth import array_needs
    pe_results, edge_results = {}, {}
    for design in designs:
        block = blocks[(design, "pe")]
        rtl, module = _rtl(config, block, work / "rtl")
        ports = [p for p in verilog_ports(rtl.read_text(), module) if p.direction == "input" and p.name != CLOCK]
        operands = [design_operands(design, config, tile) for tile in workload.tiles]
        stimulus = pe_stimulus(ports, operands, trace.schedule, positions)
        pe_results[design] = measurer.simulate(block, stimulus, workload_name)
    for design in designs if settings.array else ():
        for d, b, _ in array_needs(design, config)[0]:
            if (d, b) in edge_results:
                continue
            block = blocks[(d, b)]
            rtl, module = _rtl(config, block, work / "rtl")
            if (d, b) == ("dequant_fp", "edge"):
                stimulus = _edge_multiplier_stimulus(config, rtl, module, workload, trace)
            else:
                traces = trace.instances[b]
                chosen = _spread(sorted(traces, key=lambda name: int(name.rsplit("_", 1)[-1])
                                        if name[-1].isdigit() else 0), settings.edge_instances)
                stimulus = _block_stimulus(rtl, module, traces, chosen)
            edge_results[(d, b)] = measurer.simulate(block, stimulus, workload_name)

    from gen.synth.timing_report import array_clocks
    clocks = {row["design"]: row for row in array_clocks(config, [block.record for block in blocks.values()])}
    records = []
    for design in designs:
        pe_block = blocks[(design, "pe")]
        activity, netlist = pe_results[design]
        source = (f"gate-level {simulator} of the {pe_block.top} netlist: {where} x {trace.cycles} cycles of the "
                  f"MixPE core's schedule, per-net toggles and high time sampled every clock")
        pe_power = measurer.power(netlist, activity, pe_block.fmax_mhz, workload_name)
        records.append(_record(config, design, "pe", workload_name, pe_block.area_um2, pe_block.record,
                               pe_block.fmax_mhz, pe_power, 1, pe_macs, source,
                               {"simulated_cycles": activity.cycles, "floating_nets": activity.floating}))
        if not settings.array:
            continue
        clock = clocks[design]
        array_clock = clock["fmax_mhz"]
        pe_at_array = measurer.power(netlist, activity, array_clock, workload_name)
        array_parts = [("pe", pe_at_array, config.rows * config.cols, pe_block.area_um2)]
        for d, b, count in array_needs(design, config)[0]:
            count = _instances(config, trace, b, count)
            edge_activity, edge_netlist = edge_results[(d, b)]
            edge_power = measurer.power(edge_netlist, edge_activity, array_clock, workload_name)
            array_parts.append((b, edge_power, count, blocks[(d, b)].area_um2))
            shared = " (MixPE's, same streams)" if d != design else ""
            records.append(_record(
                config, design, b, workload_name, blocks[(d, b)].area_um2, blocks[(d, b)].record, array_clock,
                edge_power, count, array_macs,
                f"gate-level {simulator} of the {blocks[(d, b)].top} netlist{shared} replaying "
                f"{'the token-scale multiplies of the workload' if b == 'edge' else 'its port streams in the core RTL'}",
                {"simulated_cycles": edge_activity.cycles, "floating_nets": edge_activity.floating}))
        records.append(_array_record(config, design, workload_name, array_parts, clock, array_macs, trace.cycles))
    for record in records:
        record["workload_description"] = workload.description
    return records


def _array_record(config, design, workload_name, parts, clock: dict, macs_per_cycle, cycles) -> dict:
    """The R x C array with its edge blocks: the sum of its parts at the array clock ``clock`` (a row
    of :func:`gen.synth.timing_report.array_clocks`)."""
    fields = ("internal_w", "switching_w", "leakage_w", "total_w", "sequential_w", "combinational_w")
    totals = {field: sum(getattr(power, field) * count for _, power, count, _ in parts) for field in fields}
    nets = sum(power.nets * count for _, power, count, _ in parts)
    annotated = sum(power.annotated_nets * count for _, power, count, _ in parts)
    from gen.power.sta import PowerResult
    combined = PowerResult(**totals, annotated_nets=annotated, nets=nets)
    area = sum(area * count for _, _, count, area in parts)
    blocks = " + ".join(f"{count} x {name}" for name, _, count, _ in parts)
    return _record(config, design, "array", workload_name, area, clock, clock["fmax_mhz"], combined, 1,
                   macs_per_cycle, f"sum of its measured blocks: {blocks}",
                   {"simulated_cycles": cycles, "limited_by": clock["limiting_block"],
                    "parts": {name: _mw(power.total_w * count) for name, power, count, _ in parts},
                    "parts_sequential": {name: _mw(power.sequential_w * count) for name, power, count, _ in parts}})


def _cache_key(config, settings, liberty, blocks, designs, workload_name) -> str:
    identity = {
        "flow": FLOW_VERSION, "config": config.hash, "liberty": liberty.sha256, "workload": workload_name,
        "settings": dataclasses.asdict(settings), "designs": designs, "sources": _sources_hash(),
        "blocks": {f"{d}/{b}": [blk.record.get("cache_key"), blk.record.get("critical_path_ns")]
                   for (d, b), blk in sorted(blocks.items())},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def run_power(config: MixPEConfig, liberty, settings: PowerSettings = PowerSettings(), *, designs=None,
              out_root: str | Path = "build/power", synth_root: str | Path = "build/synth",
              use_cache: bool = True, log=print) -> list[dict]:
    """Measure every design that supports ``config`` (or ``designs``) on every workload of
    ``settings``; returns the records (PE, edge blocks, array; one set per workload)."""
    from gen.synth import unsupported_reason
    from gen.names import DESIGNS
    if liberty is None:
        raise PowerInputError("the power flow needs a Liberty file with power tables: pass --liberty osu018 or "
                         "--liberty PATH (LIBERTY=osu018 for make power)")
    check_power_tables(liberty.path)
    from gen.synth.timing import check_timing_inputs
    check_timing_inputs(liberty)
    if designs is None:
        designs = [d for d in DESIGNS if unsupported_reason(d, config) is None]
    else:
        for design in designs:
            reason = unsupported_reason(design, config)
            if reason:
                raise PowerInputError(f"design={design!r} cannot be built for {config.name}: {reason}")
    designs = list(designs)
    if "mixpe" not in designs:
        designs.insert(0, "mixpe")  # its core gives the schedule and the edge-block streams
    out_root, synth_root = Path(out_root), Path(synth_root)
    blocks = _synthesized(config, designs, liberty, synth_root, use_cache, settings.array, log)
    measurer = None
    records = []
    for workload_name in settings.workloads:
        key = _cache_key(config, settings, liberty, blocks, designs, workload_name)
        cache = out_root / "cache" / f"{config.hash}-{workload_name}-{key[:16]}.json"
        if use_cache and cache.is_file():
            records += json.loads(cache.read_text())
            if log:
                log(f"{workload_name}: cached ({cache})")
            continue
        measurer = measurer or _Measurer(config, liberty, settings, out_root / "work" / config.name, log)
        measured = _measure_workload(config, settings, blocks, designs, measurer, workload_name, log)
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(".tmp")
        temporary.write_text(json.dumps(measured, indent=1, sort_keys=True) + "\n")
        temporary.replace(cache)
        records += measured
    return records
