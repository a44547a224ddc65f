"""cocotb monitor sampling the functional coverage (:mod:`verif.coverage`) of the ``mpgemm`` core.

It watches the core's ports only (the Verilator builds keep internals private): every cycle, at
the falling clock edge (the bench drives its ports right after the rising edge, so they have
settled to the values the next rising edge takes), the ``valid``/``ready`` pair of each stream,
and the payload of each transfer.
From the transfers it replays the issue schedule the way :class:`hw.issue.IssueScheduler` keeps
it (step in the group, next step a tile's first, tiles holding an output bank, tiles draining),
so each stall is placed at the position of the next K step. Payloads are classified with table
look-ups and shifts; the per-cycle cost is eight one-bit reads.

Runs inside the simulator: no torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.triggers import FallingEdge

from hw.config import MixPEConfig
from hw.layouts import group_layout, result_layout
from verif.cocotb_util import SUMMARY_ENV
from verif.coverage import (COVERAGE_DIR_ENV, FLOAT_CLASSES, INPUT_STREAMS, INT8_CLASSES, PHASES, STEPS, Coverage,
                            activation_classes, bins_for, dequant_cause, geometry_bins)

__all__ = ["CoverageMonitor"]

_FP32_EXP_MASK = 0xFF
#: (stream, valid, step) -> stall bin; act and wgt transfer together, so when a step does not
#: issue both are stalled (one may be the bubble that back-pressures the other).
_STALL_BINS = {(stream, valid, step): f"stall.{stream}.{'backpressure' if valid else 'bubble'}.{step}"
               for stream in INPUT_STREAMS for valid in (0, 1) for step in STEPS}
_PHASE_BINS = {(name, phase): f"stall.{name.split('.')[1]}.during.{phase}"
               for name in _STALL_BINS.values() for phase in PHASES}


class _Tile:
    """What the monitor keeps of one tile until its last result row: per row whether it had a
    nonzero and an Inf/NaN activation, per band and column whether it had a nonzero scale."""

    def __init__(self, config: MixPEConfig):
        self.row_nonzero = [False] * config.rows
        self.row_invalid = [False] * config.rows
        self.scale_nonzero = [[False] * config.cols for _ in range(config.row_groups)]
        self.groups = 0


class CoverageMonitor:
    """Samples the coverage bins of one run of the ``mpgemm`` bench on ``dut``.

    ``steps``/``groups``: K steps and groups the run streams (a beat is due while fewer have
    transferred). Start it once reset is released; :meth:`finish` stops it, hits the counted
    classes, logs the summary line and writes the database when ``MIXPE_COVERAGE_DIR`` is set
    (not for mutated netlists: a ``+mutsel`` plusarg)."""

    def __init__(self, dut, config: MixPEConfig, *, steps: int, groups: int):
        self._dut, self._config = dut, config
        self.coverage = Coverage.defined(bins_for(config), config.name)
        for name in geometry_bins(config):
            self.coverage.hit(name)
        self._handles = [getattr(dut, f"{stream}__{signal}") for stream in ("act", "wgt", "grp", "res")
                         for signal in ("valid", "ready")]
        self._payload = {stream: getattr(dut, f"{stream}__payload") for stream in ("act", "wgt", "grp", "res")}
        self._total_steps, self._total_groups = steps, groups
        self._cause = dequant_cause(config)
        fmt = config.act_format
        classes = FLOAT_CLASSES if fmt.is_float else INT8_CLASSES
        self._act_class_names = [f"act.{fmt.name}.{cls}" for cls in classes]
        names = activation_classes(config)
        self._act_class = [classes.index(name) for name in names]
        self._act_nonzero = [name not in ("zero", "neg_zero") for name in names]
        self._act_invalid = [name in ("inf", "nan") for name in names]
        self._act_counts = [0] * len(classes)
        self._grp_fields = {name: field.offset for name, field in group_layout(config)}
        self._res_row_offset = dict(result_layout(config))["row"].offset
        self._zero_bits = 16 if config.float_offset else config.weight_bits
        self._code_counts = {"zero": 0, "max": 0, "other": 0}
        self._zero_point_counts = {"zero": 0, "max": 0}
        # Schedule state, as the issue scheduler keeps it.
        self._issued = self._groups_taken = 0
        self._step_in_group = 0
        self._next_is_tile_first = True
        self._grp_last = False
        self._tiles: list[_Tile] = []        # tiles started and not fully read out (at most two)
        self._tiles_ended = self._tiles_offered = 0
        self._res_row = 0
        self._first_row_offered = False
        self.unexpected: list[str] = []
        self._task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        falling = FallingEdge(self._dut.clk)
        while True:
            await falling
            self._sample()

    def _step(self) -> str:
        if self._step_in_group == 0:
            return "tile_first" if self._next_is_tile_first else "group_first"
        return "group_last" if self._step_in_group == self._config.group_size - 1 else "group_middle"

    def _sample(self) -> None:
        act_v, act_r, wgt_v, wgt_r, grp_v, grp_r, res_v, res_r = [int(h.value) for h in self._handles]
        hits = self.coverage.hits
        step = self._step()
        steps_due = self._issued < self._total_steps
        at_group_start = self._step_in_group == 0
        stalled = []
        if steps_due and not (act_v and act_r):
            stalled.append(_STALL_BINS["act", act_v, step])
            stalled.append(_STALL_BINS["wgt", wgt_v, step])
        if self._groups_taken < self._total_groups and not (grp_v and grp_r) and (grp_v or at_group_start):
            stalled.append(_STALL_BINS["grp", grp_v, step])
        if stalled:
            drain = self._tiles_ended > self._tiles_offered
            for name in stalled:
                hits[name] += 1
                if drain:
                    hits[_PHASE_BINS[name, "drain"]] += 1
                if res_v:
                    hits[_PHASE_BINS[name, "readout"]] += 1
        if steps_due and act_v and wgt_v and (grp_v or not at_group_start) and not act_r:
            self._core_stall(step)
        if res_v and not res_r:
            hits["res.backpressure.both_banks" if len(self._tiles) == 2 else "res.backpressure.one_bank"] += 1
        if res_v and not self._first_row_offered:
            self._first_row_offered = True
            self._tiles_offered += 1
        if act_v and act_r:
            self._issue(grp_v and grp_r)
        if res_v and res_r:
            self._result(self._payload["res"].value.to_unsigned())

    def _core_stall(self, step: str) -> None:
        if step == "tile_first" and len(self._tiles) == 2:
            self.coverage.hit("core.bank")
            return
        position = {"tile_first": "group_first", "group_first": "group_first", "group_last": "group_last"}.get(step)
        if position is None or self._cause is None:
            self.unexpected.append(f"step held back at {step} (step {self._issued})")
            return
        self.coverage.hit(f"core.interval.{position}")
        self.coverage.hit(f"dequant_stall.{self._cause}")

    def _issue(self, grp_transfer: bool) -> None:
        """A K step issued (and with a group's first step, its ``grp`` beat transferred)."""
        config = self._config
        if self._step_in_group == 0:
            if not grp_transfer:
                self.unexpected.append(f"group's first step {self._issued} issued without a grp beat")
            if self._next_is_tile_first:
                self._tiles.append(_Tile(config))
            self._tiles[-1].groups += 1
            self._group(self._payload["grp"].value.to_unsigned())
        tile = self._tiles[-1]
        self._activations(self._payload["act"].value.to_unsigned(), tile)
        self._codes(self._payload["wgt"].value.to_unsigned())
        self._issued += 1
        self._step_in_group += 1
        if self._step_in_group == config.group_size:
            self._step_in_group = 0
            self._next_is_tile_first = self._grp_last
            if self._grp_last:
                self._tile_ended(tile)

    def _group(self, payload: int) -> None:
        config, fields = self._config, self._grp_fields
        self._groups_taken += 1
        self._grp_last = bool(payload >> fields["last"] & 1)
        tile = self._tiles[-1]
        scales = payload >> fields["scale"]
        zeros = payload >> fields["zero"]
        zero_mask, code_max = (1 << self._zero_bits) - 1, config.code_max
        for band in range(config.row_groups):
            nonzero = tile.scale_nonzero[band]
            for column in range(config.cols):
                index = band * config.cols + column
                if scales >> (16 * index) & 0xFFFF:
                    nonzero[column] = True
                if not config.float_offset:
                    zero = zeros >> (self._zero_bits * index) & zero_mask
                    if zero == 0:
                        self._zero_point_counts["zero"] += 1
                    elif zero == code_max:
                        self._zero_point_counts["max"] += 1

    def _activations(self, payload: int, tile: _Tile) -> None:
        bits = self._config.act_bits
        mask = (1 << bits) - 1
        counts, classes, nonzero, invalid = self._act_counts, self._act_class, self._act_nonzero, self._act_invalid
        for row in range(self._config.rows):
            code = payload >> (row * bits) & mask
            counts[classes[code]] += 1
            if nonzero[code]:
                tile.row_nonzero[row] = True
                if invalid[code]:
                    tile.row_invalid[row] = True

    def _codes(self, payload: int) -> None:
        config = self._config
        bits, code_max = config.weight_bits, config.code_max
        counts = self._code_counts
        for index in range(config.row_groups * config.cols):
            code = payload >> (index * bits) & code_max
            counts["zero" if code == 0 else "max" if code == code_max else "other"] += 1

    def _tile_ended(self, tile: _Tile) -> None:
        config = self._config
        self._tiles_ended += 1
        self.coverage.hit("tile.one_group" if tile.groups == 1 else "tile.several_groups")
        if config.row_groups == 1:
            return
        band_rows = config.band_rows
        for band in range(config.row_groups):
            rows = sum(tile.row_nonzero[band * band_rows:(band + 1) * band_rows])
            columns = sum(tile.scale_nonzero[band])
            use = ("missing" if rows == 0 and columns == 0 else
                   "full" if rows == band_rows and columns == config.cols else "partial")
            self.coverage.hit(f"bands.{use}")

    def _result(self, payload: int) -> None:
        config, sample = self._config, self.coverage.sample
        if not self._tiles:          # a row of no tile: the scoreboard reports it as an extra beat
            self.unexpected.append("result row with no tile in flight")
            return
        tile = self._tiles[0]
        row = payload >> self._res_row_offset & ((1 << max(1, (config.rows - 1).bit_length())) - 1)
        band = row // config.band_rows
        for column in range(config.cols):
            value = payload >> (32 * column) & 0xFFFFFFFF
            exponent = value >> 23 & _FP32_EXP_MASK
            if exponent == _FP32_EXP_MASK:
                if value & 0x7FFFFF:
                    sample("result.nan")
                else:
                    sample("result.inf")
                    if not tile.row_invalid[row]:
                        sample("gdu.overflow")
            elif exponent == 0:
                sample("result.zero")
                if tile.row_nonzero[row] and tile.scale_nonzero[band][column]:
                    sample("gdu.zero_from_nonzero")
            else:
                sample("result.normal")
        self._res_row += 1
        if self._res_row == config.rows:
            self._res_row = 0
            self._first_row_offered = False
            self._tiles.pop(0)

    def finish(self, log) -> Coverage:
        """Stop sampling, add the counted classes, log the summary line, write the database when
        asked to; returns the run's coverage."""
        self._task.cancel()
        coverage = self.coverage
        width = f"w{self._config.weight_bits}"
        counted = [*zip(self._act_class_names, self._act_counts),
                   *((f"wgt.{width}.{code}", count) for code, count in self._code_counts.items()),
                   *((f"zero_point.{width}.{code}", count) for code, count in self._zero_point_counts.items())]
        for name, count in counted:
            if count and name in coverage.hits:
                coverage.hit(name, count)
        log.info("coverage (%s): %s", self._config.name, coverage.summary_line())
        for message in self.unexpected[:5]:
            log.warning("coverage monitor: %s", message)
        directory = os.environ.get(COVERAGE_DIR_ENV)
        if directory and not any(arg.startswith("mutsel") for arg in cocotb.plusargs):
            path = Path(directory)
            path.mkdir(parents=True, exist_ok=True)
            run = Path(os.environ[SUMMARY_ENV]).parent.name      # seed<n>-<unique>: one file per run
            name = f"mpgemm-{self._config.name}-{self._config.hash}-{run}.json"
            (path / name).write_text(json.dumps(coverage.to_json()))
        return coverage
