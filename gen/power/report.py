"""``build/power/``: ``report.json`` (the records), ``summary.json`` (the ratios and how they were
measured), ``report.md`` and ``power.png``."""

from __future__ import annotations

import json
from pathlib import Path

from gen.power.sta import PowerError
from hw.config import MixPEConfig

__all__ = ["PAPER_CLAIMS", "comparisons", "write_reports"]

#: The paper's claims (its design-space figure and abstract): baseline -> (what, factor in MixPE's favour).
PAPER_CLAIMS = {
    "int8_mult": ("area x power efficiency vs the INT8 PE (W4A8)", 2.29),
    "fp16_fp16": ("area x power efficiency vs the FP16 PE (W4A16)", 4.82),
    "energy": ("energy vs the best quantized accelerator (system level)", 1.4),
}
#: Record fields every record has (others are extra detail).
FIELDS = ("design", "block", "activation", "area_um2", "critical_path_ns", "fmax_mhz", "clock_mhz", "power_mw",
          "internal_mw", "switching_mw", "leakage_mw", "energy_pj_per_mac", "workload", "activity_source",
          "annotated_net_fraction")


def comparisons(records: list[dict]) -> list[dict]:
    """MixPE against every baseline, per workload and level (pe, array): ratios baseline / MixPE of
    area, power and energy per MAC, and the area x power efficiency product ratio (MACs/s per µm²
    times MACs per joule, MixPE over baseline) at each design's own clock and at an equal clock
    (area ratio x energy ratio: the clock drops out of MACs/s per µm² when both run at the same one)."""
    index = {(r["workload"], r["design"], r["block"]): r for r in records}
    rows = []
    for (workload, design, block), record in index.items():
        mixpe = index.get((workload, "mixpe", block))
        if design == "mixpe" or block not in ("pe", "array") or mixpe is None:
            continue

        def product(r):
            return r["macs_per_cycle"] * r["clock_mhz"] / r["area_um2"] / r["energy_pj_per_mac"]
        rows.append({
            "workload": workload, "level": block, "baseline": design,
            "area_ratio": record["area_um2"] / mixpe["area_um2"],
            "power_ratio": record["power_mw"] / mixpe["power_mw"],
            "energy_ratio": record["energy_pj_per_mac"] / mixpe["energy_pj_per_mac"],
            "clock_ratio": mixpe["clock_mhz"] / record["clock_mhz"],
            "efficiency_product_ratio": product(mixpe) / product(record),
            "efficiency_equal_clock_ratio": (record["area_um2"] / mixpe["area_um2"])
            * (record["energy_pj_per_mac"] / mixpe["energy_pj_per_mac"]),
            "paper": PAPER_CLAIMS.get(design, (None, None))[1],
        })
    return rows


def _f(value, digits=2) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _markdown(config: MixPEConfig, records: list[dict], meta: dict, png: str | None) -> str:
    workloads = list(dict.fromkeys(r["workload"] for r in records))
    designs = list(dict.fromkeys(r["design"] for r in records))
    lines = [
        f"# Power and energy per MAC: MixPE vs baseline PEs and arrays ({config.name})",
        "",
        f"Configuration `{config.name}` (hash `{config.hash}`): R x C = {config.rows} x {config.cols}, "
        f"W{config.weight_bits} ({config.zero_mode} zero points), {config.activation} activations, g = {config.group_size}. "
        f"Library `{meta['liberty_name']}` ({meta['liberty']}); OpenSTA `report_power` "
        f"(internal, switching, leakage); no wire load.",
        "",
        "How it is measured:",
        "",
        f"* **Activity**: gate-level simulation ({meta['simulator']}, zero delay) of each synthesized netlist, "
        "with the library's cells as models (Yosys `read_liberty`), side by side with the block's RTL; every "
        "output of the netlist equals the RTL's on every cycle (checked: synthesis kept the design). Every net's "
        "toggles and high time are counted from its value sampled each clock and set on all its pins "
        "(`sta::set_power_pin_activity`, `sta::set_power_input_port_activity`); the clock is OpenSTA's.",
        f"* **Stimulus**: the MixPE core's RTL runs each workload's tiles (its results equal the golden model's); "
        f"every design's PE gets the operand streams of {meta['positions']} sampled PE positions over that run's "
        f"schedule, in its own operand format (same tiles, same values); the edge blocks replay the port streams "
        f"recorded inside the core (the streams of up to {meta['edge_instances']} GDUs, one after the other).",
        "* **Clock**: each PE at its own fmax (`make timing`); an array at the fmax of its slowest block.",
        "* **Energy per MAC** = power / clock / useful MACs per cycle (PE: its valid steps per cycle; array: "
        "the workload's MACs over the core's cycles, stalls and drain included).",
        "* **Array** = R x C x PE + its edge blocks (count x one measured instance); int8_mult and int4x8_mult "
        "use MixPE's act_sum and GDUs, which see the same group-sum streams.",
        "",
    ]
    for workload in workloads:
        description = next(r["workload_description"] for r in records if r["workload"] == workload)
        lines += [f"## Workload `{workload}`", "", description + ".", ""]
        levels = [level for level in ("pe", "array") if any(r["block"] == level for r in records)]
        titles = {"pe": "One PE at its own clock", "array": f"{config.rows} x {config.cols} array with its edge blocks"}
        for level in levels:
            lines += [f"### {titles[level]}", "",
                      "| design | activation | clock MHz | power mW | internal | switching | leakage | sequential | "
                      "pJ / MAC | MACs / cycle | area µm² | nets measured |",
                      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for design in designs:
                r = next((x for x in records if (x["workload"], x["design"], x["block"]) == (workload, design, level)), None)
                if r is None:
                    continue
                clock = f"{_f(r['clock_mhz'], 1)}" + (f" ({r['limited_by']})" if level == "array" else "")
                lines.append(f"| {design} | {r['activation']} | {clock} | {_f(r['power_mw'], 3)} | "
                             f"{_f(r['internal_mw'], 3)} | {_f(r['switching_mw'], 3)} | {_f(r['leakage_mw'], 5)} | "
                             f"{_f(r['sequential_mw'], 3)} | {_f(r['energy_pj_per_mac'])} | {_f(r['macs_per_cycle'], 2)} | "
                             f"{_f(r['area_um2'], 0)} | {100 * r['annotated_net_fraction']:.0f} % |")
            lines.append("")
        if "array" not in levels:
            continue
        lines += ["### Where the array's power goes", "",
                  "Each part's power, and in brackets its flip-flops' share (clock and data; in the GDUs mostly "
                  "the accumulator bank):", "",
                  "| design | PE array | act_sum | aligner | GDUs | edge multipliers |", "|---|---:|---:|---:|---:|---:|"]
        for design in designs:
            r = next((x for x in records if (x["workload"], x["design"], x["block"]) == (workload, design, "array")), None)
            if r is None:
                continue
            cells = []
            for name in ("pe", "act_sum", "fp_align", "gdu", "edge"):
                value = r["parts"].get(name)
                cells.append("-" if value is None else f"{_f(value, 2)} mW = {100 * value / r['power_mw']:.0f} % "
                             f"({100 * r['parts_sequential'][name] / value:.0f} % flops)")
            lines.append(f"| {design} | " + " | ".join(cells) + " |")
        lines.append("")
    rows = comparisons(records)
    if rows:
        lines += ["## MixPE against the baselines", "",
                  "Ratios baseline / MixPE (above 1 favours MixPE). The area x power efficiency product is "
                  "(MACs/s per µm²) x (MACs per joule), MixPE over the baseline: with each design at its own "
                  "clock, and at an equal clock (= area ratio x energy ratio; the single-cycle FP PEs clock "
                  "4-5x slower, which the first product counts and the second does not).", "",
                  "| workload | level | baseline | area | power | energy / MAC | clock (MixPE / baseline) | "
                  "area x power efficiency | at equal clock | paper |", "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for row in rows:
            claim = PAPER_CLAIMS.get(row["baseline"])
            paper = f"{claim[1]}x ({claim[0]})" if claim else "-"
            lines.append(f"| {row['workload']} | {row['level']} | {row['baseline']} | {_f(row['area_ratio'])}x | "
                         f"{_f(row['power_ratio'])}x | {_f(row['energy_ratio'])}x | {_f(row['clock_ratio'])}x | "
                         f"**{_f(row['efficiency_product_ratio'])}x** | {_f(row['efficiency_equal_clock_ratio'])}x | "
                         f"{paper} |")
        lines += ["", f"The paper's {PAPER_CLAIMS['energy'][1]}x energy claim is a system-level figure (with memory "
                      f"and the authors' simulator's baselines), not a PE or array one; the energy column is the "
                      f"nearest measured quantity.", ""]
    lines += [
        "What the numbers do not include:",
        "",
        "* Glitches (zero-delay simulation), wires (no wire load), a clock tree and clock gating: every flip-flop "
        "is clocked every cycle, so register-heavy blocks (the GDUs' accumulator banks) pay clock power even when idle.",
        "* Memories: the GDUs' accumulators are flip-flops and multiplexers, not SRAM; no operand buffers or DRAM.",
        f"* OSU 0.18 µm cells at 1.8 V, not the paper's 28 nm library: absolute pJ are large; ratios are the point.",
        "",
    ]
    if png:
        lines += [f"![energy per MAC, area and the paper's claims]({png})", ""]
    lines += [f"Reproduce: `{meta['command']}`; records in `report.json` (one per workload, design and block), "
              f"cached per workload in `cache/`.", ""]
    return "\n".join(lines)


def _plot(records: list[dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    workloads = list(dict.fromkeys(r["workload"] for r in records))
    designs = list(dict.fromkeys(r["design"] for r in records))
    index = {(r["workload"], r["design"], r["block"]): r for r in records}
    figure, axes = plt.subplots(1, 3, figsize=(19, 4.8), gridspec_kw={"width_ratios": [1, 1, 1.5]})
    width = 0.8 / (2 * len(workloads))
    for panel, (ax, key, label) in enumerate(((axes[0], "energy_pj_per_mac", "energy per MAC (pJ)"),
                                             (axes[1], "area_um2", "area (µm²)"))):
        offset = 0
        for level in ("pe", "array"):
            for workload in workloads:
                values = [index.get((workload, d, level), {}).get(key) or 0 for d in designs]
                if key == "area_um2" and workload != workloads[0]:
                    continue
                positions = [i + offset * width for i in range(len(designs))]
                ax.bar(positions, values, width, label=f"{level}" + (f", {workload}" if key != "area_um2" else ""))
                offset += 1
        ax.set_xticks([i + (offset - 1) * width / 2 for i in range(len(designs))], designs, rotation=20)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.set_title(label.split(" (")[0] + " per design")
    ax = axes[2]
    rows = [row for row in comparisons(records) if row["baseline"] in ("int8_mult", "fp16_fp16")]
    labels = [f"{r['level']}, {r['workload']}\nvs {r['baseline'].split('_')[0]}" for r in rows]
    ax.bar(range(len(rows)), [r["efficiency_product_ratio"] for r in rows], color="#2b7bba",
           label="measured area x power efficiency, MixPE / baseline")
    ax.scatter(range(len(rows)), [r["efficiency_equal_clock_ratio"] for r in rows], marker="D", color="#f0a030",
               zorder=3, label="the same at an equal clock (area ratio x energy ratio)")
    ax.scatter(range(len(rows)), [r["paper"] for r in rows], marker="_", s=600, color="red", zorder=3,
               label="paper's claim (2.29x vs INT8, 4.82x vs FP16)")
    ax.scatter(range(len(rows)), [r["energy_ratio"] for r in rows], marker="o", color="black", zorder=3,
               label="measured energy ratio (paper: 1.4x, system level)")
    ax.axhline(PAPER_CLAIMS["energy"][1], color="gray", linestyle=":", linewidth=1)
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_yscale("log")
    top = max([r["efficiency_product_ratio"] for r in rows] + [r["paper"] for r in rows] + [2.0])
    ax.set_ylim(top=top * 8)
    ax.set_title("MixPE vs INT8 and FP16 (above 1 favours MixPE)")
    ax.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write_reports(config: MixPEConfig, records: list[dict], meta: dict, out_root: str | Path = "build/power"
                  ) -> dict[str, Path]:
    """Write ``report.json``, ``summary.json``, ``report.md`` and ``power.png`` into ``out_root``;
    returns their paths.
    Nothing is written unless every record has positive power and energy."""
    if not records:
        raise PowerError("nothing was measured; no report written")
    for record in records:
        missing = [field for field in FIELDS if field not in record]
        if missing or record["power_mw"] <= 0 or (record["energy_pj_per_mac"] or 0) <= 0:
            raise PowerError(f"{record.get('design')}/{record.get('block')} on {record.get('workload')}: "
                             f"{'missing ' + ', '.join(missing) if missing else 'no power'}; no report written")
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_root / "report.json", "summary": out_root / "summary.json", "md": out_root / "report.md",
             "png": out_root / "power.png"}
    paths["json"].write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    paths["summary"].write_text(json.dumps({"config": config.to_dict(), **meta, "comparisons": comparisons(records)},
                                           indent=1, sort_keys=True) + "\n")
    if not _plot(records, paths["png"]):
        paths.pop("png")
    paths["md"].write_text(_markdown(config, records, meta, paths["png"].name if "png" in paths else None))
    return paths
