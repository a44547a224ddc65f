"""``mixpe compare`` on made-up block records (no synthesis): the area model against
gen.synth.area, the workloads' GEMMs, the iso-area search, the decode speedup at the weight-byte
ratio, the report's fields and the CLI's input errors."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gen.compare.designs import BASELINES, DESIGN_SPECS, characterize
from gen.compare.model import CompareError, Shape, candidates, evaluate, search
from gen.compare.report import weight_byte_ratio, write_reports
from gen.compare.run import CompareSettings, run_compare
from gen.compare.workloads import MODELS, workload_gemms
from gen.synth.area import array_summary
from golden.memory import DramInterface, MemorySystem
from hw.config import from_preset

#: (design, block) -> (area um2, fmax MHz), shaped like the OSU018 numbers.
BLOCKS = {("mixpe", "pe"): (16577, 256), ("mixpe", "act_sum"): (130300, 386), ("mixpe", "gdu"): (1200000, 262),
          ("mixpe", "acc_memory"): (700000, 1000), ("int8_mult", "pe"): (34584, 218),
          ("int4x8_mult", "pe"): (17404, 244), ("dequant_fp", "pe"): (101780, 49), ("dequant_fp", "edge"): (139228, 103),
          ("fp16_fp16", "pe"): (98289, 56)}
INT8_DESIGNS = [name for name, spec in DESIGN_SPECS.items() if spec.activation == "int8"]


def synth_records():
    return [{"design": d, "block": b, "area_um2": area, "area_ge": area / 10, "fmax_mhz": fmax}
            for (d, b), (area, fmax) in BLOCKS.items()]


@pytest.fixture
def power_report(tmp_path):
    records = []
    for (design, block), (area, fmax) in BLOCKS.items():
        if block in ("acc_memory",):
            continue
        instances = 16 if block in ("gdu", "edge") else 1
        for d in ([design] if design != "mixpe" or block == "pe" else ["mixpe", "int8_mult", "int4x8_mult"]):
            records.append({"design": d, "block": block, "workload": "smollm2", "area_um2": area * instances,
                            "clock_mhz": fmax, "power_mw": area * instances / 2000, "sequential_mw": area * instances / 6000,
                            "leakage_mw": 1e-6 * area, "instances": instances})
    path = tmp_path / "report.json"
    path.write_text(json.dumps(records))
    return path


@pytest.fixture
def costs(power_report):
    return {name: characterize(DESIGN_SPECS[name], synth_records(), power_report) for name in INT8_DESIGNS}


def test_area_model_at_the_reference_shape_is_array_summary(costs):
    reference = from_preset("w4a8-g128-16x16")
    totals = {row["design"]: row["total_area_um2"]
              for row in array_summary(reference, synth_records())}
    for name in INT8_DESIGNS:
        cost = costs[name]
        lanes = reference.lanes if cost.spec.grouped or cost.lane_datapath_um2 else 1
        assert cost.area_um2(16, 16, lanes) == pytest.approx(totals[cost.spec.synth_design]), name


def test_workload_gemms():
    llama = workload_gemms(MODELS["llama-2-7b"], "prefill-256")
    assert [(g.name, g.m, g.k, g.n) for g in llama] == [("qkv", 256, 4096, 12288), ("out", 256, 4096, 4096),
                                                         ("ffn1", 256, 4096, 22016), ("ffn2", 256, 11008, 4096)]
    mixtral = workload_gemms(MODELS["mixtral-8x7b"], "decode-1")
    assert sum(g.count for g in mixtral if g.name == "expert-ffn1") == 2 and all(g.m == 1 for g in mixtral)
    assert sum(g.m * g.count for g in workload_gemms(MODELS["mixtral-8x7b"], "decode-8")
               if g.name == "expert-ffn2") == 16
    cmoe = workload_gemms(MODELS["smollm2-135m-cmoe"], "decode-64")
    assert {g.name for g in cmoe} >= {"shared-ffn1", "expert-ffn2"}
    assert sum(g.m * g.count for g in cmoe if g.name == "expert-ffn1") == 64 * 6


def test_search_fits_the_budget_and_beats_every_candidate(costs):
    gemms = workload_gemms(MODELS["smollm2-135m"], "prefill-256")
    budget = costs["fp16"].area_um2(32, 32, 1)
    best = search(costs["mixpe-w4a8"], MemorySystem(), gemms, budget)
    assert best.area_um2 <= budget
    for shape in list(candidates(costs["mixpe-w4a8"], budget))[:6]:
        assert best.seconds <= evaluate(costs["mixpe-w4a8"], MemorySystem(), shape, gemms).seconds * 1.0101
    with pytest.raises(CompareError, match="area_mm2"):
        search(costs["fp16"], MemorySystem(), gemms, 1e5)


def test_weight_bound_decode_speedup_is_the_weight_byte_ratio(costs):
    """A narrow DRAM makes decode weight bound: time follows the weight bits in memory."""
    memory = MemorySystem(dram=DramInterface(width_bits=64, clock_mhz=100.0))
    gemms = workload_gemms(MODELS["llama-2-7b"], "decode-1")
    budget = costs["fp16"].area_um2(32, 32, 1)
    mixpe = search(costs["mixpe-w4a8"], memory, gemms, budget)
    int8 = search(costs["int8-lanes"], memory, gemms, budget)
    assert mixpe.compute_cycles / mixpe.cycles < 0.2
    assert int8.seconds / mixpe.seconds == pytest.approx(weight_byte_ratio("mixpe-w4a8", "int8-lanes"), rel=0.02)


def test_report_fields(costs, tmp_path):
    settings = CompareSettings(designs=tuple(INT8_DESIGNS), workloads=("smollm2-135m",), phases=("prefill-256", "decode-8"))
    records, meta = run_compare(costs, settings, log=None)
    meta.update(command="test", budget_source="32 x 32 FP16 array", assumptions={"x": "y"})
    paths = write_reports(records, meta, tmp_path)
    assert len(records) == 2 * len(INT8_DESIGNS)
    fields = {"workload", "phase", "design", "area_mm2", "rows", "cols", "gdu_lanes", "row_groups", "clock_mhz", "cycles",
              "seconds", "compute_bound_fraction", "energy_j", "speedup_vs", "energy_ratio_vs"}
    for record in json.loads(paths["json"].read_text()):
        assert fields <= set(record)
        assert set(record["energy_j"]) == {"core", "buffers", "dram", "static", "total"}
        assert set(record["speedup_vs"]) == set(BASELINES) & set(INT8_DESIGNS)
        assert record["area_mm2"] <= meta["area_budget_mm2"] + 1e-9
    text = paths["md"].read_text()
    assert "## Targets" in text and "authors' simulator" in text


def test_cli_rejects_bad_budget(capsys):
    from gen.cli import main
    assert main(["compare", "--area-mm2", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "area_mm2=-1" in err[0]
    assert main(["compare", "--storage-scale", "0"]) == 2
    assert "storage_scale=0" in capsys.readouterr().err


def test_shape_fields():
    assert dataclasses.asdict(Shape(8, 8, 2, 1)) == {"rows": 8, "cols": 8, "lanes": 2, "row_groups": 1}


def test_storage_scale_shrinks_the_accumulator_memory(power_report, costs):
    dense = characterize(DESIGN_SPECS["mixpe-w4a8"], synth_records(), power_report, storage_scale=0.1)
    flops = costs["mixpe-w4a8"]
    storage = 2 * 16 * 8 * 2 * flops.storage_um2_per_word  # 2 lanes of 2 x 16 rows x 8 columns
    assert flops.area_um2(16, 16, 2) - dense.area_um2(16, 16, 2) == pytest.approx(0.9 * storage)
    assert dense.per_output_pj < flops.per_output_pj
    assert costs["fp16"].area_um2(16, 16, 1) == characterize(DESIGN_SPECS["fp16"], synth_records(), power_report,
                                                             storage_scale=0.1).area_um2(16, 16, 1)
