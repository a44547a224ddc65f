"""RTL equality on the real SmolLM2-135M weights: R x C output tiles sampled from the GEMMs of a
forward pass (the checkpoint's Q4_1 codes, d and m; the activations the layer really receives),
streamed through the ``mpgemm`` RTL under Verilator and checked bit-exactly, beat by beat, against
:func:`golden.mpgemm.bitexact_mpgemm`, with the measured cycle count equal to the cycle model.

:func:`sample_tiles` picks ``count`` GEMM calls of one forward pass (seeded), and in each a
random block of R consecutive tokens and C consecutive output channels over the GEMM's full K. The
operands are the ones :class:`sw.smollm.ArrayLinear` passes to the golden model (per-token INT8
codes and scales, or FP16 values), so a sampled tile is exactly a piece of the evaluated GEMMs.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import torch

from golden.mpgemm import bitexact_mpgemm
from hw.config import MixPEConfig
from sw.packer import Tile, pack_gemm, pad_operands
from sw.smollm import FFN, ArrayLinear, FloatLinear, QLinear, SmolLM, forward
from verif.sims import run_tiles

__all__ = ["RecordingLinear", "SampledTile", "sample_tiles", "check_sampled_tiles"]


class RecordingLinear(FloatLinear):
    """The float backend, keeping every call's stage, input (M, K) and weight."""

    def __init__(self):
        super().__init__()
        self.inputs: list[tuple[str, torch.Tensor, QLinear]] = []

    def __call__(self, x, weight, stage):
        if x.shape[0]:
            self.inputs.append((stage, x, weight))
        return super().__call__(x, weight, stage)


@dataclasses.dataclass(frozen=True)
class SampledTile:
    """Where a sampled tile comes from: GEMM ``weight`` of ``stage`` (M x N x K), output rows
    ``row0 ..`` (tokens) and channels ``col0 ..``."""
    stage: str
    weight: str
    m: int
    n: int
    k: int
    row0: int
    col0: int


def sample_tiles(config: MixPEConfig, model: SmolLM, tokens: torch.Tensor, *, count: int, seed: int,
                 ffns: list[FFN] | None = None, select: Callable[[QLinear], bool] | None = None
                 ) -> tuple[list[Tile], list[torch.Tensor], list[SampledTile]]:
    """``count`` tiles sampled (seeded) from ``forward(model, tokens, ..., ffns)``: the packed tiles,
    their expected float32 (R, C) results from the golden model, and where each comes from. Every
    sampled weight must run on ``config`` (Q4_1; carved models: ``down_mode="requantized"``);
    ``select`` keeps only the GEMMs of the weights it accepts (e.g. one GGUF type)."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count={count!r}: must be a positive integer")
    recorder = RecordingLinear()
    with torch.no_grad():
        forward(model, tokens, recorder, ffns)
    calls = [call for call in recorder.inputs if select is None or select(call[2])]
    if not calls:
        raise ValueError("select: no GEMM of the forward pass has a selected weight")
    rng = random.Random(seed)
    array = ArrayLinear(config)
    tiles, expected, origins = [], [], []
    for index in sorted(rng.choices(range(len(calls)), k=count)):
        stage, x, weight = calls[index]
        n, k = weight.shape
        row0 = rng.randrange(max(1, x.shape[0] - config.rows + 1))
        col0 = rng.randrange(max(1, n - config.cols + 1))
        block = weight.rows(torch.arange(col0, min(n, col0 + config.cols)), weight.name)
        operands = array.operands(x[row0:row0 + config.rows], block)
        (tile,) = pack_gemm(config, *operands)
        tiles.append(tile)
        expected.append(bitexact_mpgemm(config, *pad_operands(config, *operands)))
        origins.append(SampledTile(stage, weight.name, x.shape[0], n, k, row0, col0))
    return tiles, expected, origins


def check_sampled_tiles(config: MixPEConfig, model: SmolLM, tokens: torch.Tensor, *, count: int, seed: int,
                        ffns: list[FFN] | None = None, source: str = "dense",
                        select: Callable[[QLinear], bool] | None = None) -> dict:
    """Run :func:`sample_tiles` through the RTL of ``config`` (Verilator; the build is cached per
    configuration) with ``seed``; returns a JSON-ready summary with ``passed``, ``mismatches``,
    ``cycles`` and ``predicted_cycles``, the tiles' origins and the seed."""
    tiles, expected, origins = sample_tiles(config, model, tokens, count=count, seed=seed, ffns=ffns, select=select)
    summary = run_tiles(config, tiles, expected, seed=seed)
    return {"source": source, "config": config.name, "config_hash": config.hash, "seed": seed,
            "tiles": len(tiles), "passed": summary.passed, "mismatches": summary.mismatch_count,
            "first_mismatches": summary.mismatches[:5], "result_beats": summary.result_beats,
            "cycles": summary.cycles, "predicted_cycles": summary.predicted.cycles,
            "sim_seconds": summary.wall_time_s, "build_seconds": summary.build_time_s,
            "origins": [dataclasses.asdict(origin) for origin in origins]}
