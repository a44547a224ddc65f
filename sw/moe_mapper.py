"""Map the expert GEMMs of an MoE layer onto the R x C array and predict cycles and utilization.

Every row of an array column receives the same weight at each K step, so K cannot be split
across rows; instead the rows form ``row_groups`` bands of ``band_rows = R / row_groups`` rows,
each with its own weight codes and group parameters, sharing K and the schedule
(``MixPEConfig.row_groups``). The mapper:

1. cuts every expert GEMM ``y (M, N) = x (M, K) @ W (N, K)^T`` into *work items*: a chunk of at most
   ``band_rows`` consecutive tokens times a block of at most C consecutive output channels;
2. groups the items by K (every band of a tile streams the same K); items of different matrices
   (gate and up of all experts share K = hidden) and of the same expert's column blocks may share
   a tile, so a tile holds any ``row_groups`` items of equal K;
3. fills tiles in order of (K descending, expert, matrix, column block, token chunk), which is
   optimal in tile count for this item set: ``ceil(items_K / row_groups)`` tiles per K;
4. times the tile stream with :func:`golden.cycles.predict_cycles` (exact for stall-free streams).

With ``row_groups = 1`` this is the plain tokens-on-rows mapping (one item of up to R tokens per
tile). Utilization is useful MACs (sum of M*N*K) over R*C per cycle. The layer runs in two
stages, because down needs ``silu(gate) * up`` of the same tokens: stage 1 holds gate and up of
every active expert, stage 2 down; the layer's cycles are the sum of the stages' (the host's
SiLU and requantization between them is not counted).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

from golden.cycles import CycleReport, predict_cycles, utilization
from hw.config import MixPEConfig
from hw.errors import MixPEError

__all__ = ["MapperError", "GemmShape", "WorkItem", "TilePlan", "StageSchedule", "LayerSchedule", "map_stage",
           "map_layer", "layer_shapes", "expert_schedules"]


class MapperError(MixPEError, ValueError):
    """Invalid mapper input; the message names the parameter, its value and what is allowed."""


@dataclasses.dataclass(frozen=True)
class GemmShape:
    """One expert GEMM: M tokens x N output channels x K. ``expert`` E means the shared expert."""
    expert: int
    matrix: str
    m: int
    n: int
    k: int

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k


class WorkItem(NamedTuple):
    """Tokens ``row0 .. row0+rows-1`` x channels ``col0 .. col0+cols-1`` of GEMM ``gemm`` (an index
    into the stage's shapes), over the GEMM's whole K."""
    gemm: int
    row0: int
    rows: int
    col0: int
    cols: int


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """One tile: band b (rows ``b*band_rows ..``) computes ``bands[b]``; unused bands idle."""
    k: int
    bands: tuple[WorkItem, ...]


@dataclasses.dataclass(frozen=True)
class StageSchedule:
    """A stage's tiles in stream order and their predicted timing."""
    config: MixPEConfig
    shapes: tuple[GemmShape, ...]
    tiles: tuple[TilePlan, ...]
    timing: CycleReport | None            # None when the stage has no work

    @property
    def cycles(self) -> int:
        return self.timing.cycles if self.timing else 0

    @property
    def useful_macs(self) -> int:
        return sum(shape.macs for shape in self.shapes)

    @property
    def utilization(self) -> float:
        return utilization(self.config, self.useful_macs, self.cycles)

    @property
    def band_fill(self) -> float:
        """Fraction of the tiles' R x C output slots that hold a real (token, channel) result."""
        slots = len(self.tiles) * self.config.rows * self.config.cols
        return sum(item.rows * item.cols for tile in self.tiles for item in tile.bands) / slots if slots else 0.0


@dataclasses.dataclass(frozen=True)
class LayerSchedule:
    """Stage 1 (gate, up) and stage 2 (down) of a layer."""
    stages: tuple[StageSchedule, StageSchedule]

    @property
    def config(self) -> MixPEConfig:
        return self.stages[0].config

    @property
    def cycles(self) -> int:
        return sum(stage.cycles for stage in self.stages)

    @property
    def useful_macs(self) -> int:
        return sum(stage.useful_macs for stage in self.stages)

    @property
    def tiles(self) -> int:
        return sum(len(stage.tiles) for stage in self.stages)

    @property
    def utilization(self) -> float:
        return utilization(self.config, self.useful_macs, self.cycles)

    def summary(self) -> dict:
        return {"tiles": self.tiles, "cycles": self.cycles, "useful_macs": self.useful_macs,
                "utilization": self.utilization, "row_groups": self.config.row_groups,
                "stages": [{"tiles": len(s.tiles), "cycles": s.cycles, "utilization": s.utilization,
                            "band_fill": s.band_fill,
                            "dequant_stalls": s.timing.dequant_stalls if s.timing else 0,
                            "bank_stalls": s.timing.bank_stalls if s.timing else 0} for s in self.stages]}


def _check_shape(index: int, shape: GemmShape, group: int) -> None:
    for field in ("m", "n", "k"):
        value = getattr(shape, field)
        if not isinstance(value, int) or value < (0 if field == "m" else 1):
            raise MapperError(f"shapes[{index}].{field}={value!r}: must be an integer >= {0 if field == 'm' else 1}")
    if shape.k % group:
        raise MapperError(f"shapes[{index}].k={shape.k}: must be a multiple of group_size={group}")


def map_stage(config: MixPEConfig, shapes: Sequence[GemmShape]) -> StageSchedule:
    """Tile the GEMMs ``shapes`` (all independent of each other) onto ``config``'s array (see the
    module docstring). GEMMs with M = 0 (experts that received no token) produce no work."""
    shapes = tuple(shapes)
    for index, shape in enumerate(shapes):
        _check_shape(index, shape, config.group_size)
    by_k: dict[int, list[WorkItem]] = {}
    band_rows, cols, row_groups = config.band_rows, config.cols, config.row_groups
    order = sorted(range(len(shapes)), key=lambda i: (-shapes[i].k, shapes[i].expert, shapes[i].matrix))
    for index in order:
        shape = shapes[index]
        items = by_k.setdefault(shape.k, [])
        for col0 in range(0, shape.n, cols):
            width = min(cols, shape.n - col0)
            items.extend(WorkItem(index, row0, min(band_rows, shape.m - row0), col0, width)
                         for row0 in range(0, shape.m, band_rows))
    tiles = tuple(TilePlan(k=k, bands=tuple(items[start:start + row_groups]))
                  for k, items in by_k.items() for start in range(0, len(items), row_groups))
    useful = sum(shape.macs for shape in shapes)
    timing = predict_cycles(config, [tile.k // config.group_size for tile in tiles], useful_macs=useful) \
        if tiles else None
    return StageSchedule(config=config, shapes=shapes, tiles=tiles, timing=timing)


def layer_shapes(counts: Sequence[int], hidden: int, ffn: int, shared_ffn: int | None = None,
                 tokens: int | None = None) -> tuple[list[GemmShape], list[GemmShape]]:
    """Stage 1 (gate, up) and stage 2 (down) GEMM shapes of a layer whose expert e gets
    ``counts[e]`` tokens; a shared expert of width ``shared_ffn`` sees all ``tokens``."""
    widths = [(e, m, ffn) for e, m in enumerate(counts)]
    if shared_ffn is not None:
        if tokens is None:
            raise MapperError("tokens=None: a shared expert needs the layer's token count")
        widths.append((len(counts), tokens, shared_ffn))
    stage1 = [GemmShape(e, name, m, width, hidden) for e, m, width in widths for name in ("gate", "up")]
    stage2 = [GemmShape(e, "down", m, hidden, width) for e, m, width in widths]
    return stage1, stage2


def map_layer(config: MixPEConfig, stage_shapes: tuple[Sequence[GemmShape], Sequence[GemmShape]]) -> LayerSchedule:
    """Schedules of both stages of a layer (:func:`layer_shapes`)."""
    return LayerSchedule(stages=tuple(map_stage(config, shapes) for shapes in stage_shapes))


def expert_schedules(config: MixPEConfig, stage_shapes: tuple[Sequence[GemmShape], Sequence[GemmShape]]
                     ) -> dict[int, LayerSchedule]:
    """Per expert, its own GEMMs mapped alone (what the array spends running that expert by itself);
    experts without tokens are left out."""
    experts = sorted({shape.expert for shapes in stage_shapes for shape in shapes if shape.m})
    return {e: map_layer(config, tuple([s for s in shapes if s.expert == e] for shapes in stage_shapes))
            for e in experts}

