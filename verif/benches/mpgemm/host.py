"""Host side of the ``mpgemm`` bench: the core and the job of a stream of packed tiles.

The job holds the packed beats of every tile with its origin (row0, col0), the expected result
beats (from the caller's golden (R, C) results), the stall probabilities, the cycle count the
stall-free run must equal (:func:`golden.cycles.predict_cycles`) and a timeout.
:func:`verif.sims.run_tiles` runs it.
"""

from __future__ import annotations

import torch

from golden.cycles import CycleReport, predict_cycles
from hw.config import MixPEConfig
from hw.emit import build_block
from sw.packer import Tile, tile_result_beats

__all__ = ["component", "tiles_job"]


def component(config: MixPEConfig):
    return build_block("mpgemm", config)


def tiles_job(config: MixPEConfig, tiles: list[Tile], expected_rows: list[torch.Tensor], *, stall_in: float,
              stall_out: float, check_cycles: bool, useful_macs: int | None) -> tuple[dict, CycleReport]:
    """The job of streaming ``tiles`` back to back, each expected to give ``expected_rows[i]``
    (float32 (R, C), padding included), and the cycle model's prediction. ``check_cycles``: the
    measured cycles must equal the prediction; ``useful_macs`` only enters the utilization."""
    if not tiles or len(expected_rows) != len(tiles):
        raise ValueError(f"expected_rows: {len(expected_rows)} results for {len(tiles)} tiles; "
                         f"need one (R, C) result per tile and at least one tile")
    shape = (config.rows, config.cols)
    for index, rows in enumerate(expected_rows):
        if not isinstance(rows, torch.Tensor) or rows.dtype != torch.float32 or tuple(rows.shape) != shape:
            raise ValueError(f"expected_rows[{index}]: {getattr(rows, 'dtype', type(rows).__name__)} "
                             f"{tuple(getattr(rows, 'shape', ()))}, expected float32 {shape}")
    predicted = predict_cycles(config, [tile.groups for tile in tiles], useful_macs=useful_macs)
    slack = 1.0 / (1.0 - max(stall_in, stall_out)) ** 2
    job = {
        "tiles": [{"act": t.act, "wgt": t.wgt, "grp": t.grp} for t in tiles],
        "tile_origins": [(t.row0, t.col0) for t in tiles],
        "expected": [beat for rows in expected_rows for beat in tile_result_beats(config, rows)],
        "stall_in": stall_in,
        "stall_out": stall_out,
        "expected_cycles": predicted.cycles if check_cycles else None,
        "timeout_cycles": int(predicted.cycles * 4 * slack) + 1000,
    }
    return job, predicted
