"""``mixpe verify-model``: tiles sampled and grouped into tasks, the vectorized beats against ``pack_gemm``,
the operand store, a task's beat and cycle checks, the report naming the failing layer, projection and
tile, resumed runs' segments; one small RTL run (slow)."""

import dataclasses
import math
import types

import numpy as np
import pytest
import torch

from gen.cli import main
from gen.scale.tasks import TaskRun
from gen.scale.verify_model import GemmTiles, _batches, _Run, _tasks, verify_tiles
from gen.scale.tile_beats import row_block_result_beats, row_block_tiles
from gen.scale.verify_operands import OperandStoreError, operands_digest, read_operands, write_store
from gen.scale.verify_report import build_report, segments
from golden.cycles import predict_cycles
from golden.mpgemm import bitexact_mpgemm
from golden.operands import quantize_activations_int8, random_operands
from hw.config import MixPEConfig
from sw.packer import pack_gemm, pad_operands, result_beats
from sw.smollm import array_config

CONFIG = array_config("int8", 4, 4)


def fake_gemms() -> list:
    """(stage, x, weight) as the recorder keeps them: 10 tokens x 12 channels, then 10 x 8."""
    weight = lambda name, n, k: types.SimpleNamespace(name=name, shape=(n, k))
    return [("0.qkv", torch.zeros(10, 64), weight("blk.0.attn_q", 12, 64)),
            ("0.o", torch.zeros(10, 32), weight("blk.0.attn_output", 8, 32))]


def test_every_tile_or_a_sample_grouped_by_row_block():
    every = _tasks(CONFIG, fake_gemms(), None, seed=1, per_task=2)
    assert sum(len(task.cols) for task in every) == 3 * 3 + 3 * 2        # R = C = 4: row blocks 0, 4, 8
    assert every[0].key == "blk.0.attn_q@0:0-4" and every[1].cols == (8,)
    sampled = _tasks(CONFIG, fake_gemms(), 5, seed=7, per_task=96)
    assert sum(task.tiles for task in sampled) == 5
    assert sampled == _tasks(CONFIG, fake_gemms(), 5, seed=7, per_task=96)   # seeded
    batches = _tasks(CONFIG, fake_gemms(), 15, seed=7, per_task=96)           # every tile, sampled: <= 8 per task
    assert len(batches) == 2 and all(task.tiles <= 8 for task in batches)
    tiles = [(p.gemm, p.row0, col0) for task in batches for p in task.pieces for col0 in p.cols]
    assert len(set(tiles)) == 15                                              # each tile once
    costs = [sum(p.k * p.tiles for p in task.pieces) for task in batches]     # 9 tiles of K = 64, 6 of K = 32
    assert costs == [384, 384]
    blocks = _tasks(CONFIG, fake_gemms(), None, seed=7, per_task=96, blocks=2)
    assert len(blocks) == 2 and all(len(task.cols) == math.ceil(task.n / 4) for task in blocks)


def operands():
    x, act_scale, weights = random_operands(CONFIG, 4, 8, 64, seed=3)
    return x, act_scale, weights


def test_a_wrong_beat_names_its_tile(monkeypatch):
    def bench_with_one_bad_beat(bench, config, tiles, expected, rows):
        received = list(expected)
        received[5] ^= 1                                                  # tile 1 (beats 4..7), row 1
        return received, 0, predict_cycles(config, [tile.groups for tile in tiles]).cycles

    monkeypatch.setattr("gen.scale.verify_model._run_bench", bench_with_one_bad_beat)
    spec = {"cols": [16, 20]}
    result = verify_tiles({"config": CONFIG.to_dict()["params"], "bench": "freerun"}, spec, operands())
    assert result["tiles"] == 2 and result["result_beats"] == 8 and result["mismatches"] == 1
    assert result["mismatched_cols"] == [20] and result["cycles"] == result["model_cycles"]


def test_report_names_layer_projection_and_tile():
    job = {"stage": "3.gate_up", "projection": "blk.3.ffn_up", "row0": 32, "cols": [16, 20]}
    good = {"tiles": 2, "result_beats": 8, "mismatches": 0, "mismatched_cols": [], "cycles": 90, "model_cycles": 90,
            "macs": 2048, "sim_seconds": 0.1}
    records = [{"key": "a", "job": job, "result": good, "seconds": 1.0},
               {"key": "b", "job": job, "result": {**good, "mismatches": 1, "mismatched_cols": [20]}, "seconds": 1.0},
               {"key": "c", "job": {**job, "projection": "blk.3.ffn_down"}, "error": "RuntimeError: boom"}]
    task_run = TaskRun(records=records, ran=3, reused=0, wall_seconds=2.0, workers=2)
    run = _Run(CONFIG, "smollm2-dense", [], [], {"config": {}, "bench": "freerun"}, None, 0.0)
    report = build_report(run, task_run, {"tiles": 4}, 1, 3.0)
    assert report["tiles"] == 4 and report["mismatches"] == 1 and report["workers"] == 2
    assert report["failures"] == [{"layer": "3", "projection": "blk.3.ffn_up", "row0": 32, "cols": [20],
                                   "problem": "1 mismatching result beats, 90 cycles (model 90)"}]
    assert report["errors"][0]["projection"] == "blk.3.ffn_down"


@pytest.mark.parametrize("argv, message", [
    (["verify-model", "--array", "16by16"], "array='16by16': expected RxC"),
    (["verify-model", "--tiles", "0"], "tiles=0: must be a positive integer"),
    (["verify-model", "--compare-workers", "1,x"], "compare_workers='1,x': expected worker counts like 1,2"),
    (["verify-model", "--compare-workers", "1,2", "--scheduler", "tcp://head:8786"],
     "scheduler='tcp://head:8786': --compare-workers starts its own local clusters"),
])
def test_bad_options_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.rtl
def test_tiles_on_the_freerun_rtl():
    result = verify_tiles({"config": CONFIG.to_dict()["params"], "bench": "freerun"}, {"cols": [0, 4]}, operands())
    assert result["mismatches"] == 0 and result["tiles"] == 2 and result["cycles"] == result["model_cycles"]


@pytest.mark.parametrize("config", [CONFIG, array_config("fp16", 8, 4), MixPEConfig(rows=4, cols=4),
                                    MixPEConfig(rows=8, cols=4, row_groups=2, activation="fp8_e4m3", weight_bits=8)],
                         ids=lambda config: f"{config.activation}-{config.zero_mode}-{config.rows}x{config.cols}")
def test_vectorized_beats_equal_pack_gemm(config):
    x, act_scale, weights = random_operands(config, config.rows - 1, 3 * config.cols - 1, 128, seed=4)
    padded = pad_operands(config, x, act_scale, weights)
    fast = row_block_tiles(config, *padded)
    slow = pack_gemm(config, x, act_scale, weights)
    assert [(t.col0, t.act, t.wgt, t.grp) for t in fast] == [(t.col0, t.act, t.wgt, t.grp) for t in slow]
    y = bitexact_mpgemm(config, *padded)
    assert row_block_result_beats(config, y) == result_beats(config, y, x.shape[0], weights.codes.shape[0])


def test_operand_store_gives_the_array_operands(tmp_path):
    x_float = torch.randn(8, 64)
    _, _, weights = random_operands(CONFIG, 4, 12, 64, seed=2)
    weight = types.SimpleNamespace(name="blk.0.attn_q", shape=(12, 64),
                                   quantized=types.SimpleNamespace(to_quantized_weights=lambda config: weights))
    gemms = [("0.qkv", x_float, weight)]
    store = {"path": str(tmp_path / "operands"), "digest": operands_digest({"a": 1}, gemms)}
    write_store(CONFIG, tmp_path / "operands", store["digest"], gemms, [0])
    x, act_scale, columns = read_operands(CONFIG, store, 0, 4, np.arange(4, 12))
    codes, scales = quantize_activations_int8(x_float[4:8])
    assert torch.equal(x, codes) and torch.equal(act_scale, scales)
    assert torch.equal(columns.codes, weights.codes[4:12]) and torch.equal(columns.scales, weights.scales[4:12])
    assert torch.equal(columns.offsets, weights.offsets[4:12]) and columns.zeros is None
    with pytest.raises(OperandStoreError, match="digest"):
        read_operands(CONFIG, {**store, "digest": "0" * 16}, 0, 0, np.arange(4))


def test_segments_add_up_resumed_runs():
    mark = lambda started, elapsed, client: {"started": started, "workers": 2, "warmup_seconds": 1.0,
                                             "elapsed_seconds": elapsed, "client_cpu_seconds": client}
    result = {"tiles": 96}
    records = [{"result": result, "seconds": 2.0, "cpu_seconds": 1.5, "segment": mark("2026-12-01T22:00:00Z", 3.0, 0.1)},
               {"result": result, "seconds": 2.0, "cpu_seconds": 1.5, "segment": mark("2026-12-01T22:00:00Z", 5.0, 0.2)},
               {"result": result, "seconds": 4.0, "cpu_seconds": 2.5, "segment": mark("2026-12-01T23:00:00Z", 4.0, 0.3)}]
    first, second = segments(records)
    assert first["tasks"] == 2 and first["tiles"] == 192 and first["task_wall_seconds"] == 5.0
    assert first["worker_cpu_seconds"] == 3.0 and first["client_cpu_seconds"] == 0.2
    assert second["started"] == "2026-12-01T23:00:00Z" and second["tiles"] == 96


def test_a_batch_streams_its_pieces_and_names_the_wrong_one(tmp_path, monkeypatch):
    def bench_with_one_bad_beat(bench, config, tiles, expected, rows):
        received = list(expected)
        received[9] ^= 1                                                  # tile 2: the second piece's first tile
        return received, 0, predict_cycles(config, [tile.groups for tile in tiles]).cycles

    monkeypatch.setattr("gen.scale.verify_model._run_bench", bench_with_one_bad_beat)
    _, _, weights = random_operands(CONFIG, 4, 12, 64, seed=2)
    weight = types.SimpleNamespace(name="blk.0.attn_q", shape=(12, 64),
                                   quantized=types.SimpleNamespace(to_quantized_weights=lambda config: weights))
    gemms = [("0.qkv", torch.randn(8, 64), weight)]
    store = {"path": str(tmp_path), "digest": operands_digest({}, gemms)}
    write_store(CONFIG, tmp_path, store["digest"], gemms, [0])
    batch = _batches([GemmTiles(0, "0.qkv", "blk.0.attn_q", 8, 12, 64, 0, (0, 4)),
                      GemmTiles(0, "0.qkv", "blk.0.attn_q", 8, 12, 64, 4, (4, 8))], 8)[0]
    settings = {"config": CONFIG.to_dict()["params"], "bench": "freerun", "operands": store}
    result = verify_tiles(settings, dataclasses.asdict(batch))
    assert result["tiles"] == 4 and result["mismatches"] == 1 and result["mismatched"] == {"blk.0.attn_q@4:4-8": [4]}
    record = {"key": batch.key, "job": dataclasses.asdict(batch), "result": result, "seconds": 1.0}
    run = _Run(CONFIG, "smollm2-dense", [], [batch], settings, None, 0.0)
    report = build_report(run, TaskRun(records=[record], ran=1, reused=0, wall_seconds=1.0, workers=1), {}, 1, 1.0)
    assert [(f["row0"], f["cols"]) for f in report["failures"]] == [(4, [4])]
