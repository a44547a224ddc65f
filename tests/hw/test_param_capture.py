"""The parameter capture (Amaranth simulator): each row reaches each column with its own group's
parameters and descriptor, with groups as close together as ``group_interval`` allows."""

import random

import pytest

from hw.config import MixPEConfig
from hw.layouts import group_layout, row_param_shape, zero_shape
from hw.param_capture import ParameterCapture

CONFIGS = [
    # C = 3R: the ping-pong registers are needed for the whole sweep of the last band's first row.
    MixPEConfig(rows=4, cols=12, group_size=8, row_groups=2, name="w4a8-g8-4x12-rg2"),
    MixPEConfig(rows=8, cols=4, group_size=8, row_groups=4, name="w4a8-g8-8x4-rg4"),
    MixPEConfig(rows=4, cols=4, group_size=8, activation="fp16", zero_mode="float_offset", row_groups=2,
                name="w4a16-g8-4x4-q41-rg2"),
    # Floating point: the edge register adds a cycle to the sweep (group_interval 10, 9 without it).
    MixPEConfig(rows=4, cols=15, group_size=8, activation="fp16", row_groups=2, gdu_lanes=15, name="w4a16-g8-4x15-rg2"),
    # GDU lanes: 3 lanes of 5 and 4 of 4 columns (C not a multiple of the lanes); R = g.
    MixPEConfig(rows=8, cols=14, group_size=8, row_groups=2, gdu_lanes=3, name="w4a8-g8-8x14-rg2-L3"),
    MixPEConfig(rows=4, cols=7, group_size=32, activation="fp16", gdu_lanes=4, name="w4a16-g32-4x7-L4"),
]
#: Groups per tile.
TILES = [1, 3, 1, 2, 1]


def _random_group(config, rng, last):
    bands_x_cols = config.row_groups * config.cols
    return {
        "scale": [rng.getrandbits(16) for _ in range(bands_x_cols)],
        "zero": [rng.getrandbits(zero_shape(config).width) for _ in range(bands_x_cols)],
        "row_param": [rng.getrandbits(row_param_shape(config).width) for _ in range(config.rows)],
        "last": last,
    }


@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.name)
def test_rows_carry_their_group_parameters_to_every_column(config, simulate):
    rng = random.Random(config.name)
    rows, cols, g, interval = config.rows, config.cols, config.group_size, config.group_interval
    groups = [(tile, j == count - 1, j == 0) for tile, count in enumerate(TILES) for j in range(count)]
    params = [_random_group(config, rng, int(last)) for _, last, _ in groups]
    asums = [[rng.randrange(-2 ** (config.asum_bits - 1), 2 ** (config.asum_bits - 1)) for _ in range(rows)]
             for _ in groups]
    invalid = [[rng.randrange(2) for _ in range(rows)] for _ in groups]
    # Group j's steps issue at j * interval ... j * interval + g - 1 (the closest the scheduler allows).
    starts = [j * interval for j in range(len(groups))]
    ends = [start + g - 1 for start in starts]
    # Row r of group j reaches the sum inputs at t_L + issue_to_drain + r, and the lane of column c
    # (c mod L) carries it column_offset(c) cycles later, less the register before the GDU.
    drain, lanes = config.issue_to_drain, config.lanes
    before_gdu = 0 if lanes == cols else 1
    expected = {}
    for j, (tile, _, first) in enumerate(groups):
        for r in range(rows):
            band = r // config.band_rows
            for c in range(cols):
                expected[(ends[j] + drain + config.column_offset(c) - before_gdu + r, c % lanes)] = {
                    "row": r, "asum": asums[j][r], "row_param": params[j]["row_param"][r],
                    "first": int(first), "last": params[j]["last"], "bank": tile % 2, "parity": j % 2,
                    "scale": params[j]["scale"][band * cols + c], "zero": params[j]["zero"][band * cols + c],
                    **({"column": c // lanes} if config.columns_per_lane > 1 else {}),
                    **({"invalid": invalid[j][r]} if config.fp_activation else {})}
    garbage = rng.getrandbits(group_layout(config).size)
    dut = ParameterCapture(config)
    checked = []

    async def testbench(ctx):
        assert dut.latency == (0 if lanes == cols else 1)
        for cycle in range(ends[-1] + drain + config.column_offset(cols - 1) + rows):
            j = max([index for index, start in enumerate(starts) if start <= cycle], default=None)
            in_group = j is not None and cycle <= ends[j]
            group_start = not in_group or cycle == starts[j]
            ctx.set(dut.issue, in_group)
            ctx.set(dut.group_start, group_start)
            ctx.set(dut.group_end, in_group and cycle == ends[j])
            if in_group and cycle == starts[j]:
                tile, _, first = groups[j]
                ctx.set(dut.grp, params[j])
                ctx.set(dut.tile_start, first)
                ctx.set(dut.bank, tile % 2)
            else:                        # anything: only a group's first step is captured
                ctx.set(dut.grp.as_value(), garbage ^ cycle)
                ctx.set(dut.tile_start, rng.randrange(2))
                ctx.set(dut.bank, rng.randrange(2))
            if config.fp_activation and in_group:
                assert ctx.get(dut.e_max) == params[j]["row_param"], f"cycle {cycle}: shared exponents"
            # The activation-sum unit's rows: group j's row r at t_L + issue_to_drain + r.
            row_of = [(index, cycle - end - drain) for index, end in enumerate(ends) if 0 <= cycle - end - drain < rows]
            ctx.set(dut.sum_valid, bool(row_of))
            if row_of:
                index, r = row_of[0]
                ctx.set(dut.sum_row, r)
                ctx.set(dut.asum, asums[index][r])
                if config.fp_activation:
                    ctx.set(dut.sum_invalid, invalid[index][r])
            for lane in range(lanes):
                want = expected.get((cycle, lane))
                assert ctx.get(dut.info[lane].valid) == (want is not None), f"cycle {cycle} lane {lane}: valid"
                if want is None:
                    continue
                got = {name: ctx.get(getattr(dut.info[lane], name)) for name in want
                       if name not in ("scale", "zero", "column")}
                got.update(scale=ctx.get(dut.scale[lane]), zero=ctx.get(dut.zero[lane]))
                if "column" in want:
                    got["column"] = ctx.get(dut.column[lane])
                assert got == want, f"cycle {cycle} lane {lane}"
                checked.append((cycle, lane))
            await ctx.tick()

    simulate(dut, testbench)
    assert len(checked) == len(groups) * rows * cols
