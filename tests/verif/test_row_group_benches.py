"""Row groups on the RTL: every band with its own weights, bit-exact per band, cycle-exact when stall-free.

Replay a failing run with its printed seed (the configurations are built here; ``make sim
TEST=bands CONFIG=<config.json>`` runs the same scenario on any configuration).
"""

import pytest

from gen.lint import lint_verilog
from hw.config import MixPEConfig
from verif.scenarios import banded_case, gemm_case, run_scenario

pytestmark = pytest.mark.rtl

RG2 = MixPEConfig(rows=4, cols=4, group_size=8, row_groups=2, name="w4a8-g8-4x4-rg2")
RG4 = MixPEConfig(rows=8, cols=4, group_size=16, row_groups=4, name="w4a8-g16-8x4-rg4")
#: Worst case of the parameter ping-pong: the last band's first row (row 6) sweeps 12 columns, so
#: group_interval = ceil((8 - 2 + 12 + 1) / 2) = 10 > g = 8 (with one row group it would be 8).
SWEEP = MixPEConfig(rows=8, cols=12, group_size=8, row_groups=4, name="w4a8-g8-8x12-rg4")
#: More rows than the group size (interval R = 12 > g), bands of 6 rows (not a power of two).
TALL = MixPEConfig(rows=12, cols=4, group_size=8, row_groups=2, name="w4a8-g8-12x4-rg2")


@pytest.mark.xdist_group(RG2.name)
def test_two_bands_one_and_several_groups_partial_and_missing_bands():
    tiles = [
        (8, [(2, 4), (2, 4)]),             # one group, both bands full
        (24, [(1, 3), (2, 2)]),            # three groups, partial rows and columns
        (16, [(2, 4)]),                    # band 1 missing
        (8, [(1, 1), (1, 4)]),
    ]
    assert banded_case(RG2, tiles, seed=31)


@pytest.mark.xdist_group(RG4.name)
def test_four_bands_scenario_with_and_without_stalls():
    assert run_scenario("bands", RG4, seed=32)


@pytest.mark.xdist_group(RG4.name)
def test_four_experts_of_two_tokens_each_back_to_back():
    tiles = [(64, [(2, 4)] * 4), (16, [(2, 4), (1, 4), (2, 3), (1, 2)]), (32, [(2, 4)] * 4)]
    assert banded_case(RG4, tiles, seed=33, kind="worst")


def test_float_offsets_per_band():
    config = RG2.replace(zero_mode="float_offset", name="w4a8-g8-4x4-rg2-q41")
    assert banded_case(config, [(16, [(2, 4), (2, 3)]), (8, [(1, 4), (2, 4)])], seed=34)


@pytest.mark.xdist_group(RG2.name)
def test_plain_gemm_on_banded_core():
    """pack_gemm gives every band the tile's weights: a plain GEMM runs as on the plain array."""
    assert gemm_case(RG2, 7, 6, 24, seed=35)


def test_parameter_ping_pong_worst_case_sweep():
    tiles = [(8, [(2, 12)] * 4), (32, [(2, 12)] * 4), (24, [(2, 7), (1, 12), (2, 12), (2, 5)])]
    assert banded_case(SWEEP, tiles, seed=36)
    assert banded_case(SWEEP, tiles, seed=37, stall=0.3)


def test_more_rows_than_group_size_with_stalls():
    assert run_scenario("bands", TALL, seed=38)


@pytest.mark.parametrize("config", [RG2, SWEEP])
def test_lint_banded_core(config):
    report = lint_verilog(config)
    assert report.clean, report.output
