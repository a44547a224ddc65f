"""``build/timing/``: ``report.json`` (one record per design and block), ``summary.json`` (the clock
of each design's array) and ``report.md``; the prose lives in ``timing_text.md``."""

from __future__ import annotations

import json
from pathlib import Path

from gen.synth.area import array_needs
from gen.synth.designs import DESIGNS
from gen.synth.errors import TimingError
from gen.synth.liberty import Liberty
from gen.synth.report import report_text
from gen.synth.sta import DEFAULT_CONSTRAINTS, Constraints, sta_version
from gen.synth.timing import block_timing
from hw.config import MixPEConfig
from sw.formatting import format_number as fmt

__all__ = ["timing_records", "array_clocks", "write_timing_reports"]

_TEXT_PATH = Path(__file__).with_name("timing_text.md")
#: Synthesis fields a timing record keeps (the rest of the synth record is in build/synth/report.json).
_SYNTH_FIELDS = ("design", "block", "description", "config", "config_hash", "rows", "cols", "weight_bits",
                 "group_size", "activation", "weight", "guard_bits", "pe_act_bits", "macs_per_cycle", "area_um2",
                 "timing_area_um2", "timing_cells", "liberty", "liberty_name", "liberty_sha256")


def timing_records(config: MixPEConfig, records: list[dict], liberty: Liberty, *,
                   synth_root: str | Path = "build/synth", use_cache: bool = True,
                   constraints: Constraints = DEFAULT_CONSTRAINTS) -> list[dict]:
    """One timing record per synthesized record: its identity and areas, and every
    :func:`~gen.synth.timing.block_timing` field."""
    timed = []
    for record in records:
        timing = block_timing(config, record["design"], record["block"], liberty, synth_root=synth_root,
                              use_cache=use_cache, constraints=constraints)
        timed.append({**{k: record[k] for k in _SYNTH_FIELDS if k in record}, **timing, "sta_version": sta_version()})
    return timed


def array_clocks(config: MixPEConfig, records: list[dict]) -> list[dict]:
    """Per design whose PE and edge blocks were timed: the array's clock, set by its slowest block
    (the PE, or the measured ``array`` block for MixPE, and what :func:`~gen.synth.area.array_needs` lists),
    and ``path_vs_pe``, that block's path over the PE's."""
    index = {(r["design"], r["block"]): r for r in records}
    rows = []
    for design in DESIGNS:
        core = index.get((design, "array")) or index.get((design, "pe"))
        needs, note = array_needs(design, config)
        if core is None or any((d, b) not in index for d, b, _ in needs):
            continue
        blocks = [core] + [index[(d, b)] for d, b, _ in needs]
        limiting = max(blocks, key=lambda r: r["critical_path_ns"])
        pe = index.get((design, "pe"), core)
        rows.append({"design": design, "needs": note, "pe_critical_path_ns": pe["critical_path_ns"],
                     "pe_fmax_mhz": pe["fmax_mhz"], "limiting_block": limiting["block"],
                     "critical_path_ns": limiting["critical_path_ns"], "fmax_mhz": limiting["fmax_mhz"],
                     "path_vs_pe": limiting["critical_path_ns"] / pe["critical_path_ns"]})
    return rows


def _text(section: str, **values) -> list[str]:
    return report_text(section, _TEXT_PATH, **values)


def _markdown(config: MixPEConfig, records: list[dict], arrays: list[dict], liberty: Liberty,
              constraints: Constraints) -> str:
    timing_area = sum(r["timing_area_um2"] for r in records)
    area = sum(r["area_um2"] for r in records)
    lines = _text("header", name=config.name, hash=config.hash, rows=config.rows, cols=config.cols,
                  weight_bits=config.weight_bits, activation=config.activation, group_size=config.group_size,
                  sta_version=records[0]["sta_version"], liberty_name=liberty.name, liberty_path=liberty.path)
    lines += [""] + _text("setup", delay_ps=constraints.abc_delay_ps, period=constraints.clock_period_ns,
                          area_delta=f"{100 * (timing_area / area - 1):+.1f} %", clock_port=constraints.clock_port,
                          drive=liberty.buffer.cell if liberty.buffer else "an ideal source",
                          load=liberty.buffer.input_capacitance if liberty.buffer else 0.0,
                          liberty_name=liberty.name)
    lines += ["", "## Blocks", "", "| design | block | what it is | critical path ns | fmax MHz | start → end | cells "
              "| as mapped for area, ns | µm² (timing netlist) |", "|---|---|---|---:|---:|---|---:|---:|---:|"]
    for r in records:
        start = r["path_start"] + (" (in)" if r["path_start_kind"] == "port" else "")
        end = r["path_end"] + (" (out)" if r["path_end_kind"] == "port" else "")
        lines.append(f"| {r['design']} | {r['block']} | {r['description']} | {r['critical_path_ns']:.2f} | "
                     f"{r['fmax_mhz']:.0f} | `{start}` → `{end}` | {r['path_cells']} | "
                     f"{r['area_netlist_path_ns']:.2f} | {fmt(r['timing_area_um2'])} |")
    lines += [""] + _text("blocks_intro")
    if arrays:
        lines += ["", f"## Clock of each {config.rows} x {config.cols} array", ""] + _text("arrays_intro")
        lines += ["", "| design | PE path ns | PE fmax MHz | limiting block | its path ns | / PE path | array fmax MHz |",
                  "|---|---:|---:|---|---:|---:|---:|"]
        for a in arrays:
            lines.append(f"| {a['design']} | {a['pe_critical_path_ns']:.2f} | {a['pe_fmax_mhz']:.0f} | "
                         f"{a['limiting_block']} | {a['critical_path_ns']:.2f} | {a['path_vs_pe']:.2f}x | "
                         f"{a['fmax_mhz']:.0f} |")
        mixpe = next((a for a in arrays if a["design"] == "mixpe"), None)
        if mixpe:
            lines += [""] + _text("mixpe_clock", array_mhz=f"{mixpe['fmax_mhz']:.0f}", limiting=mixpe["limiting_block"],
                                  limiting_ns=f"{mixpe['critical_path_ns']:.2f}", pe_mhz=f"{mixpe['pe_fmax_mhz']:.0f}",
                                  ratio=f"{mixpe['pe_fmax_mhz'] / mixpe['fmax_mhz']:.1f}")
    return "\n".join(lines + [""] + _text("reproduce") + [""])


def write_timing_reports(config: MixPEConfig, records: list[dict], liberty: Liberty,
                         out_root: str | Path = "build/timing",
                         constraints: Constraints = DEFAULT_CONSTRAINTS) -> dict[str, Path]:
    """Write ``report.json``, ``summary.json`` and ``report.md`` into ``out_root``; returns their paths.
    Nothing is written unless every record has a positive critical path."""
    if not records:
        raise TimingError("nothing was timed; no report written")
    for record in records:
        if not record.get("critical_path_ns", 0) > 0:
            raise TimingError(f"{record['design']}/{record['block']}: no positive critical path; no report written")
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    arrays = array_clocks(config, records)
    paths = {"json": out_root / "report.json", "summary": out_root / "summary.json", "md": out_root / "report.md"}
    public = [{k: v for k, v in r.items() if k != "timing_cached"} for r in records]
    markdown = _markdown(config, records, arrays, liberty, constraints)
    paths["json"].write_text(json.dumps(public, indent=1, sort_keys=True) + "\n")
    paths["summary"].write_text(json.dumps({"config": config.to_dict(), "arrays": arrays,
                                            "constraints": constraints.describe(liberty.buffer)},
                                           indent=1, sort_keys=True) + "\n")
    paths["md"].write_text(markdown)
    return paths
