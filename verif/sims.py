"""Python side of the RTL simulations: prepares a job, runs the cocotb testbench, returns a summary.

:func:`run_tiles` simulates already packed tiles (:mod:`sw.packer`, plain or banded) against their
expected (R, C) results: it writes a job with the tiles' beats, the expected result beats and the
expected cycle count from :mod:`golden.cycles`, then runs ``verif.tb_mpgemm`` on the core's
Verilog under Verilator (build cached per configuration hash under ``build/sim/``, each run's
files in its own directory, so parallel runs never collide).
:func:`run_mpgemm` packs a quantized GEMM and takes its expected tiles from the bit-exact golden
model.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from pathlib import Path

import torch

from golden.cycles import CycleReport, predict_cycles
from hw.emit import build_block, emit_verilog
from golden.mpgemm import bitexact_mpgemm
from golden.operands import QuantizedWeights
from hw.config import MixPEConfig
from sw.packer import Tile, pack_gemm, pad_operands, tile_result_beats
from verif.fp_product import FPProductPath
from verif.fp_product_cases import product_job
from verif.gdu_cases import gdu_job
from verif.paths import new_run_dir, sim_build_dir
from verif.runner import run_cocotb

__all__ = ["SimSummary", "run_tiles", "run_mpgemm", "run_block"]


@dataclasses.dataclass
class SimSummary:
    """Outcome of one RTL run."""
    passed: bool
    seed: int
    cycles: int | None
    predicted: CycleReport
    mismatch_count: int
    mismatches: list[str]
    result_beats: int
    wall_time_s: float
    build_time_s: float
    wave_file: Path | None
    results_xml: Path | None = None
    #: Wall-clock seconds of the cocotb test itself (no simulator start-up).
    test_time_s: float = float("nan")

    @property
    def cycles_match(self) -> bool:
        return self.cycles == self.predicted.cycles


def run_tiles(config: MixPEConfig, tiles: list[Tile], expected_rows: list[torch.Tensor], *,
              seed: int | None = None, stall_in: float = 0.0, stall_out: float = 0.0, waves: bool = False,
              check_cycles: bool | None = None, useful_macs: int | None = None) -> SimSummary:
    """Stream ``tiles`` back to back through the ``mpgemm`` RTL and check every result beat
    bit-exactly against ``expected_rows`` (one float32 (R, C) tensor per tile, padding included).

    With no stalls the measured cycle count must equal the cycle model (``check_cycles``
    defaults to that); with random stalls the cycle count can only grow, which is checked.
    ``useful_macs`` (default: the full array) only enters the reported utilization."""
    seed = random.randrange(2 ** 31) if seed is None else seed
    if not tiles or len(expected_rows) != len(tiles):
        raise ValueError(f"expected_rows: {len(expected_rows)} results for {len(tiles)} tiles; "
                         f"need one (R, C) result per tile and at least one tile")
    shape = (config.rows, config.cols)
    for index, rows in enumerate(expected_rows):
        if not isinstance(rows, torch.Tensor) or rows.dtype != torch.float32 or tuple(rows.shape) != shape:
            raise ValueError(f"expected_rows[{index}]: {getattr(rows, 'dtype', type(rows).__name__)} "
                             f"{tuple(getattr(rows, 'shape', ()))}, expected float32 {shape}")
    expected = [beat for rows in expected_rows for beat in tile_result_beats(config, rows)]
    predicted = predict_cycles(config, [tile.groups for tile in tiles], useful_macs=useful_macs)
    if check_cycles is None:
        check_cycles = stall_in == 0.0 and stall_out == 0.0

    build_dir = sim_build_dir(config, "mpgemm")
    run_dir = new_run_dir(build_dir, seed)
    job_path, summary_path = run_dir / "job.json", run_dir / "summary.json"
    slack = 1.0 / (1.0 - max(stall_in, stall_out)) ** 2
    job_path.write_text(json.dumps({
        "config": dataclasses.asdict(config),
        "tiles": [{"act": t.act, "wgt": t.wgt, "grp": t.grp} for t in tiles],
        "tile_origins": [(t.row0, t.col0) for t in tiles],
        "expected": expected,
        "stall_in": stall_in,
        "stall_out": stall_out,
        "expected_cycles": predicted.cycles if check_cycles else None,
        "timeout_cycles": int(predicted.cycles * 4 * slack) + 1000,
    }))

    start = time.perf_counter()
    k_steps = sorted({len(t.act) for t in tiles})
    result = run_cocotb(
        verilog=emit_verilog(build_block("mpgemm", config), "mpgemm"),
        toplevel="mpgemm", build_dir=build_dir, test_module="verif.tb_mpgemm", seed=seed, waves=waves,
        extra_env={"MIXPE_JOB": str(job_path), "MIXPE_SUMMARY": str(summary_path)}, run_dir=run_dir,
        replay_hint=f"seed {{seed}} of {len(tiles)} tiles (K in {k_steps}) on {config.name}")
    wall = time.perf_counter() - start
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    cycles = summary.get("cycles")
    passed = result.passed and bool(summary) and summary["mismatch_count"] == 0 and not summary["timed_out"]
    if passed and not check_cycles:
        passed = cycles is not None and cycles >= predicted.cycles
    job_path.unlink(missing_ok=True)
    return SimSummary(
        passed=passed, seed=seed, cycles=cycles, predicted=predicted,
        mismatch_count=summary.get("mismatch_count", -1), mismatches=summary.get("mismatches", []),
        result_beats=summary.get("received", 0), wall_time_s=wall, build_time_s=result.build_time_s,
        wave_file=result.wave_file, results_xml=result.results_xml, test_time_s=result.test_time_s)


def run_mpgemm(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor, weights: QuantizedWeights,
               *, seed: int | None = None, stall_in: float = 0.0, stall_out: float = 0.0,
               waves: bool = False, check_cycles: bool | None = None) -> SimSummary:
    """Run the GEMM (packed by :func:`sw.packer.pack_gemm`) through :func:`run_tiles`, expecting
    the bit-exact golden model's result."""
    tiles = pack_gemm(config, x, act_scale, weights)
    y_padded = bitexact_mpgemm(config, *pad_operands(config, x, act_scale, weights))
    expected_rows = [y_padded[t.row0:t.row0 + config.rows, t.col0:t.col0 + config.cols] for t in tiles]
    return run_tiles(config, tiles, expected_rows, seed=seed, stall_in=stall_in, stall_out=stall_out,
                     waves=waves, check_cycles=check_cycles,
                     useful_macs=x.shape[0] * weights.codes.shape[0] * x.shape[1])


#: Block-level testbenches: TEST name -> (top-level name, component factory, cocotb test module).
BLOCK_TESTBENCHES = {
    "pe": ("pe", lambda config: build_block("pe", config), "verif.tb_pe"),
    "gdu": ("gdu", lambda config: build_block("gdu", config), "verif.tb_gdu"),
    # Test harness, not a block: the aligner feeding one PE per weight code (FP activations only).
    "fp_product": ("fp_product", FPProductPath, "verif.tb_fp_product"),
}


def run_block(config: MixPEConfig, test: str, *, seed: int | None = None, waves: bool = False):
    """Run the block-level testbench ``test`` (``pe``, ``gdu`` or ``fp_product``); returns the cocotb result."""
    if test not in BLOCK_TESTBENCHES:
        raise ValueError(f"test={test!r}: block testbenches are {sorted(BLOCK_TESTBENCHES)}")
    block, make_component, module = BLOCK_TESTBENCHES[test]
    build_dir = sim_build_dir(config, block)
    seed = random.randrange(2 ** 31) if seed is None else seed
    run_dir = new_run_dir(build_dir, seed)
    config_path = run_dir / "config.json"
    config_path.write_text(json.dumps(dataclasses.asdict(config)))
    job_path = run_dir / "job.json"
    jobs = {"gdu": lambda: gdu_job(config, seed), "fp_product": lambda: product_job(config)}
    job_path.write_text(json.dumps(jobs[test]() if test in jobs else {}))
    return run_cocotb(verilog=emit_verilog(make_component(config), block), toplevel=block,
                      build_dir=build_dir, test_module=module, seed=seed, waves=waves,
                      extra_env={"MIXPE_CONFIG": str(config_path), "MIXPE_JOB": str(job_path)}, run_dir=run_dir,
                      replay_hint=f"make sim TEST={test} PRESET={config.name} SEED={{seed}}")
