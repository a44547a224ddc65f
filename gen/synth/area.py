"""Array-level area: R x C PEs plus what each design needs at the array edge to run the grouped GEMM."""

from __future__ import annotations

from gen.synth.designs import DESIGNS
from hw.config import MixPEConfig

__all__ = ["array_needs", "array_summary", "metric_keys"]


def array_needs(design: str, config: MixPEConfig) -> tuple[list[tuple[str, str, str]], str]:
    """What ``design`` needs around its R x C PEs to run the grouped GEMM of ``config``:
    ([(design, block, count: "1" once, "C" per column or "L" per GDU lane)], note)."""
    align = [("mixpe", "fp_align", "1")] if config.fp_activation else []
    dequant = align + [("mixpe", "act_sum", "1"), ("mixpe", "gdu", "L")]
    lanes = f"{config.lanes} GDU lanes"
    edge = f"fp_align + act_sum + {lanes}" if config.fp_activation else f"act_sum + {lanes}"
    return {
        "mixpe": (dequant, edge),
        "int4x8_mult": (dequant, f"same dataflow as MixPE: {edge}"),
        "int8_mult": (dequant, f"integer group sums need the same dequant: {edge}"),
        "dequant_fp": (([], "nothing (scale applied per weight in the PE; FP activations have no token scale)")
                       if config.fp_activation else
                       ([("dequant_fp", "edge", "C")], "C FP32 multipliers for the token scale")),
        "fp16_fp16": ([], "nothing (weights already FP16; their dequantization happens before the array)"),
    }[design]


def metric_keys(records) -> list[str]:
    """The area keys every record has: ``area_ge``, and ``area_um2`` when all were library-mapped."""
    keys = ["area_ge"]
    if records and all("area_um2" in r for r in records):
        keys.append("area_um2")
    return keys


def array_summary(config: MixPEConfig, records: list[dict]) -> list[dict]:
    """Array-level estimates: R x C PEs + what each design needs (see :func:`array_needs`)."""
    index = {(r["design"], r["block"]): r for r in records}
    keys = metric_keys(records)
    counts = {"1": 1, "C": config.cols, "L": config.lanes}
    rows = []
    for design in DESIGNS:
        pe = index.get((design, "pe"))
        needs, note = array_needs(design, config)
        if pe is None or any((d, b) not in index for d, b, _ in needs):
            continue
        entry = {"design": design, "needs": note, "pes": config.rows * config.cols}
        for key in keys:
            pe_total = pe[key] * config.rows * config.cols
            parts = {b: index[(d, b)][key] * counts[n] for d, b, n in needs}
            entry[f"pes_{key}"] = pe_total
            entry[f"edge_{key}"] = sum(parts.values())
            entry[f"parts_{key}"] = parts
            entry[f"total_{key}"] = pe_total + entry[f"edge_{key}"]
            entry[f"per_mac_{key}"] = entry[f"total_{key}"] / (config.rows * config.cols)
        rows.append(entry)
    mixpe = next((row for row in rows if row["design"] == "mixpe"), None)
    for row in rows:
        for key in keys:
            row[f"ratio_{key}"] = row[f"total_{key}"] / mixpe[f"total_{key}"] if mixpe else None
    measured = index.get(("mixpe", "array"))
    if measured and mixpe:
        for key in keys:
            mixpe[f"measured_array_{key}"] = measured[key]
            mixpe[f"measured_total_{key}"] = measured[key] + mixpe[f"edge_{key}"]
    return rows
