"""``build/synth/``: ``report.json`` (the records), ``summary.json`` (array sums, guard sweep),
``report.md`` and ``area.png``. The report's prose, the paper's claims among it, lives in
``report_text.md`` next to this module."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from gen.synth.area import FAIR_BASELINE, array_summary, array_total_records, metric_keys
from gen.synth.code_formats import code_format_section
from gen.synth.designs import DESIGNS, unsupported_reason
from gen.synth.errors import SynthError
from gen.synth.liberty import Liberty
from gen.synth.plot import plot_area
from gen.synth.yosys import FLOW_VERSION
from hw.config import MixPEConfig
from sw.formatting import format_number as fmt

__all__ = ["write_reports", "report_text"]

_TEXT_PATH = Path(__file__).with_name("report_text.md")
_SECTION_RE = re.compile(r"^<!-- section: (\w+) -->$", re.MULTILINE)


@functools.cache
def _sections(path: Path = _TEXT_PATH) -> dict[str, str]:
    parts = _SECTION_RE.split(path.read_text())
    return {name: body.removeprefix("\n").rstrip("\n") for name, body in zip(parts[1::2], parts[2::2])}


def report_text(section: str, path: Path = _TEXT_PATH, **values) -> list[str]:
    """The lines of one section of a report text file (see ``report_text.md``) filled with ``values``."""
    return _sections(path)[section].format(**values).split("\n")


def _claims(section: str, **values) -> list[tuple[str, str, str]]:
    return [tuple(part.strip() for part in line.split(" | ")) for line in report_text(section, **values)]


def _paper_claims(config: MixPEConfig) -> tuple[list[tuple[str, str, str]], str]:
    """(design, comparison, the paper's figure) rows for ``config``'s activation, and a note."""
    values = {"weight_bits": config.weight_bits, "activation": config.activation,
              "pe_act_bits": config.pe_act_bits}
    shift_add = _claims("claims_shift_add")
    if not config.fp_activation:
        return _claims("claims_int", **values) + shift_add, report_text("claims_note_int")[0]
    fp16_claim = report_text("claim_fp16" if config.activation == "fp16" else "claim_other_fp", **values)[0]
    return (_claims("claims_fp", fp16_claim=fp16_claim, **values) + shift_add,
            report_text("claims_note_fp", **values)[0])


def _markdown(config: MixPEConfig, records: list[dict], arrays: list[dict], liberty: Liberty | None,
              png_name: str | None, guard_rows: list[dict] | None = None, code_rows: list[dict] | None = None) -> str:
    index = {(r["design"], r["block"]): r for r in records}
    keys = metric_keys(records)
    fp = config.fp_activation
    activation_text = report_text("activation_fp" if fp else "activation_int", activation=config.activation,
                                  pe_act_bits=config.pe_act_bits, guard=config.guard)[0]
    lines = report_text("header", name=config.name, hash=config.hash, rows=config.rows, cols=config.cols,
                        weight_bits=config.weight_bits, weight_encoding=config.weight_encoding,
                        activation_text=activation_text, group_size=config.group_size,
                        yosys=next((r["yosys"] for r in records), "Yosys"), flow_version=FLOW_VERSION)
    if liberty:
        lines += report_text("liberty", liberty_name=liberty.name, liberty_path=liberty.path,
                             nand2_cell=liberty.nand2_cell, nand2_area=liberty.nand2_area)
    else:
        lines += report_text("no_liberty")
    lines += report_text("metrics")
    skipped = [(d, unsupported_reason(d, config)) for d in DESIGNS if (d, "pe") not in index]
    skipped = [(d, reason) for d, reason in skipped if reason]
    if skipped:
        lines.append("* **Not built** for this configuration: " + "; ".join(f"`{d}` ({reason})" for d, reason in skipped)
                     + ".")
    lines += ["", "## Processing elements", ""]
    header = "| design | activation x weight | what it is | cells | GE | depth | seq |"
    rule = "|---|---|---|---:|---:|---:|---:|"
    if "area_um2" in keys:
        header += " µm² | GE lib | seq lib |"
        rule += "---:|---:|---:|"
    header += " area / MixPE PE |"
    rule += "---:|"
    lines += [header, rule]
    mixpe_pe = index.get(("mixpe", "pe"))
    ratio_key = "area_um2" if "area_um2" in keys else "area_ge"
    unit = "µm²" if ratio_key == "area_um2" else "GE"
    for design in DESIGNS:
        record = index.get((design, "pe"))
        if record is None:
            continue
        row = (f"| {design} | {record['activation']} x {record['weight']} | {record['description']} | "
               f"{fmt(record['cells'])} | {fmt(record['area_ge'])} | {record['depth']} | "
               f"{100 * record['sequential_share']:.0f}% |")
        if "area_um2" in keys:
            row += (f" {fmt(record['area_um2'])} | {fmt(record['area_ge_liberty'])} | "
                    f"{100 * record['sequential_share_liberty']:.0f}% |")
        ratio = record[ratio_key] / mixpe_pe[ratio_key] if mixpe_pe else None
        row += f" {fmt(ratio, 2)}x |"
        lines.append(row)
    lines += ["", f"Ratios use {'µm² (library)' if ratio_key == 'area_um2' else 'generic GE'}."]
    if "area_um2" in keys and mixpe_pe:
        generic = ", ".join(f"{d} {index[(d, 'pe')]['area_ge'] / mixpe_pe['area_ge']:.2f}x"
                            for d in DESIGNS[1:] if (d, "pe") in index)
        lines.append(f"The same ratios in generic GE: {generic}.")

    lines += _other_blocks(config, records, index, keys, ratio_key, unit)
    if arrays:
        lines += _array_section(config, arrays, index, keys, ratio_key, unit)
    if guard_rows:
        lines += _guard_section(config, guard_rows, ratio_key, unit)
    if code_rows:
        lines += code_format_section(config, code_rows, ratio_key, unit)
    lines += _paper_section(config, arrays, index, ratio_key)
    if png_name:
        lines += [f"![area per PE and per array]({png_name})", ""]
    lines += report_text("reproduce") + [""]
    return "\n".join(lines)


def _other_blocks(config, records, index, keys, ratio_key, unit) -> list[str]:
    other = [r for r in records if r["block"] != "pe"]
    if not other:
        return []
    lines = ["", "## Other blocks", "", "| design | block | what it is | cells | GE | depth | seq |"
             + (" µm² |" if "area_um2" in keys else "") + " synth s |",
             "|---|---|---|---:|---:|---:|---:|" + ("---:|" if "area_um2" in keys else "") + "---:|"]
    for r in other:
        lines.append(f"| {r['design']} | {r['block']} | {r['description']} | {fmt(r['cells'])} | "
                     f"{fmt(r['area_ge'])} | {r['depth']} | {100 * r['sequential_share']:.0f}% |"
                     + (f" {fmt(r['area_um2'])} |" if "area_um2" in keys else "")
                     + f" {r['synth_seconds']:.0f} |")
    align = index.get(("mixpe", "fp_align"))
    mixpe_pe = index.get(("mixpe", "pe"))
    if align:
        per_row = align[ratio_key] / config.rows
        lines += [""] + report_text(
            "aligner", per_row=fmt(per_row), unit=unit, cols=config.cols,
            generic=f" ({fmt(align['area_ge'] / config.rows)} GE)" if ratio_key != "area_ge" else "",
            versus_pe=f"{per_row / mixpe_pe[ratio_key]:.2f}x a PE, " if mixpe_pe else "")
    return lines


def _array_section(config, arrays, index, keys, ratio_key, unit) -> list[str]:
    lines = ["", f"## Whole array ({config.rows} x {config.cols}) including the dequant units", ""]
    lines += report_text("array_intro", weight_bits=config.weight_bits, activation=config.activation, unit=unit)
    lines += ["", "| design | R x C PEs | + needs | needs | total | per MAC/cycle | total / MixPE |",
              "|---|---:|---:|---|---:|---:|---:|"]
    for a in arrays:
        lines.append(f"| {a['design']} | {fmt(a[f'pes_{ratio_key}'])} | {fmt(a[f'edge_{ratio_key}'])} | "
                     f"{a['needs']} | {fmt(a[f'total_{ratio_key}'])} | {fmt(a[f'per_mac_{ratio_key}'], 1)} | "
                     f"{fmt(a[f'ratio_{ratio_key}'], 2)}x |")
    if "area_um2" in keys:
        lines += ["", "The same totals / MixPE in generic GE: "
                  + ", ".join(f"{a['design']} {fmt(a['ratio_area_ge'], 2)}x" for a in arrays) + "."]
    mixpe = next((a for a in arrays if a["design"] == "mixpe"), None)
    if mixpe and f"measured_array_{ratio_key}" in mixpe:
        measured, separate = mixpe[f"measured_array_{ratio_key}"], mixpe[f"pes_{ratio_key}"]
        lines += [""] + report_text("measured_array", measured=fmt(measured), unit=unit, separate=fmt(separate),
                                    difference=100 * (measured / separate - 1),
                                    measured_total=fmt(mixpe[f"measured_total_{ratio_key}"]))
    if mixpe:
        total = mixpe[f"total_{ratio_key}"]
        shares = [("R x C PEs", mixpe[f"pes_{ratio_key}"])] + [
            ({"gdu": f"{config.lanes} GDU lanes", "fp_align": "aligner (R rows)"}.get(block, block), value)
            for block, value in mixpe[f"parts_{ratio_key}"].items()]
        lines += ["", "Where the MixPE total goes: " + ", ".join(f"{name} {100 * value / total:.1f} %"
                                                              for name, value in shares) + "."]
        if any(a["design"] == "int8_mult" for a in arrays):
            lines += ["", f"`int8_mult`: {FAIR_BASELINE}."]
        if index.get(("mixpe", "gdu")):
            lines += [""] + report_text("gdu", bank_bits=mixpe["storage_bits_per_lane"], lanes=config.lanes,
                                        total_bits=mixpe["storage_bits"],
                                        per_output=fmt(mixpe["storage_bits_per_output"], 1))
    if mixpe and f"storage_{ratio_key}" in mixpe:
        lines += _storage_section(config, arrays, index, ratio_key, unit)
    return lines


def _storage_section(config, arrays, index, ratio_key, unit) -> list[str]:
    """The accumulator storage (the ``acc_memory`` block) and the array ratios without it."""
    memory = index[("mixpe", "acc_memory")]
    mixpe = next(a for a in arrays if a["design"] == "mixpe")
    gdu = index[("mixpe", "gdu")]
    lines = ["", "### Accumulator storage", ""]
    lines += report_text("storage", per_lane=fmt(memory[ratio_key]), unit=unit, lanes=config.lanes,
                         share_of_gdu=100 * memory[ratio_key] / gdu[ratio_key],
                         storage=fmt(mixpe[f"storage_{ratio_key}"]),
                         share_of_array=100 * mixpe[f"storage_{ratio_key}"] / mixpe[f"total_{ratio_key}"],
                         flops=fmt(memory["flops"]), bits=fmt(mixpe["storage_bits_per_lane"]))
    lines += ["", "| design | total | storage | total without storage | total / MixPE | without storage / MixPE |",
              "|---|---:|---:|---:|---:|---:|"]
    for a in arrays:
        lines.append(f"| {a['design']} | {fmt(a[f'total_{ratio_key}'])} | {fmt(a[f'storage_{ratio_key}'])} | "
                     f"{fmt(a[f'total_excl_storage_{ratio_key}'])} | {fmt(a[f'ratio_{ratio_key}'], 2)}x | "
                     f"{fmt(a[f'ratio_excl_storage_{ratio_key}'], 2)}x |")
    return lines


def _guard_section(config, guard_rows, ratio_key, unit) -> list[str]:
    reference = next((row for row in guard_rows if row["guard_bits"] == config.guard), None)
    lines = ["", f"## PE area against guard bits ({config.activation}, MixPE)", ""]
    lines += report_text("guard_intro", unit=unit)
    lines += ["", "| G | PE operand bits | PE | aligner per row | R x C PEs + aligner |"
              + (f" vs G = {config.guard} |" if reference else ""),
              "|---:|---:|---:|---:|---:|" + ("---:|" if reference else "")]
    for row in guard_rows:
        line = (f"| {row['guard_bits']} | {row['pe_act_bits']} | {fmt(row[f'pe_{ratio_key}'])} | "
                f"{fmt(row[f'fp_align_per_row_{ratio_key}'])} | {fmt(row[f'pes_plus_align_{ratio_key}'])} |")
        if reference:
            line += f" {row[f'pes_plus_align_{ratio_key}'] / reference[f'pes_plus_align_{ratio_key}']:.2f}x |"
        lines.append(line)
    return lines


def _paper_section(config, arrays, index, ratio_key) -> list[str]:
    claims, claims_note = _paper_claims(config)
    mixpe_pe = index.get(("mixpe", "pe"))
    lines = [""] + report_text("paper") + [""]
    if mixpe_pe:
        lines += ["| comparison | measured area ratio, PE | measured, array incl. dequant | paper (area x power product) |",
                  "|---|---:|---:|---|"]
        array_index = {a["design"]: a for a in arrays}
        for design, what, paper in claims:
            record = index.get((design, "pe"))
            if record is None:
                continue
            pe_ratio = record[ratio_key] / mixpe_pe[ratio_key]
            arr = array_index.get(design)
            array_ratio = arr.get(f"ratio_{ratio_key}") if arr else None
            lines.append(f"| {what} | {pe_ratio:.2f}x | {fmt(array_ratio, 2)}{'x' if array_ratio else ''} | {paper} |")
        lines += ["", claims_note]
    values = {"activation": config.activation, "guard": config.guard, "weight_bits": config.weight_bits}
    lines += [""] + report_text("differences")
    lines += report_text("differences_fp" if config.fp_activation else "differences_int", **values)
    shift_add = index.get(("int4x8_mult", "pe"))
    if shift_add and mixpe_pe:
        lines += report_text("shift_add", delta=100 * (shift_add[ratio_key] / mixpe_pe[ratio_key] - 1), **values)
    return lines + [""]


def write_reports(config: MixPEConfig, records: list[dict], liberty: Liberty | None,
                  out_root: str | Path = "build/synth", guard_rows: list[dict] | None = None,
                  code_rows: list[dict] | None = None) -> dict[str, Path]:
    """Write ``report.json`` (the list of records, then one ``array_total`` record per design of
    :func:`~gen.synth.area.array_summary`), ``summary.json`` (array-level sums and ratios,
    the :func:`~gen.synth.flow.guard_sweep` rows, with ``code_rows`` the
    :func:`~gen.synth.code_formats.code_format_sweep` rows as ``code_formats``), ``report.md`` and
    ``area.png`` into ``out_root``;
    returns their paths."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    if not records:
        raise SynthError("nothing was synthesized; no report written")
    for record in records:
        if record["cells"] <= 0 or record["area_ge"] <= 0 or ("area_um2" in record and record["area_um2"] <= 0):
            raise SynthError(f"{record['design']}/{record['block']}: empty or zero-area result; no report written")
    arrays = array_summary(config, records)
    paths = {"json": out_root / "report.json", "summary": out_root / "summary.json", "md": out_root / "report.md",
             "png": out_root / "area.png"}
    public = [{k: v for k, v in r.items() if k != "cache_key"} for r in records] + array_total_records(config, arrays)
    paths["json"].write_text(json.dumps(public, indent=1, sort_keys=True) + "\n")
    paths["summary"].write_text(json.dumps({"config": config.to_dict(), "arrays": arrays,
                                            "guard_sweep": guard_rows or [],
                                            **({"code_formats": code_rows} if code_rows else {})},
                                           indent=1, sort_keys=True) + "\n")
    plotted = plot_area(config, records, arrays, paths["png"])
    if not plotted:
        paths.pop("png")
    paths["md"].write_text(_markdown(config, records, arrays, liberty, paths["png"].name if plotted else None,
                                     guard_rows, code_rows))
    return paths
