"""Host side of the memory-fed bench: the core inside the wrapper ``mpgemm_player.sv``, the
stimulus and golden beats as hex files for its memories, and :func:`run_player`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hw.config import MixPEConfig
from hw.emit import build_block, emit_verilog
from hw.layouts import activation_layout, group_layout, result_layout, weight_layout
from sw.packer import Tile
from verif.benches import BENCHES
from verif.cocotb_util import JOB_ENV, SUMMARY_ENV
from verif.paths import new_run_dir, sim_build_dir
from verif.runner import run_cocotb

__all__ = ["PlayerResult", "run_player", "component", "WRAPPER"]

#: The SystemVerilog wrapper (top level ``mpgemm_player``) around the generated core.
WRAPPER = Path(__file__).with_name("mpgemm_player.sv")
#: Memory depths of the wrapper (beats).
DEPTHS = {"STEP_DEPTH": 65536, "GROUP_DEPTH": 4096, "RESULT_DEPTH": 16384}


@dataclasses.dataclass(frozen=True)
class PlayerResult:
    passed: bool
    cycles: int
    test_seconds: float
    mismatches: int


def component(config: MixPEConfig):
    """The core the wrapper instantiates (emitted as module ``mpgemm``)."""
    return build_block("mpgemm", config)


def run_player(config: MixPEConfig, tiles: list[Tile], expected: list[int], *, seed: int = 1) -> PlayerResult:
    """Run the tiles through cocotb with the memory-fed wrapper; every result beat is checked in the
    simulation against ``expected`` (the golden beats)."""
    bench = BENCHES["player"]
    build_dir = sim_build_dir(config, bench.name)
    run_dir = new_run_dir(build_dir, seed)
    files = {}
    for name, beats in (("act", [b for t in tiles for b in t.act]), ("wgt", [b for t in tiles for b in t.wgt]),
                        ("grp", [b for t in tiles for b in t.grp]), ("exp", expected)):
        files[name] = run_dir / f"{name}.hex"
        files[name].write_text("".join(f"{beat:x}\n" for beat in beats))
    n_act, n_grp = sum(len(t.act) for t in tiles), sum(len(t.grp) for t in tiles)
    for name, count in (("STEP_DEPTH", n_act), ("GROUP_DEPTH", n_grp), ("RESULT_DEPTH", len(expected))):
        if count > DEPTHS[name]:
            raise ValueError(f"the memory-fed testbench holds at most {DEPTHS[name]} beats ({name}); got {count}")
    widths = {"ACT_W": activation_layout(config).size, "WGT_W": weight_layout(config).size,
              "GRP_W": group_layout(config).size, "RES_W": result_layout(config).size}
    job_path, summary_path = run_dir / "job.json", run_dir / "summary.json"
    job_path.write_text(json.dumps({"timeout_cycles": 4 * n_act + 100000}))
    result = run_cocotb(
        verilog=emit_verilog(component(config), "mpgemm"), toplevel=bench.toplevel,
        build_dir=build_dir, test_module=bench.tb_module, seed=seed, extra_sources=[WRAPPER],
        build_args=[f"-G{name}={value}" for name, value in {**widths, **DEPTHS}.items()],
        plusargs=[f"+{name}={path}" for name, path in files.items()]
        + [f"+n_act={n_act}", f"+n_grp={n_grp}", f"+n_res={len(expected)}"],
        extra_env={JOB_ENV: str(job_path), SUMMARY_ENV: str(summary_path)}, run_dir=run_dir)
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"cycles": 0, "mismatches": -1}
    return PlayerResult(passed=result.passed and summary["mismatches"] == 0, cycles=summary["cycles"],
                        test_seconds=result.test_time_s, mismatches=summary["mismatches"])
