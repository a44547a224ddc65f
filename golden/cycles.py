"""Cycle model of the MixPE core: predicts the RTL's cycle count for a stream of tiles exactly.

It replays the schedule rules of :mod:`hw.mpgemm` with free-flowing inputs and an always-ready
result stream:

* one K step issues per cycle; a group's first step waits until ``group_interval`` cycles have
  passed since the previous group's first step (the excess over g is a *dequant stall*: more rows
  than g, the parameters' sweep over the columns, or a GDU lane's work per group,
  :meth:`~hw.config.MixPEConfig.interval_with_lanes`); the RTL's matching rule for group ends
  only binds when inputs stall inside a group, never here;
* a tile's first step waits until its output bank (tiles alternate between two) has been read
  out (a *bank stall*);
* a tile whose last step issues at ``t_L`` offers result row r at ``t_L + result_offset + r``
  (``result_offset`` counts the edge registers, the drain of the last column by its GDU lane and
  the GDU's pipeline);
  the result stage sends one row per cycle, tiles in order, and frees the bank the cycle after
  the tile's last row.

Cycle 0 is the first issued K step; the count ends with the last result row, inclusive.

K-quants (``scale_mode="kquant"``) follow the same rules: the integer super-block sums add the
GDU's ``sub_scale`` and ``sub_accumulate`` stages to ``gdu_latency`` (so to ``result_offset``) and
nothing to the group interval; a tile is whole super-blocks (256 / g groups).
"""

from __future__ import annotations

import dataclasses

from hw.config import MixPEConfig

__all__ = ["CycleReport", "predict_cycles", "utilization"]


def utilization(config: MixPEConfig, useful_macs: int, cycles: int) -> float:
    """Useful MACs per cycle over the R x C array's peak: ``useful_macs / (R * C * cycles)``, 0 for no cycles."""
    return useful_macs / (config.rows * config.cols * cycles) if cycles else 0.0


@dataclasses.dataclass(frozen=True)
class CycleReport:
    """Predicted timing of a tile stream (all counts in cycles or MACs)."""
    cycles: int
    issue_cycles: int
    dequant_stalls: int
    bank_stalls: int
    array_macs: int
    useful_macs: int
    tile_done: tuple[int, ...]

    def utilization(self, config: MixPEConfig) -> float:
        """Useful MACs per cycle over the array's R x C peak (:func:`utilization`)."""
        return utilization(config, self.useful_macs, self.cycles)

    def to_dict(self, config: MixPEConfig) -> dict:
        result = dataclasses.asdict(self)
        result["tile_done"] = list(self.tile_done)
        result["utilization"] = self.utilization(config)
        result["macs_per_cycle"] = self.useful_macs / self.cycles
        return result


def predict_cycles(config: MixPEConfig, groups_per_tile: list[int],
                   useful_macs: int | None = None) -> CycleReport:
    """Cycles for tiles of ``groups_per_tile[i]`` groups each, streamed back to back.

    ``useful_macs`` (defaults to the full array) excludes padded rows and columns."""
    if not groups_per_tile:
        raise ValueError("groups_per_tile: need at least one tile")
    per_super = config.superblock_groups
    for index, groups in enumerate(groups_per_tile):
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups_per_tile[{index}]={groups!r}: every tile needs at least one group")
        if groups % per_super:
            raise ValueError(f"groups_per_tile[{index}]={groups}: scale_mode='kquant' tiles are whole super-blocks "
                             f"of {per_super} groups")
    g, rows = config.group_size, config.rows
    interval = config.group_interval
    next_issue = 0
    last_group_start = -interval
    bank_free_at = [0, 0]
    reader_free_at = 0
    dequant_stalls = bank_stalls = 0
    tile_done = []
    # Inside a tile every group after the first starts max(g, interval) cycles after the previous one.
    step = max(g, interval)
    for tile, groups in enumerate(groups_per_tile):
        bank = tile % 2
        start = max(next_issue, last_group_start + interval)
        dequant_stalls += start - next_issue + (groups - 1) * (step - g)
        if bank_free_at[bank] > start:
            bank_stalls += bank_free_at[bank] - start
            start = bank_free_at[bank]
        last_group_start = start + (groups - 1) * step
        next_issue = last_group_start + g
        last_step = next_issue - 1
        first_row = max(last_step + config.result_offset, reader_free_at)
        last_row = first_row + rows - 1
        reader_free_at = bank_free_at[bank] = last_row + 1
        tile_done.append(last_row)
    array_macs = config.rows * config.cols * g * sum(groups_per_tile)
    return CycleReport(
        cycles=tile_done[-1] + 1,
        issue_cycles=next_issue,
        dequant_stalls=dequant_stalls,
        bank_stalls=bank_stalls,
        array_macs=array_macs,
        useful_macs=array_macs if useful_macs is None else useful_macs,
        tile_done=tuple(tile_done),
    )
