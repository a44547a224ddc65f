"""The issue scheduler (Amaranth simulator): the cycle model's schedule, and its rules under stalls."""

import random

import pytest

from golden.cycles import predict_cycles
from hw.config import MixPEConfig
from hw.issue import IssueScheduler

CONFIGS = [
    MixPEConfig(rows=4, cols=4, group_size=8, name="w4a8-g8-4x4"),             # interval = g
    MixPEConfig(rows=12, cols=2, group_size=8, name="w4a8-g8-12x2"),           # interval R > g
    MixPEConfig(rows=2, cols=20, group_size=8, name="w4a8-g8-2x20"),           # interval set by the sweep
    MixPEConfig(rows=8, cols=4, group_size=8, row_groups=4, name="w4a8-g8-8x4-rg4"),
]
#: Groups per tile: single-group tiles back to back wait for their bank.
TILES = [1, 1, 1, 3, 2, 1, 1, 4]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.name)
def test_free_flowing_schedule_matches_the_cycle_model(config, simulate):
    """Always-valid inputs, and each bank released on the cycle the cycle model reads its last row:
    the steps issue exactly where :func:`golden.cycles.predict_cycles` puts them."""
    report = predict_cycles(config, TILES)
    group_lasts = [int(j == groups - 1) for groups in TILES for j in range(groups)]
    issues = []
    dut = IssueScheduler(config)

    async def testbench(ctx):
        assert dut.latency == 0
        ctx.set(dut.step_valid, 1)
        ctx.set(dut.grp_valid, 1)
        group = 0
        for cycle in range(report.cycles + 1):
            ctx.set(dut.grp_last, group_lasts[min(group, len(group_lasts) - 1)])
            released = [int(cycle == done) << (tile % 2) for tile, done in enumerate(report.tile_done)]
            ctx.set(dut.bank_released, sum(released))
            if len(issues) == len(group_lasts) * config.group_size:
                ctx.set(dut.step_valid, 0)
            if ctx.get(dut.issue):
                issues.append(cycle)
                group += ctx.get(dut.group_end)
            await ctx.tick()

    simulate(dut, testbench)
    assert issues[0] == 0
    assert len(issues) == sum(TILES) * config.group_size
    assert issues[-1] == report.issue_cycles - 1
    assert report.issue_cycles - len(issues) == report.dequant_stalls + report.bank_stalls


@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.name)
def test_rules_hold_under_random_stalls(config, simulate):
    """Random input stalls and late bank releases: every rule of the schedule holds."""
    rng = random.Random(config.name)
    g, interval = config.group_size, config.group_interval
    log = {"group_starts": [], "group_ends": [], "steps": 0, "tiles": 0}
    dut = IssueScheduler(config)

    async def testbench(ctx):
        busy = [False, False]
        releases = {}                       # cycle -> bank
        expected_bank = 0
        step_in_group = 0
        for cycle in range(1500):
            step_valid, grp_valid = rng.random() < 0.7, rng.random() < 0.7
            tile_last = rng.random() < 0.4
            ctx.set(dut.step_valid, step_valid)
            ctx.set(dut.grp_valid, grp_valid)
            ctx.set(dut.grp_last, tile_last)
            released = releases.pop(cycle, None)
            ctx.set(dut.bank_released, 0 if released is None else 1 << released)
            issue, group_start = ctx.get(dut.issue), ctx.get(dut.group_start)
            assert group_start == (step_in_group == 0)
            if issue:
                assert step_valid
                log["steps"] += 1
                if group_start:
                    assert grp_valid, f"cycle {cycle}: a group started without its parameters"
                    log["group_starts"].append(cycle)
                    if ctx.get(dut.tile_start):
                        bank = ctx.get(dut.bank)
                        assert bank == expected_bank and not busy[bank], f"cycle {cycle}: bank {bank} busy"
                        busy[bank] = True
                        expected_bank ^= 1
                        log["tiles"] += 1
                        tile_bank = bank
                    assert ctx.get(dut.bank) == tile_bank
                    this_group_last_of_tile = tile_last
                step_in_group = (step_in_group + 1) % g
                assert ctx.get(dut.group_end) == (step_in_group == 0)
                if ctx.get(dut.group_end):
                    log["group_ends"].append(cycle)
                    if this_group_last_of_tile:
                        releases[cycle + rng.randrange(1, 3 * g)] = tile_bank
            else:
                assert not ctx.get(dut.group_end)
            if released is not None:
                busy[released] = False
            await ctx.tick()

    simulate(dut, testbench)
    starts, ends = log["group_starts"], log["group_ends"]
    assert log["tiles"] > 5 and len(ends) > 10
    assert min(b - a for a, b in zip(starts, starts[1:])) >= interval
    if interval > g:
        assert min(b - a for a, b in zip(ends, ends[1:])) >= interval
