"""The ``gdu`` bench's lane tiles (``verif/benches/gdu``): every column of a lane in the same tile, in
the order the core feeds a lane, checked on the host side without a simulator."""

import random

import pytest

from hw.config import MixPEConfig, from_preset
from verif.benches.gdu.host import golden_tile, job, lane_schedule, lane_tile

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
