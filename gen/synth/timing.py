"""Static timing of one synthesized block: the worst setup path of its netlist under OpenSTA.

``critical_path_ns`` is the clock period at which the block just meets setup: the worst path's
arrival plus the endpoint's setup time (= constraint period - worst slack), so a block clocks at
``fmax_mhz = 1000 / critical_path_ns``. Results are cached next to the netlist, keyed by the
netlist's hash, the Liberty file, the constraints and the OpenSTA version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from gen.synth.errors import TimingError
from gen.synth.liberty import Liberty
from gen.synth.sta import DEFAULT_CONSTRAINTS, Constraints, StaSession, require_sta, sta_version
from gen.synth.yosys import netlist_path
from hw.config import MixPEConfig

__all__ = ["TIMING_FIELDS", "block_timing", "netlist_timing", "check_timing_inputs", "DEFAULT_CONSTRAINTS"]

#: Bump when the analysis script or its fields change (invalidates cached timing).
TIMING_VERSION = 1
#: The timing fields ``make synth`` adds to its records.
TIMING_FIELDS = ("critical_path_ns", "fmax_mhz")

#: The worst setup path: slack and times (seconds), its start and end points and the cells on it.
#: A point is a port, or a cell pin named after the cell's output net (a flop's register bits).
_WORST_PATH_TCL = r"""
proc mixpe_point {pin} {
  if {[$pin is_top_level_port]} { return "port [get_full_name $pin]" }
  set cell [$pin instance]
  set out [lindex [get_pins -of_objects $cell -filter "direction == output"] 0]
  return "cell [get_name [$cell liberty_cell]] [get_full_name [$out net]] [get_full_name $pin]"
}
set ends [find_timing_paths -path_delay max -group_count 1]
if {[llength $ends] == 0} { puts "MIXPE_STA paths=0" }
foreach end $ends {
  set pins [[$end path] pins]
  # A register's path begins at the clock port (ideal clock network): start at the flop's clock pin.
  if {[llength $pins] > 1 && [get_full_name [lindex $pins end]] eq $mixpe_clock_port} {
    set pins [lrange $pins 0 end-1]
  }
  set cells 0
  foreach pin $pins { if {![$pin is_top_level_port] && [$pin is_driver]} { incr cells } }
  puts "MIXPE_STA paths=1"
  puts "MIXPE_STA slack=[$end slack]"
  puts "MIXPE_STA arrival=[$end data_arrival_time]"
  puts "MIXPE_STA required=[$end data_required_time]"
  puts "MIXPE_STA start=[mixpe_point [lindex $pins end]]"
  puts "MIXPE_STA end=[mixpe_point [lindex $pins 0]]"
  puts "MIXPE_STA cells=$cells"
}
report_checks -path_delay max -digits 4
"""


def check_timing_inputs(liberty: Liberty | None) -> None:
    """:class:`TimingError` with what to do unless static timing can run: a Liberty file with delay
    tables and an installed ``sta``."""
    if liberty is None:
        raise TimingError("static timing needs a Liberty file: pass LIBERTY=osu018 (Debian qflow-tech-osu018, "
                          "installed by 'make tools' as root) or LIBERTY=path (--liberty)")
    if not liberty.has_timing:
        raise TimingError(f"liberty file {str(liberty.path)!r} has no delay tables (cell_rise/cell_fall); "
                          f"static timing needs a characterized library: pass LIBERTY=osu018 or another path")
    require_sta()


def _point(text: str) -> dict:
    """``port NAME`` or ``cell TYPE NET PIN`` -> the record's description of a path end."""
    kind, _, rest = text.partition(" ")
    if kind == "port":
        return {"name": rest, "kind": "port"}
    cell_type, net, pin = rest.split(" ")
    return {"name": net, "kind": cell_type, "pin": pin}


def netlist_timing(netlist: Path, top: str, liberty: Liberty, work: Path,
                   constraints: Constraints = DEFAULT_CONSTRAINTS) -> dict:
    """The worst setup path of ``netlist`` (uncached): ``critical_path_ns``, ``fmax_mhz``, the start and
    end points (``path_start``/``path_end``: a port, or the register (net) a flop drives; ``*_kind``:
    ``port`` or the cell type), ``path_cells``, ``slack_ns`` at the constraint period, and the setup."""
    session = StaSession(liberty, netlist, top, constraints)
    _, values = session.run(f"set mixpe_clock_port {{{constraints.clock_port}}}\n{_WORST_PATH_TCL}", work)
    if values.get("paths") != ["1"]:
        raise TimingError(f"OpenSTA found no constrained path in {netlist} (top {top}); log {work / 'sta.log'}")
    seconds = {key: float(values[key][0]) for key in ("slack", "arrival", "required")}
    period = constraints.clock_period_ns
    critical = period - seconds["slack"] * 1e9
    if not critical > 0:
        raise TimingError(f"{netlist}: worst path of {critical:g} ns; the Liberty file's delay tables give "
                          f"no delay (log {work / 'sta.log'})")
    start, end = _point(values["start"][0]), _point(values["end"][0])
    return {
        "critical_path_ns": round(critical, 4),
        "fmax_mhz": round(1000.0 / round(critical, 4), 3),
        "path_start": start["name"], "path_start_kind": start["kind"],
        "path_end": end["name"], "path_end_kind": end["kind"],
        "path_cells": int(values["cells"][0]),
        "arrival_ns": round(seconds["arrival"] * 1e9, 4),
        "slack_ns": round(seconds["slack"] * 1e9, 4),
        "timing_clock": constraints.clock_port if session.clocked else "virtual",
        "timing_setup": constraints.describe(liberty.buffer),
    }


def _cache_key(netlists: dict[str, Path], liberty: Liberty, constraints: Constraints) -> str:
    identity = {"timing": TIMING_VERSION, "liberty": liberty.sha256, "constraints": dataclasses.asdict(constraints),
                "sta": sta_version(), **{f"netlist_{kind}": hashlib.sha256(path.read_bytes()).hexdigest()
                                         for kind, path in netlists.items()}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def block_timing(config: MixPEConfig, design: str, block: str, liberty: Liberty, *,
                 synth_root: str | Path = "build/synth", use_cache: bool = True,
                 constraints: Constraints = DEFAULT_CONSTRAINTS) -> dict:
    """:func:`netlist_timing` of the timing-driven netlist :func:`gen.synth.yosys.synthesize` kept for
    (design, block), plus ``area_netlist_path_ns``: the critical path of the netlist the area figures
    come from (mapped for area: no buffering, no sizing), under the same constraints. Cached next to
    the netlists; ``timing_cached`` says whether the result came from the cache."""
    check_timing_inputs(liberty)
    netlists = {kind: netlist_path(synth_root, config, design, block, liberty, kind) for kind in ("timing", "area")}
    missing = [str(path) for path in netlists.values() if not path.is_file()]
    if missing:
        raise TimingError(f"{design}/{block}: no netlist at {missing[0]}; synthesize it first with the same "
                          f"Liberty file (make synth LIBERTY=...)")
    key = _cache_key(netlists, liberty, constraints)
    cache = netlists["timing"].with_suffix(".timing.json")
    if use_cache and cache.is_file():
        try:
            cached = json.loads(cache.read_text())
        except json.JSONDecodeError:
            cached = {}
        if cached.get("timing_key") == key:
            return {**{k: v for k, v in cached.items() if k != "timing_key"}, "timing_cached": True}
    top, work = f"{design}_{block}", Path(synth_root) / "work" / f"sta-{netlists['timing'].stem}"
    result = netlist_timing(netlists["timing"], top, liberty, work / "timing", constraints)
    area_mapped = netlist_timing(netlists["area"], top, liberty, work / "area", constraints)
    result["area_netlist_path_ns"] = area_mapped["critical_path_ns"]
    temporary = cache.with_name(cache.name + ".tmp")
    temporary.write_text(json.dumps({**result, "timing_key": key}, indent=1, sort_keys=True) + "\n")
    temporary.replace(cache)
    return {**result, "timing_cached": False}
