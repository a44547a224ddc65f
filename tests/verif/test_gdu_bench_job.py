"""The ``gdu`` bench's lane tiles (``verif/benches/gdu``): every column of a lane in the same tile, in
the order the core feeds a lane, checked on the host side without a simulator."""

import random
import struct

import pytest

from hw.config import MixPEConfig, from_preset
from verif.benches.gdu.host import activation_range, golden_tile, job, lane_schedule, lane_tile

#: One lane for 4 columns of 4 rows (lane period R), and one whose lane period is the lane count.
ONE_LANE = MixPEConfig(rows=4, cols=4, group_size=8, gdu_lanes=1, name="w4a8-g8-4x4-L1")
WIDE_LANES = MixPEConfig(rows=2, cols=12, group_size=8, gdu_lanes=4, name="w4a8-g8-2x12-L4")


@pytest.mark.parametrize("config", [from_preset("w4a8-g128-16x16"), ONE_LANE, WIDE_LANES], ids=lambda c: c.name)
def test_lane_schedule_feeds_every_row_of_every_column_as_the_core(config):
    groups, interval, period = 3, config.group_interval, config.lane_period(config.lanes)
    beats = lane_schedule(config, groups)
    assert len(beats) == groups * interval
    cycle = {beat: index for index, beat in enumerate(beats) if beat is not None}
    assert len(cycle) == sum(beat is not None for beat in beats)      # no beat twice
    assert set(cycle) == {(j, c, r) for j in range(groups) for c in range(config.columns_per_lane)
                          for r in range(config.rows)}
    for (j, c, r), index in cycle.items():
        assert index == j * interval + c * period + r            # columns a lane period apart, rows in order


def test_lane_tile_sums_are_those_of_real_groups():
    config, g = from_preset("w4a8-g128-16x16"), 128
    tile = lane_tile(config, random.Random(1), "tile", bank=1)
    assert tile["bank"] == 1 and len(tile["columns"]) == config.columns_per_lane
    for case in tile["columns"]:
        assert case["act_scales"] == tile["columns"][0]["act_scales"]      # a row's token scale, shared
        for psums, asums in zip(case["psums"], case["asums"]):
            for p, a in zip(psums, asums):
                assert -128 * g <= a <= 127 * g and abs(p) <= 128 * config.code_max * g
        assert all(0 <= zero <= config.code_max for zero in case["zeros"])


def test_lane_tiles_tell_every_column_apart():
    """A write of one column's result into another column's word must change what is read back."""
    lane_tiles = job(ONE_LANE, 3)["lane_tiles"]
    assert [tile["bank"] for tile in lane_tiles] == [0, 1]
    for tile in lane_tiles:
        results = [case["expected"] for case in tile["columns"]]
        for r in range(ONE_LANE.rows):
            assert len({column[r] for column in results}) == ONE_LANE.columns_per_lane
        case = tile["columns"][2]
        assert case["expected"] == golden_tile(case["psums"], case["asums"], case["scales"], case["zeros"],
                                               case["act_scales"])
    assert job(ONE_LANE.replace(gdu_lanes=4, name="w4a8-g8-4x4-L4"), 3)["lane_tiles"] == []


FP16_ACTIVATIONS = from_preset("w4a16-g128-16x16")


def test_fp_activation_cases_fit_the_row_sideband_and_the_sum_widths():
    """FP16 activations: every row carries a shared exponent field and an invalid flag per group
    (no token scale), and the sums are those of aligned significands, reaching the widths' ends."""
    from hw.layouts import pack, row_info_layout

    config = FP16_ACTIVATIONS
    low, high = activation_range(config)
    assert (low, high) == (-(2047 << config.guard), 2047 << config.guard)
    result = job(config, 1)
    cases = result["cases"] + [case for tile in result["lane_tiles"] for case in tile["columns"]]
    top = (1 << config.act_exp_bits) - 1
    for case in cases:
        assert "act_scales" not in case
        for j, (exponents, invalid) in enumerate(zip(case["exponents"], case["invalid"])):
            for r, (e, bad) in enumerate(zip(exponents, invalid)):
                if case["name"] != "extreme_exponents":          # as the FP16 core: 2**E - 1 only on invalid rows
                    assert 1 <= e <= top and (e < top or bad)
                pack(row_info_layout(config), {"valid": 1, "row": r, "asum": case["asums"][j][r], "row_param": e,
                                               "invalid": bad, "first": 1, "last": 1, "bank": 0, "parity": 0})
                assert abs(case["psums"][j][r]) < 1 << (config.psum_bits - 1)
    by_name = {case["name"]: case for case in result["cases"]}
    assert abs(by_name["largest_negative_D"]["psums"][0][0]) == -low * config.code_max * config.group_size
    assert by_name["sign_changes_cancel"]["expected"] == [0] * config.rows
    for tile in result["lane_tiles"]:                       # a lane's columns share their rows' groups
        assert all(case["exponents"] == tile["columns"][0]["exponents"] for case in tile["columns"])
    for case in by_name["random"], *(tile["columns"][0] for tile in result["lane_tiles"]):
        for r in range(config.rows):     # a row's groups close in exponent: no group's term vanishes
            row = [exponents[r] for exponents in case["exponents"]]
            assert max(row) - min(row) <= 4
    flags = [bad for case in cases for row in case["invalid"] for bad in row]
    assert 0 < sum(flags) < len(flags) // 4


def test_fp_activation_golden_scales_by_the_lsb_exponent_and_nans_invalid_rows():
    """Term = fp32(D) * fp32(s) * 2**(e + lsb_exponent_offset); an invalid row's result is the
    canonical NaN; no token scale."""
    offset = FP16_ACTIVATIONS.lsb_exponent_offset          # -31 for FP16 with 6 guard bits
    one, two = 0x3C00, 0x4000
    expected = golden_tile([[3, 5]], [[0, 0]], [one], [0], None, exponents=[[31, 30]], invalid=[[0, 1]],
                           lsb_exponent_offset=offset)
    assert expected == [struct.unpack("<I", struct.pack("<f", 3.0 * 2.0 ** (31 + offset)))[0], 0x7FC00000]
    two_groups = golden_tile([[1, 1], [1, 1]], [[0, 0], [0, 0]], [one, two], [0, 0], None,
                             exponents=[[offset * -1, 1], [offset * -1, 1]], invalid=[[0, 0], [0, 0]],
                             lsb_exponent_offset=offset)
    assert two_groups == [struct.unpack("<I", struct.pack("<f", value))[0] for value in (3.0, 3.0 * 2.0 ** (1 + offset))]


def test_fp_activation_extreme_exponents_vary_every_exponent_bit_on_valid_rows():
    """The last case puts valid rows at the shared exponent fields 0 and 2**E - 1 (every bit of
    ``row_param`` both ways, k at both ends), alone and alternating in a row, with finite results."""
    config = FP16_ACTIVATIONS
    case = job(config, 1)["cases"][-1]
    top = (1 << config.act_exp_bits) - 1
    assert case["name"] == "extreme_exponents" and not any(map(any, case["invalid"]))
    rows = [[exponents[r] for exponents in case["exponents"]] for r in range(config.rows)]
    assert {frozenset(row) for row in rows} == {frozenset({top}), frozenset({0}), frozenset({0, top})}
    assert all(value & 0x7F800000 != 0x7F800000 for value in case["expected"])    # no Inf or NaN
