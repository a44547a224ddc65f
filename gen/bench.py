"""``make bench``: array utilization and simulation speed, measured side by side in one run.

For a few GEMM shapes on the configured core it runs the cocotb testbench (every beat checked
against the golden model) and reports the measured cycles, the cycle model's prediction, the
utilization (useful MACs per cycle over R x C) and the simulation speed. The first shape also
runs through the free-running Verilator harness (:mod:`verif.freerun`) on the same stimulus, and
the ratio of the speeds shows the testbench overhead: the stream-driver testbench (a Python
coroutine per stream and cycle) and the memory-fed cocotb testbench (:mod:`verif.benches.player`:
cocotb drives clock and reset, stimulus and golden beats sit in simulated memories). The MoE part
(:mod:`gen.moe_bench`) adds the mapper's utilization table and the golden backend's time for a
Mixtral-8x7B-shaped layer. Results go to ``build/bench/bench.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from gen.moe_bench import moe_bench
from golden.cycles import predict_cycles, utilization
from golden.mpgemm import bitexact_mpgemm
from golden.operands import random_operands
from hw.config import MixPEConfig
from sw.packer import pack_gemm, pad_operands, result_beats
from verif.benches.player.host import run_player
from verif.freerun import run_freerun
from verif.sims import run_mpgemm

__all__ = ["bench_shapes", "run_bench"]

UTILIZATION_TARGET = 0.99
SEED = 2024


def bench_shapes(config: MixPEConfig, quick: bool = False) -> list[dict]:
    """Shapes: a long tile stream (K = 4g), single-group tiles, and a partial tile over many groups."""
    rows, cols, g = config.rows, config.cols, config.group_size
    tiles = 4 if quick else 16
    long_stream = [] if quick else [
        {"name": f"stream-{LONG_STREAM_TILES}-tiles-K4g", "m": rows, "n": LONG_STREAM_TILES * cols, "k": 4 * g,
         "freerun": False}]
    return [
        {"name": f"stream-{tiles}-tiles-K4g", "m": rows, "n": tiles * cols, "k": 4 * g, "freerun": True},
        *long_stream,
        {"name": "single-group-tiles", "m": 2 * rows, "n": 2 * cols, "k": g, "freerun": False},
        {"name": "partial-tile-K8g", "m": rows // 2 + 1, "n": cols, "k": (2 if quick else 8) * g, "freerun": False},
    ]


#: Tiles of the long K = 4g stream: long enough that the last tile's dequantization (R * C / lanes
#: cycles with GDU lanes, once per stream) costs under 1 %.
LONG_STREAM_TILES = 64
#: Streams of the lane table (cycle model): (name, tiles, groups per tile).
LANE_STREAMS = (("16 tiles K=4g", 16, 4), (f"{LONG_STREAM_TILES} tiles K=4g", LONG_STREAM_TILES, 4),
                ("32 tiles K=g", 32, 1))


def lane_table(config: MixPEConfig) -> list[dict]:
    """Cycle-model utilization of full-tile streams for 1 GDU lane, the configured (derived) lanes
    and one lane per column: what the lanes cost in stalls and in the stream's tail."""
    records = []
    for lanes in sorted({1, config.lanes, config.cols}):
        variant = config.replace(gdu_lanes=lanes)
        record = {"lanes": lanes, "configured": lanes == config.lanes, "group_interval": variant.group_interval,
                  "result_offset": variant.result_offset, "streams": {}}
        for name, tiles, groups in LANE_STREAMS:
            report = predict_cycles(variant, [groups] * tiles)
            record["streams"][name] = {"cycles": report.cycles, "utilization": report.utilization(variant),
                                       "dequant_stalls": report.dequant_stalls, "bank_stalls": report.bank_stalls}
        records.append(record)
    return records


def _print_lane_table(config: MixPEConfig, records: list[dict]) -> None:
    print(f"GDU lanes on {config.rows}x{config.cols} g={config.group_size} (cycle model, exact for stall-free streams): "
          "utilization per stream")
    print(f"  {'lanes':>5} {'interval':>8} {'result_offset':>13} " + " ".join(f"{name:>15}" for name, *_ in LANE_STREAMS))
    for r in records:
        mark = "*" if r["configured"] else " "
        print(f"  {r['lanes']:>4}{mark} {r['group_interval']:>8} {r['result_offset']:>13} "
              + " ".join(f"{r['streams'][name]['utilization']:>15.4f}" for name, *_ in LANE_STREAMS))
    print("  (* the configured lanes)")


def run_bench(config: MixPEConfig, out: Path, quick: bool = False) -> bool:
    records, ok = [], True
    for shape in bench_shapes(config, quick):
        m, n, k = shape["m"], shape["n"], shape["k"]
        x, act_scale, weights = random_operands(config, m, n, k, seed=SEED)
        summary = run_mpgemm(config, x, act_scale, weights, seed=SEED)
        cycles = summary.cycles or 0
        useful = summary.predicted.useful_macs
        test_seconds = summary.test_time_s
        record = {
            "name": shape["name"], "m": m, "n": n, "k": k, "tiles": len(summary.predicted.tile_done),
            "passed": summary.passed, "cycles": cycles, "model_cycles": summary.predicted.cycles,
            "dequant_stalls": summary.predicted.dequant_stalls, "bank_stalls": summary.predicted.bank_stalls,
            "useful_macs": useful, "utilization": utilization(config, useful, cycles),
            "cocotb": {"test_seconds": test_seconds, "process_seconds": summary.wall_time_s,
                       "cycles_per_second": cycles / test_seconds if test_seconds else 0.0,
                       "macs_per_second": useful / test_seconds if test_seconds else 0.0},
        }
        ok &= summary.passed
        if shape["freerun"]:
            tiles = pack_gemm(config, x, act_scale, weights)
            expected = result_beats(config, bitexact_mpgemm(config, *pad_operands(config, x, act_scale, weights)), m, n)
            free = run_freerun(config, tiles, len(expected))
            record["freerun"] = {"cycles": free.cycles, "seconds": free.seconds, "bit_exact": free.beats == expected,
                                 "cycles_per_second": free.cycles / free.seconds,
                                 "macs_per_second": useful / free.seconds}
            player = run_player(config, tiles, expected, seed=SEED)
            record["cocotb_memory_fed"] = {"passed": player.passed, "cycles": player.cycles,
                                           "test_seconds": player.test_seconds,
                                           "cycles_per_second": player.cycles / player.test_seconds,
                                           "macs_per_second": useful / player.test_seconds}
            free_speed = record["freerun"]["cycles_per_second"]
            record["cocotb_to_freerun_speed"] = record["cocotb"]["cycles_per_second"] / free_speed
            record["cocotb_memory_fed_to_freerun_speed"] = record["cocotb_memory_fed"]["cycles_per_second"] / free_speed
            ok &= free.beats == expected and free.cycles == cycles and player.passed and player.cycles == cycles
        records.append(record)
        _print_record(config, record)

    stream = records[0]
    target_met = stream["utilization"] >= UTILIZATION_TARGET
    lanes = lane_table(config)
    _print_lane_table(config, lanes)
    result = {"config": config.to_dict(), "cases": records, "utilization_target": UTILIZATION_TARGET,
              "utilization_target_met": target_met, "all_passed": bool(ok), "seed": SEED, "lanes": lanes,
              "moe": moe_bench(config, quick), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"utilization of the K=4g tile stream ({stream['tiles']} tiles): {stream['utilization']:.4f} "
          f"(target >= {UTILIZATION_TARGET}: {'met' if target_met else 'NOT met'})")
    for r in records[1:]:
        if r["name"].startswith("stream-"):
            print(f"utilization of the K=4g tile stream ({r['tiles']} tiles): {r['utilization']:.4f}")
    print(f"wrote {out}")
    return bool(ok)


def _print_record(config: MixPEConfig, r: dict) -> None:
    line = (f"{'PASS' if r['passed'] else 'FAIL'} {r['name']:<22} M={r['m']} N={r['n']} K={r['k']} tiles={r['tiles']} "
            f"cycles={r['cycles']} (model {r['model_cycles']}) util={r['utilization']:.4f} "
            f"cocotb {r['cocotb']['cycles_per_second']:,.0f} cycles/s {r['cocotb']['macs_per_second'] / 1e6:.2f} MMAC/s")
    if "freerun" in r:
        f = r["freerun"]
        line += (f" | free-running {f['cycles_per_second']:,.0f} cycles/s {f['macs_per_second'] / 1e6:.1f} MMAC/s "
                 f"bit-exact={f['bit_exact']} | cocotb stream drivers / free-running = {r['cocotb_to_freerun_speed']:.1%}"
                 f" | cocotb memory-fed {r['cocotb_memory_fed']['cycles_per_second']:,.0f} cycles/s = "
                 f"{r['cocotb_memory_fed_to_freerun_speed']:.1%} of free-running")
    print(line, flush=True)
