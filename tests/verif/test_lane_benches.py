"""GDU lanes on the RTL: fewer group-dequant units than columns, bit-exact against the golden model
and cycle-exact against the cycle model (stall-free runs), in the worst cases of the lane schedule.

The existing RTL tests run their configurations with the derived lanes (``gdu_lanes`` unset);
``test_every_scenario_with_one_lane_and_a_lane_per_column`` (slow) repeats them with 1 and C lanes.
"""

import pytest

from hw.config import MixPEConfig, from_preset
from verif.scenarios import banded_case, gemm_case, run_scenario

pytestmark = pytest.mark.rtl

#: R = g, C not a multiple of the lanes (2 and 1 columns), a lane's work (8 + 8 rows) is twice g:
#: dequant stalls (group_interval 16).
R_IS_G = MixPEConfig(rows=8, cols=3, group_size=8, gdu_lanes=2, name="w4a8-g8-8x3-L2")
#: One lane for 4 columns: dequant stalls (interval 16 > g = 8) and, with one-group tiles, bank stalls.
ONE_LANE = MixPEConfig(rows=4, cols=4, group_size=8, gdu_lanes=1, name="w4a8-g8-4x4-L1")
#: More rows than the group size (R = 12 > g): a lane period of 12 rows per column.
TALL = MixPEConfig(rows=12, cols=2, group_size=8, gdu_lanes=1, name="w4a8-g8-12x2-L1")
#: FP16 activations, float offsets and two row bands on one lane (the walked sideband carries the
#: shared exponents and invalid rows; the bands' parameters are selected per walked column).
FP_BANDS = from_preset("w4a16-g8-4x4").replace(zero_mode="float_offset", row_groups=2, gdu_lanes=1,
                                                name="w4a16-g8-4x4-q41-rg2-L1")


@pytest.mark.xdist_group(R_IS_G.name)
def test_lanes_not_dividing_the_columns_with_r_equal_to_g():
    assert R_IS_G.group_interval == 16 and R_IS_G.columns_per_lane == 2
    assert gemm_case(R_IS_G, 13, 7, 3 * R_IS_G.group_size, seed=41)


@pytest.mark.xdist_group(R_IS_G.name)
def test_lanes_random_stalls_on_every_stream():
    assert gemm_case(R_IS_G, 9, 5, 5 * R_IS_G.group_size, seed=42, stall=0.4)


@pytest.mark.xdist_group(ONE_LANE.name)
def test_one_lane_one_group_tiles_back_to_back():
    """12 tiles of one group: each waits for its output bank, as the cycle model predicts."""
    assert gemm_case(ONE_LANE, 12, 16, ONE_LANE.group_size, seed=43)


def test_one_lane_more_rows_than_the_group():
    assert TALL.group_interval == 24
    assert gemm_case(TALL, 12, 5, 4 * TALL.group_size, seed=44)


def test_fp_bands_on_one_lane_with_specials():
    assert banded_case(FP_BANDS, [(16, [(2, 4), (1, 3)]), (8, [(2, 2)])], seed=45, kind="specials")


#: The configurations of the RTL scenarios in test_block_benches, test_fp_benches and
#: test_row_group_benches (their derived lanes run there).
SWEPT = [
    from_preset("w4a8-g32-4x4"), from_preset("w3a8-g64-8x8"), from_preset("w4a8-g8-12x2"),
    from_preset("w4a8-g8-2x20"), from_preset("w4bf16-g8-3x2"), from_preset("w4e4m3-g16-3x2"),
    from_preset("w4a16-g8-4x4").replace(zero_mode="float_offset", row_groups=2, name="w4a16-g8-4x4-q41-rg2"),
    MixPEConfig(rows=8, cols=12, group_size=8, row_groups=4, name="w4a8-g8-8x12-rg4"),
]


@pytest.mark.slow
@pytest.mark.parametrize("lanes", ["one", "per_column"])
@pytest.mark.parametrize("config", SWEPT, ids=lambda config: config.name)
def test_every_scenario_with_one_lane_and_a_lane_per_column(config, lanes):
    count = 1 if lanes == "one" else config.cols
    config = config.replace(gdu_lanes=count, name=f"{config.name}-L{count}")
    scenario = "bands" if config.row_groups > 1 else "array"
    assert run_scenario(scenario, config, seed=46)
