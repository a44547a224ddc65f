"""Array-level area: R x C PEs plus what each design needs at the array edge to run the grouped GEMM,
the GDU lanes' accumulator storage separately, and the ``array_total`` records of ``report.json``."""

from __future__ import annotations

from gen.synth.designs import DESIGNS
from gen.synth.storage import storage_bits
from hw.config import MixPEConfig

__all__ = ["array_needs", "array_summary", "array_total_records", "metric_keys", "instance_count"]

#: Why the INT8 array with MixPE's lanes is the fair integer baseline (in the int8_mult array_total record).
FAIR_BASELINE = ("INT8 x INT8 PEs with the same act_sum, GDU lanes and accumulator storage as MixPE: integer "
                 "group sums need the same group dequantization, so this is the fair integer baseline")


def array_needs(design: str, config: MixPEConfig) -> tuple[list[tuple[str, str, str]], str]:
    """What ``design`` needs around its R x C PEs to run the grouped GEMM of ``config``:
    ([(design, block, count: "1" once, "C" per column or "L" per GDU lane)], note).

    The FP32 PEs (``dequant_fp``, ``fp16_fp16``) accumulate the whole K in their PE, whose
    accumulator and drain register hold an output element's two words (the tile in flight and the
    one draining): no edge accumulator. With INT8 activations ``dequant_fp`` multiplies each output
    by its token scale at the edge: R x C multiplies per tile of at least g cycles, the rate MixPE's
    lanes are sized for, so it gets one FP32 multiplier per lane, as many as MixPE has lanes."""
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
                       ([("dequant_fp", "edge", "L")],
                        f"{config.lanes} FP32 token-scale multipliers, one per lane as MixPE's GDUs")),
        "fp16_fp16": ([], "nothing (weights already FP16; their dequantization happens before the array)"),
    }[design]


def instance_count(config: MixPEConfig, count: str) -> int:
    """The number of units an :func:`array_needs` count stands for: "1", "C" (columns) or "L" (lanes)."""
    return {"1": 1, "C": config.cols, "L": config.lanes}[count]


def metric_keys(records) -> list[str]:
    """The area keys every record has: ``area_ge``, and ``area_um2`` when all were library-mapped."""
    keys = ["area_ge"]
    if records and all("area_um2" in r for r in records):
        keys.append("area_um2")
    return keys


def array_summary(config: MixPEConfig, records: list[dict]) -> list[dict]:
    """Array-level estimates: R x C PEs + what each design needs (see :func:`array_needs`).

    Per metric key: ``pes_``, ``edge_``, ``parts_``, ``total_``, ``per_mac_`` and ``ratio_`` (total /
    MixPE's); with a synthesized ``acc_memory`` block also ``storage_`` (the lanes' accumulator
    memories inside the GDUs, 0 for designs without GDUs), ``total_excl_storage_`` and
    ``ratio_excl_storage_``. ``storage_bits`` (:func:`~gen.synth.storage.storage_bits`) for designs
    with GDU lanes, 0 for the others, whose two words per output are in the PE."""
    index = {(r["design"], r["block"]): r for r in records}
    keys = metric_keys(records)
    macs = config.rows * config.cols
    memory = index.get(("mixpe", "acc_memory"))
    bits = storage_bits(config)
    rows = []
    for design in DESIGNS:
        pe = index.get((design, "pe"))
        needs, note = array_needs(design, config)
        if pe is None or any((d, b) not in index for d, b, _ in needs):
            continue
        lanes = sum(instance_count(config, n) for _, b, n in needs if b == "gdu")
        entry = {"design": design, "needs": note, "pes": macs, "gdu_lanes": lanes,
                 "storage_bits": bits["total"] if lanes else 0,
                 "storage_bits_per_lane": bits["per_lane"] if lanes else 0,
                 "storage_bits_per_output": bits["per_output"] if lanes else 0}
        for cells in ("cells", "cells_liberty"):
            if all(cells in r for r in [pe, *(index[(d, b)] for d, b, _ in needs)]):
                entry[cells] = pe[cells] * macs + sum(index[(d, b)][cells] * instance_count(config, n)
                                                      for d, b, n in needs)
        for key in keys:
            pe_total = pe[key] * macs
            parts = {b: index[(d, b)][key] * instance_count(config, n) for d, b, n in needs}
            entry[f"pes_{key}"] = pe_total
            entry[f"edge_{key}"] = sum(parts.values())
            entry[f"parts_{key}"] = parts
            entry[f"total_{key}"] = pe_total + entry[f"edge_{key}"]
            entry[f"per_mac_{key}"] = entry[f"total_{key}"] / macs
            if memory:
                entry[f"storage_{key}"] = memory[key] * lanes
                entry[f"total_excl_storage_{key}"] = entry[f"total_{key}"] - entry[f"storage_{key}"]
        rows.append(entry)
    mixpe = next((row for row in rows if row["design"] == "mixpe"), None)
    for row in rows:
        for key in keys:
            row[f"ratio_{key}"] = row[f"total_{key}"] / mixpe[f"total_{key}"] if mixpe else None
            if memory:
                row[f"ratio_excl_storage_{key}"] = (row[f"total_excl_storage_{key}"]
                                                    / mixpe[f"total_excl_storage_{key}"] if mixpe else None)
    measured = index.get(("mixpe", "array"))
    if measured and mixpe:
        for key in keys:
            mixpe[f"measured_array_{key}"] = measured[key]
            mixpe[f"measured_total_{key}"] = measured[key] + mixpe[f"edge_{key}"]
    return rows


def array_total_records(config: MixPEConfig, arrays: list[dict]) -> list[dict]:
    """One ``report.json`` record per design with ``block: "array_total"``: the R x C PEs and every
    edge unit the design needs, summed from the block records (see :func:`array_summary`), with
    ``area_um2``/``area_ge``, ``cells``, the accumulator storage and the ratios to MixPE's total."""
    records = []
    for entry in arrays:
        record = {"design": entry["design"], "block": "array_total", "config": config.name,
                  "config_hash": config.hash, "rows": config.rows, "cols": config.cols,
                  "gdu_lanes": entry["gdu_lanes"], "columns_per_lane": config.columns_per_lane,
                  "macs_per_cycle": entry["pes"], **{k: entry[k] for k in ("cells", "cells_liberty") if k in entry},
                  "description": f"{config.rows} x {config.cols} PEs + {entry['needs']}",
                  "parts": {"pe": f"{entry['pes']} x pe", **{b: n for b, n in _part_counts(config, entry)}},
                  **{field: entry[field] for field in ("storage_bits", "storage_bits_per_lane",
                                                       "storage_bits_per_output")}}
        if entry["design"] == "int8_mult":
            record["baseline_note"] = FAIR_BASELINE
        for key in ("area_ge", "area_um2"):
            if f"total_{key}" not in entry:
                continue
            record[key] = entry[f"total_{key}"]
            record[f"pes_{key}"] = entry[f"pes_{key}"]
            record[f"edge_{key}"] = entry[f"edge_{key}"]
            record[f"ratio_to_mixpe_{key}"] = entry[f"ratio_{key}"]
            if f"storage_{key}" in entry:
                record[f"storage_{key}"] = entry[f"storage_{key}"]
                record[f"excl_storage_{key}"] = entry[f"total_excl_storage_{key}"]
                record[f"excl_storage_ratio_to_mixpe_{key}"] = entry[f"ratio_excl_storage_{key}"]
        records.append(record)
    return records


def _part_counts(config: MixPEConfig, entry: dict) -> list[tuple[str, str]]:
    needs, _ = array_needs(entry["design"], config)
    return [(block, f"{instance_count(config, count)} x {design}/{block}") for design, block, count in needs]
