"""``make bench``'s lane table (cycle model only; the RTL runs of the benchmark are not tests)."""

from gen.bench import LONG_STREAM_TILES, UTILIZATION_TARGET, lane_table
from hw.config import from_preset


def test_lane_table_of_the_default_core():
    config = from_preset("w4a8-g128-16x16")
    table = {record["lanes"]: record for record in lane_table(config)}
    assert sorted(table) == [1, config.lanes, config.cols] and table[config.lanes]["configured"]
    long_stream = f"{LONG_STREAM_TILES} tiles K=4g"
    # Derived lanes add no dequant stall; their one-time tail is hidden by a long stream.
    derived = table[config.lanes]["streams"][long_stream]
    assert derived["dequant_stalls"] == 0 and derived["utilization"] >= UTILIZATION_TARGET
    assert table[config.lanes]["group_interval"] == table[config.cols]["group_interval"] == config.group_size
    # One lane does 16 columns of 16 rows per group: half the array's rate.
    assert table[1]["group_interval"] == 2 * config.group_size
    assert table[1]["streams"][long_stream]["dequant_stalls"] > 0
