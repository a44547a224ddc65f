"""Simulation-backed implementations of the host stack's interfaces (:mod:`sw` defines them).

* :class:`RtlBackend`: the ``rtl`` backend of :mod:`sw.moe_run` (one Verilator simulation per
  stage); :func:`make_backend` knows every name of :data:`sw.moe_run.BACKENDS`.
"""

from __future__ import annotations

import torch

from golden.operands import resolve_seed
from hw.config import MixPEConfig
from sw.moe import MoEError
from sw.moe_run import BACKENDS, HOST_BACKENDS, Backend, StageRun, band_operands, place_block
from sw.packer import Band, banded_tile_result, pack_banded_tile, unpack_banded_tile
from verif.runner import SimulationError
from verif.sims import run_tiles

__all__ = ["RtlBackend", "make_backend"]


class RtlBackend(Backend):
    """The ``mpgemm`` RTL under Verilator: one simulation streams a stage's whole schedule of banded
    tiles (``sw.packer.pack_banded_tile``, ``verif.sims.run_tiles``); the scoreboard checks every
    result beat bit-exactly against ``banded_tile_result`` and the measured cycles against the
    cycle model."""
    name = "rtl"
    cycles_source = "rtl"

    def __init__(self, config: MixPEConfig, seed: int | None = None):
        super().__init__(config)
        self.seed = resolve_seed(seed)

    def run_stage(self, jobs, schedule):
        tiles, expected, bands_of = [], [], []
        for tile in schedule.tiles:
            bands = [Band(*band_operands(jobs[item.gemm], item)) for item in tile.bands]
            tiles.append(pack_banded_tile(self.config, bands))
            expected.append(banded_tile_result(self.config, bands))
            bands_of.append(bands)
        summary = run_tiles(self.config, tiles, expected, seed=self.seed, useful_macs=schedule.useful_macs)
        if not summary.passed:
            raise SimulationError(f"rtl: stage of {len(tiles)} tiles failed on {self.config.name} (seed {self.seed}): "
                                  f"{summary.mismatch_count} mismatching result beats, cycles {summary.cycles} "
                                  f"(model {summary.predicted.cycles}); {summary.mismatches[:3]}")
        # The scoreboard compared every result beat with ``expected``, bit for bit.
        outputs = [torch.full((job.shape.m, job.shape.n), float("nan"), dtype=torch.float32) for job in jobs]
        for tile, bands, rows in zip(schedule.tiles, bands_of, expected):
            for item, block in zip(tile.bands, unpack_banded_tile(self.config, bands, rows)):
                place_block(outputs, item, block)
        return StageRun(outputs=outputs, cycles=summary.cycles, details={
            "simulations": 1, "tiles": len(tiles), "model_cycles": summary.predicted.cycles, "seed": self.seed})


def make_backend(name: str, config: MixPEConfig, seed: int | None = None) -> Backend:
    """The backend ``name`` (one of :data:`sw.moe_run.BACKENDS`); ``seed`` seeds the RTL's stimulus."""
    if name not in BACKENDS:
        raise MoEError(f"backend={name!r}: allowed values are {BACKENDS}")
    return RtlBackend(config, seed) if name == "rtl" else HOST_BACKENDS[name](config)
