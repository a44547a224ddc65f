"""Array-level area from block records (gen/synth/area.py, storage.py): what each design needs with GDU
lanes, the accumulator storage and the ``array_total`` records. Pure Python on made-up records: no Yosys."""

import json

import pytest

from gen.synth import array_summary, write_reports
from gen.synth.area import array_needs, array_total_records
from gen.synth.storage import storage_bits
from hw.config import MixPEConfig, from_preset

#: 16 x 16, g = 128: two lanes of eight columns.
CONFIG = from_preset("w4a8-g128-16x16")


def _record(design, block, area, cells=10, flops=0):
    return {"design": design, "block": block, "area_um2": float(area), "area_ge": area / 24, "cells": cells,
            "cells_liberty": cells, "flops": flops, "sequential_share": 0.5, "depth": 3, "yosys": "Yosys",
            "activation": "int8", "weight": "u4", "description": block, "synth_seconds": 1.0,
            "area_ge_liberty": area / 24, "sequential_share_liberty": 0.5}


def _records(memory=True):
    records = [_record("mixpe", "pe", 100), _record("int4x8_mult", "pe", 105), _record("int8_mult", "pe", 200),
               _record("fp16_fp16", "pe", 600), _record("dequant_fp", "pe", 650),
               _record("mixpe", "act_sum", 1000), _record("mixpe", "gdu", 20_000),
               _record("dequant_fp", "edge", 3000)]
    if memory:
        records.append(_record("mixpe", "acc_memory", 12_000, flops=storage_bits(CONFIG)["per_lane"]))
    return records


def test_storage_bits_of_the_lanes():
    assert (CONFIG.lanes, CONFIG.columns_per_lane) == (2, 8)
    assert storage_bits(CONFIG) == {"per_lane": 2 * 16 * 8 * 32, "total": 2 * 2 * 16 * 8 * 32, "per_output": 64.0}
    # C not a multiple of the lanes: the last lane's unused column words still count.
    odd = MixPEConfig(rows=4, cols=5, group_size=8, gdu_lanes=2)
    assert odd.columns_per_lane == 3 and storage_bits(odd)["total"] == 2 * 2 * 4 * 3 * 32
    assert storage_bits(odd)["per_output"] == pytest.approx(2 * 2 * 4 * 3 * 32 / 20)


def test_every_design_has_its_lanes():
    for design in ("mixpe", "int8_mult", "int4x8_mult"):
        needs, note = array_needs(design, CONFIG)
        assert ("mixpe", "gdu", "L") in needs and "2 GDU lanes" in note
    assert array_needs("dequant_fp", CONFIG)[0] == [("dequant_fp", "edge", "L")]
    assert array_needs("fp16_fp16", CONFIG)[0] == []
    fp = CONFIG.replace(activation="fp16")
    assert array_needs("dequant_fp", fp)[0] == [] and ("mixpe", "fp_align", "1") in array_needs("mixpe", fp)[0]


def test_array_totals_storage_and_ratios():
    arrays = {a["design"]: a for a in array_summary(CONFIG, _records())}
    mixpe, int8, fp16, dequant = arrays["mixpe"], arrays["int8_mult"], arrays["fp16_fp16"], arrays["dequant_fp"]
    assert mixpe["total_area_um2"] == 256 * 100 + 1000 + 2 * 20_000
    assert mixpe["storage_area_um2"] == int8["storage_area_um2"] == 2 * 12_000
    assert mixpe["total_excl_storage_area_um2"] == 256 * 100 + 1000 + 2 * 8_000
    assert int8["ratio_excl_storage_area_um2"] == pytest.approx((256 * 200 + 17_000) / (256 * 100 + 17_000))
    assert dequant["total_area_um2"] == 256 * 650 + 2 * 3000 and dequant["storage_area_um2"] == 0
    assert fp16["storage_bits"] == 0 and fp16["total_excl_storage_area_um2"] == 256 * 600
    assert fp16["ratio_excl_storage_area_um2"] == pytest.approx(256 * 600 / (256 * 100 + 17_000))
    assert mixpe["storage_bits"] == 16_384 and mixpe["storage_bits_per_output"] == 64
    assert mixpe["cells"] == 256 * 10 + 10 + 2 * 10
    # Without the acc_memory block: totals but no storage split.
    plain = {a["design"]: a for a in array_summary(CONFIG, _records(memory=False))}
    assert plain["mixpe"]["total_area_um2"] == mixpe["total_area_um2"] and "storage_area_um2" not in plain["mixpe"]


def test_array_total_records_in_report_json(tmp_path):
    records = _records()
    totals = {r["design"]: r for r in array_total_records(CONFIG, array_summary(CONFIG, records))}
    assert set(totals) == {"mixpe", "int4x8_mult", "int8_mult", "fp16_fp16", "dequant_fp"}
    mixpe, int8 = totals["mixpe"], totals["int8_mult"]
    assert mixpe["block"] == "array_total" and mixpe["area_um2"] == 256 * 100 + 1000 + 40_000
    assert mixpe["area_ge"] == pytest.approx(mixpe["area_um2"] / 24)
    assert mixpe["parts"] == {"pe": "256 x pe", "act_sum": "1 x mixpe/act_sum", "gdu": "2 x mixpe/gdu"}
    assert int8["ratio_to_mixpe_area_um2"] == pytest.approx(int8["area_um2"] / mixpe["area_um2"])
    assert "fair" in int8["baseline_note"] and "baseline_note" not in mixpe
    assert mixpe["excl_storage_area_um2"] == mixpe["area_um2"] - 24_000 and mixpe["storage_bits"] == 16_384
    paths = write_reports(CONFIG, records, None, tmp_path)
    written = json.loads(paths["json"].read_text())
    assert [r["design"] for r in written if r["block"] == "array_total"] == list(totals)
    text = paths["md"].read_text()
    assert "Accumulator storage" in text and "without storage / MixPE" in text and "fair integer baseline" in text
