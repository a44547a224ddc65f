"""Python side of the RTL simulations: prepares a job, runs a cocotb bench, returns a summary.

:func:`run_bench` runs any bench of :mod:`verif.benches` on a job (build cached per configuration
hash under ``build/sim/``, each run's files in its own directory, so parallel runs never collide);
:func:`run_block` runs a standalone bench (``make sim TEST=pe``) on its own job.
:func:`run_tiles` simulates already packed tiles (:mod:`sw.packer`, plain or banded) against their
expected (R, C) results on the ``mpgemm`` bench, bit-exact and cycle-exact against
:mod:`golden.cycles`. :func:`run_mpgemm` packs a quantized GEMM and takes its expected tiles from
the bit-exact golden model.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from golden.cycles import CycleReport
from golden.mpgemm import bitexact_mpgemm
from golden.operands import QuantizedWeights, resolve_seed
from hw.config import MixPEConfig
from hw.emit import emit_verilog
from sw.packer import Tile, pack_gemm, pad_operands
from verif.benches import BENCHES, STANDALONE_BENCHES
from verif.benches.mpgemm.host import tiles_job
from verif.cocotb_util import JOB_ENV, SUMMARY_ENV
from verif.paths import new_run_dir, sim_build_dir
from verif.runner import CocotbResult, run_cocotb

__all__ = ["SimSummary", "NetlistOverride", "netlist_override", "bench_verilog", "run_bench", "run_block", "run_tiles",
           "run_mpgemm"]

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


@dataclasses.dataclass(frozen=True)
class NetlistOverride:
    """Verilog that :func:`run_bench` simulates in place of bench ``bench``'s emitted design, built in
    ``build_dir`` (never the design's own cache), with ``plusargs`` (mutation testing: :mod:`gen.mutate`)."""
    bench: str
    verilog: str
    build_dir: Path
    plusargs: tuple[str, ...] = ()


_OVERRIDE: contextvars.ContextVar[NetlistOverride | None] = contextvars.ContextVar("netlist_override", default=None)


@contextlib.contextmanager
def netlist_override(override: NetlistOverride) -> Iterator[None]:
    """Within the block, every :func:`run_bench` of ``override.bench`` simulates ``override``."""
    token = _OVERRIDE.set(override)
    try:
        yield
    finally:
        _OVERRIDE.reset(token)


@functools.lru_cache(maxsize=16)
def bench_verilog(name: str, config: MixPEConfig) -> str:
    """Verilog of bench ``name``'s design on ``config``, emitted once per process: emission takes
    seconds (a 16x16 core about 8 s of CPU), and a scenario runs the same design several times."""
    bench = BENCHES[name]
    return emit_verilog(bench.host().component(config), bench.toplevel)


def run_bench(name: str, config: MixPEConfig, job: dict, *, seed: int, waves: bool = False,
              replay_hint: str | None = None) -> tuple[CocotbResult, dict]:
    """Run bench ``name`` (:data:`verif.benches.BENCHES`) on ``config`` with ``job`` (the bench's
    cocotb side finds the configuration in ``job["config"]``, added here) in a fresh run directory.

    Returns the cocotb result and the summary the bench wrote (``{}`` if none). The job file is
    kept only when the run failed. Within :func:`netlist_override` of this bench, its netlist, build
    directory and plusargs replace the emitted design and its cache."""
    bench = BENCHES[name]
    override = _OVERRIDE.get()
    if override is not None and override.bench != name:
        override = None
    build_dir = override.build_dir if override else sim_build_dir(config, name)
    run_dir = new_run_dir(build_dir, seed)
    job_path, summary_path = run_dir / "job.json", run_dir / "summary.json"
    job_path.write_text(json.dumps({"config": dataclasses.asdict(config), **job}))
    result = run_cocotb(verilog=override.verilog if override else bench_verilog(name, config),
                        toplevel=bench.toplevel, build_dir=build_dir, test_module=bench.tb_module, seed=seed,
                        waves=waves, run_dir=run_dir, replay_hint=replay_hint,
                        plusargs=override.plusargs if override else (), extra_env={JOB_ENV: str(job_path), SUMMARY_ENV: str(summary_path)})
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if result.passed:
        job_path.unlink()
    return result, summary


def run_block(config: MixPEConfig, test: str, *, seed: int | None = None, waves: bool = False) -> CocotbResult:
    """Run the standalone bench ``test`` (``pe``, ``gdu`` or ``fp_product``) on its own job; returns the
    cocotb result."""
    if test not in STANDALONE_BENCHES:
        raise ValueError(f"test={test!r}: block testbenches are {sorted(STANDALONE_BENCHES)}")
    seed = resolve_seed(seed)
    job = BENCHES[test].host().job(config, seed)
    result, _ = run_bench(test, config, job, seed=seed, waves=waves,
                          replay_hint=f"make sim TEST={test} PRESET={config.name} SEED={{seed}}")
    return result


def run_tiles(config: MixPEConfig, tiles: list[Tile], expected_rows: list[torch.Tensor], *,
              seed: int | None = None, stall_in: float = 0.0, stall_out: float = 0.0, waves: bool = False,
              check_cycles: bool | None = None, useful_macs: int | None = None) -> SimSummary:
    """Stream ``tiles`` back to back through the ``mpgemm`` RTL and check every result beat
    bit-exactly against ``expected_rows`` (one float32 (R, C) tensor per tile, padding included).

    With no stalls the measured cycle count must equal the cycle model (``check_cycles``
    defaults to that); with random stalls the cycle count can only grow, which is checked.
    ``useful_macs`` (default: the full array) only enters the reported utilization."""
    seed = resolve_seed(seed)
    if check_cycles is None:
        check_cycles = stall_in == 0.0 and stall_out == 0.0
    job, predicted = tiles_job(config, tiles, expected_rows, stall_in=stall_in, stall_out=stall_out,
                               check_cycles=check_cycles, useful_macs=useful_macs)
    k_steps = sorted({len(t.act) for t in tiles})
    start = time.perf_counter()
    result, summary = run_bench("mpgemm", config, job, seed=seed, waves=waves,
                                replay_hint=f"seed {{seed}} of {len(tiles)} tiles (K in {k_steps}) on {config.name}")
    wall = time.perf_counter() - start
    cycles = summary.get("cycles")
    passed = result.passed and bool(summary) and summary["mismatch_count"] == 0 and not summary["timed_out"]
    if passed and not check_cycles:
        passed = cycles is not None and cycles >= predicted.cycles
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
