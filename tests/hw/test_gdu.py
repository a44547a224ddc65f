# amaranth: UnusedElaboratable=no
"""The group-dequant unit in the Amaranth simulator, at every pipeline depth: bit-exact against the
golden FP32 chain (the GDU bench's cases), its latency, and the forwarding of a row's sum that is
still in the write stage when the row's next group reads it."""

import random

import pytest

from hw.config import GROUP_SIZES, MAX_GDU_STAGES, MixPEConfig, from_preset
from hw.fp_stages import ADDER_CUTS, MULTIPLIER_CUTS
from hw.gdu import GroupDequant
from hw.layouts import pack, row_info_layout
from verif.benches.gdu.host import job

SEED = 14

#: Every depth that changes the units (beyond it the multiplier and the adder have all their cut points).
DEPTHS = range(max(len(MULTIPLIER_CUTS), len(ADDER_CUTS)) + 1)


def run_cases(config: MixPEConfig, simulate, seed: int = SEED) -> tuple[list, list]:
    """Feed every case of the GDU bench (:mod:`verif.benches.gdu.host`), each row's groups
    ``group_interval`` cycles apart as the core sends them, case i into the lane's column
    i mod ``columns_per_lane``, read the bank back after ``gdu_latency`` cycles; returns
    (mismatches, cycles of the ``result_written`` pulses relative to their row's last-group input)."""
    dut = GroupDequant(config)
    columns = config.columns_per_lane
    cases = job(config, seed)["cases"]
    rows, layout = config.rows, row_info_layout(config)
    rng = random.Random(seed)
    garbage = (1 << 16) if config.float_offset else config.code_max + 1
    mismatches, written_after = [], []

    async def testbench(ctx):
        cycle, last_inputs = 0, []
        for index, case in enumerate(cases):
            bank, groups, column = index % 2, len(case["psums"]), index % columns
            if columns > 1:
                ctx.set(dut.column, column)
            for j in range(groups):
                for r in range(rows + config.group_interval - rows):
                    if r < rows:
                        ctx.set(dut.psum, case["psums"][j][r])
                        ctx.set(dut.info.as_value(), pack(layout, {
                            "valid": 1, "row": r, "asum": case["asums"][j][r], "row_param": case["act_scales"][r],
                            "first": int(j == 0), "last": int(j == groups - 1), "bank": bank, "parity": j % 2}))
                        first_of_band = r == 0  # the band's parameters; garbage on the other rows
                        ctx.set(dut.scale, case["scales"][j] if first_of_band else rng.randrange(1 << 16))
                        ctx.set(dut.zero, case["zeros"][j] if first_of_band else rng.randrange(garbage))
                        if j == groups - 1:
                            last_inputs.append(cycle)
                    else:
                        ctx.set(dut.info.as_value(), 0)
                    if ctx.get(dut.result_written):
                        written_after.append(cycle - last_inputs.pop(0))
                    await ctx.tick()
                    cycle += 1
            for _ in range(config.gdu_latency):
                if ctx.get(dut.result_written):
                    written_after.append(cycle - last_inputs.pop(0))
                await ctx.tick()
                cycle += 1
            for r in range(rows):
                ctx.set(dut.read_addr, bank * rows + r)
                got = ctx.get(dut.read_data) if columns == 1 else ctx.get(dut.read_data[column])
                if got != case["expected"][r]:
                    mismatches.append(f"{case['name']} row {r}: got {got:#010x} expected {case['expected'][r]:#010x}")

    simulate(dut, testbench)
    return mismatches, written_after


@pytest.mark.parametrize("stages", DEPTHS)
def test_bit_exact_at_every_depth(stages, simulate):
    config = from_preset("w4a8-g32-4x4").replace(gdu_stages=stages)
    mismatches, written_after = run_cases(config, simulate)
    assert not mismatches, f"gdu_stages={stages}: {mismatches[:4]}"
    assert set(written_after) == {config.gdu_latency - 1}, "result_written must pulse on the write, latency - 1"


@pytest.mark.parametrize("lanes", [1, 3, 4])
def test_bit_exact_in_lanes(lanes, simulate):
    """A lane of 4, 2 (and 1) columns: the accumulators of the lane's columns in one memory row,
    written word by word; results read back per column."""
    config = from_preset("w4a8-g32-4x4").replace(gdu_lanes=lanes)
    assert config.columns_per_lane == -(-4 // lanes)
    mismatches, _ = run_cases(config, simulate)
    assert not mismatches, mismatches[:4]


def test_bit_exact_with_float_offsets(simulate):
    config = from_preset("w4a8-g32-4x4").replace(zero_mode="float_offset")
    assert config.gdu_stage_cycles["term"] > 1
    mismatches, _ = run_cases(config, simulate)
    assert not mismatches, mismatches[:4]


@pytest.mark.parametrize("preset", ["w2a8-g8-1x4", "w4a8-g8-4x4"])
def test_forwards_the_sum_still_in_the_write_stage(preset, simulate):
    """g = 8 with the pipelined token multiplier: a row's next group reads its accumulator before
    the previous sum is written (1 row: every 8 cycles against an 11-cycle read-to-write loop)."""
    config = from_preset(preset)
    loop = config.accumulate_cycles + config.gdu_stage_cycles["write"]
    assert config.group_interval < loop, "the case must exercise the forwarding"
    mismatches, _ = run_cases(config, simulate)
    assert not mismatches, mismatches[:4]


@pytest.mark.parametrize("stages", range(MAX_GDU_STAGES + 1))
def test_sums_reach_the_write_stage_before_the_next_group(stages):
    """Forwarding from the write stage suffices: no depth makes the accumulate stage longer than
    the smallest group interval, so no dequant stall is needed for the accumulator."""
    for activation in ("int8", "fp16"):
        config = MixPEConfig(rows=1, cols=1, group_size=GROUP_SIZES[0], activation=activation, gdu_stages=stages)
        assert config.accumulate_cycles <= config.group_interval == GROUP_SIZES[0]


def test_latency_is_the_plan():
    for stages in DEPTHS:
        config = from_preset("w4a16-g128-16x16").replace(gdu_stages=stages)
        assert GroupDequant(config).latency == sum(config.gdu_stage_cycles.values()) == config.gdu_latency
    assert from_preset("w4a8-g32-4x4").replace(gdu_stages=0).gdu_latency == 5
    assert from_preset("w4a8-g32-4x4").replace(gdu_stages=0, zero_mode="float_offset").gdu_latency == 6


@pytest.mark.parametrize("preset", ["w5a8-g32-2x4", "w6a8-g32-2x4"])
def test_bit_exact_with_5_and_6_bit_codes(preset, simulate):
    """D = P - z*A with 5- and 6-bit zero points (one carry-save row per zero bit), bench edge cases included."""
    mismatches, _ = run_cases(from_preset(preset), simulate)
    assert not mismatches, mismatches[:4]


@pytest.mark.parametrize("changes", [{"weight_format": "fp4_e2m1", "scale_format": "e8m0"}, {"scale_format": "e4m3"}],
                         ids=["mxfp4", "int4_e4m3"])
def test_bit_exact_with_e8m0_and_e4m3_scales(changes, simulate):
    """The bench's cases with their scales in E8M0 (FP4's exponent offset included) or E4M3 (hw.scale_decode)."""
    mismatches, _ = run_cases(MixPEConfig(rows=2, cols=4, group_size=32, **changes), simulate)
    assert not mismatches, mismatches[:4]
