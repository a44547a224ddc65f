"""Where generated files go: the one home of the build paths (relative to the working directory,
the repository root under ``make``). Import-light: ``gen``'s CLI parser may import it.

``build/sim/<block>-<config hash>/`` holds one cached Verilator build of a block (or bench top level);
every simulation run gets its own directory under ``runs/`` in it, so parallel runs on the same
build (pytest workers, threads) never share a job, summary or results file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hw.config import MixPEConfig

__all__ = ["BUILD_ROOT", "SIM_ROOT", "sim_build_dir", "new_run_dir"]

#: Root of everything the tools write (``make clean`` removes it).
BUILD_ROOT = Path("build")
#: Verilator builds, one directory per block and configuration.
SIM_ROOT = BUILD_ROOT / "sim"


def sim_build_dir(config: MixPEConfig, block: str) -> Path:
    """The cached Verilator build directory of ``block`` on ``config``: ``build/sim/<block>-<hash>``."""
    return SIM_ROOT / f"{block}-{config.hash}"


def new_run_dir(build_dir: Path, seed: int | None = None) -> Path:
    """A fresh directory ``<build_dir>/runs/seed<seed>-<unique>/`` (``run-<unique>`` without a seed)
    for the files of one run; absolute."""
    runs = Path(build_dir).resolve() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-" if seed is None else f"seed{seed}-", dir=runs))
