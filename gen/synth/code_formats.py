"""PE area per weight-code format (``make synth``'s code-format table): the MixPE PE of the
configuration with each code of :data:`~gen.synth.designs.CODE_FORMAT_PES` (INT4, INT5, INT6,
FP4 E2M1, power of two), everything else the same, against the INT4 PE."""

from __future__ import annotations

from pathlib import Path

from gen.synth.area import metric_keys
from gen.synth.designs import CODE_FORMAT_PES, code_format_config
from gen.synth.liberty import Liberty
from gen.synth.timing import block_timing
from gen.synth.yosys import synthesize
from hw.config import MixPEConfig
from sw.formatting import format_number as fmt

__all__ = ["code_format_sweep", "code_format_section"]

#: The row every ratio is against.
REFERENCE = "INT4"


def code_format_sweep(config: MixPEConfig, *, liberty: Liberty | None = None, out_root: str | Path = "build/synth",
                      use_cache: bool = True, log=print) -> list[dict]:
    """One row per code format: ``format``, ``weight_format``, ``weight_bits``, ``code_value_max``,
    ``product_bits``, ``psum_bits``, ``config_hash``, ``cells``, ``depth``, per metric key
    ``pe_<key>`` and ``ratio_<key>`` (PE area over the INT4 PE's), and with timing ``critical_path_ns``."""
    records = []
    for label, fields in CODE_FORMAT_PES:
        variant = code_format_config(config, fields)
        if log:
            log(f"synth mixpe       pe       {label:<11} {variant.name} ...", end=" ", flush=True)
        record = synthesize(variant, "mixpe", "pe", liberty, out_root=out_root, use_cache=use_cache)
        if liberty is not None and liberty.has_timing:
            timing = block_timing(variant, "mixpe", "pe", liberty, synth_root=out_root, use_cache=use_cache)
            record = {**record, "critical_path_ns": timing["critical_path_ns"]}
        if log:
            log(f"{record['cells']} cells, {record['area_ge']:.0f} GE [{'cached' if record['cached'] else 'synthesized'}]")
        records.append((label, variant, record))
    keys = metric_keys([record for _, _, record in records])
    reference = next(record for label, _, record in records if label == REFERENCE)
    rows = []
    for label, variant, record in records:
        row = {"format": label, "weight_format": variant.weight_format, "weight_bits": variant.weight_bits,
               "code_value_max": variant.code_value_max, "product_bits": variant.product_bits,
               "psum_bits": variant.psum_bits, "config_hash": variant.hash, "cells": record["cells"],
               "depth": record["depth"]}
        for key in keys:
            row[f"pe_{key}"] = record[key]
            row[f"ratio_{key}"] = record[key] / reference[key]
        if "critical_path_ns" in record:
            row["critical_path_ns"] = record["critical_path_ns"]
        rows.append(row)
    return rows


def code_format_section(config: MixPEConfig, rows: list[dict], ratio_key: str, unit: str) -> list[str]:
    """The report's markdown section of :func:`code_format_sweep`'s rows."""
    from gen.synth.report import report_text     # report imports this module
    timed = all("critical_path_ns" in row for row in rows)
    lines = ["", f"## PE area per weight-code format ({config.activation} activations, g = {config.group_size})", ""]
    lines += report_text("code_formats_intro") + [""]
    lines += [f"| code | largest value | product bits | psum bits | cells | {unit} | vs {REFERENCE} |"
              + (" path ns |" if timed else ""),
              "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if timed else "")]
    for row in rows:
        lines.append(f"| {row['format']} | {row['code_value_max']} | {row['product_bits']} | {row['psum_bits']} | "
                     f"{fmt(row['cells'])} | {fmt(row[f'pe_{ratio_key}'])} | {row[f'ratio_{ratio_key}']:.2f}x |"
                     + (f" {row['critical_path_ns']:.2f} |" if timed else ""))
    return lines
