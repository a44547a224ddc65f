"""Configuration object: presets, validation messages, derived widths, JSON round trip."""

import json

import pytest

from hw.config import (DEFAULT_GDU_STAGES, DEFAULT_PRESET, MAX_GDU_STAGES, PRESETS, ConfigError, MixPEConfig, from_preset,
                       load_config)


def test_default_preset():
    config = from_preset(DEFAULT_PRESET)
    assert (config.rows, config.cols, config.weight_bits, config.activation, config.group_size) == \
        (16, 16, 4, "int8", 128)
    assert config.name == "w4a8-g128-16x16"


@pytest.mark.parametrize("name", PRESETS)
def test_every_named_preset_parses(name):
    assert from_preset(name).name == name


def test_derived_widths_w4a8_g128():
    config = from_preset("w4a8-g128-16x16")
    assert config.product_bits == 12     # |x*Q| <= 128*15 = 1920 < 2**11
    assert config.psum_bits == 19        # |P| <= 128*15*128 = 245760 < 2**18
    assert config.asum_bits == 15        # A in [-16384, 16256]
    assert config.dsum_bits == 19        # |D| = |sum (Q-z) x| <= 245760
    assert config.group_interval == 128
    assert config.dsum_exact_in_fp32


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("group", [8, 128, 1024])
def test_widths_hold_worst_case(bits, group):
    config = MixPEConfig(weight_bits=bits, group_size=group)
    top = 2 ** bits - 1
    worst_p = -128 * top * group
    worst_d = 128 * top * group          # codes 0, zero point top, all x = -128
    assert -(2 ** (config.psum_bits - 1)) <= worst_p
    assert worst_d < 2 ** (config.dsum_bits - 1)
    assert -(2 ** (config.asum_bits - 1)) <= -128 * group and 127 * group < 2 ** (config.asum_bits - 1)


def test_group_interval_counts_dequant_stalls():
    assert from_preset("w4a8-g8-16x8").group_interval == 16          # R > g
    assert from_preset("w4a8-g8-4x32").group_interval == 17          # ping-pong params: 2*17 >= 33
    assert from_preset("w4a8-g32-32x32").dequant_stall_per_group == 0


@pytest.mark.parametrize("kwargs, fragment", [
    ({"rows": 0}, "rows=0"),
    ({"cols": 500}, "cols=500"),
    ({"weight_bits": 9}, "weight_bits=9"),
    ({"group_size": 96}, "group_size=96"),
    ({"group_size": 4}, "group_size=4"),
    ({"activation": "fp64"}, "activation='fp64'"),
    ({"weight_encoding": "nf4"}, "weight_encoding='nf4'"),
    ({"rows": 2.0}, "rows=2.0"),
    ({"name": "bad name"}, "name="),
    ({"zero_mode": "q4_1"}, "zero_mode='q4_1': allowed values are"),
    ({"zero_mode": "float_offset", "weight_encoding": "signed"}, "weight_encoding='signed': zero_mode='float_offset'"),
])
def test_invalid_configs_name_the_parameter(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        MixPEConfig(**kwargs)


@pytest.mark.parametrize("name", ["w4a8-g128", "w9a8-g128-16x16", "w4a8-g100-16x16", "w4a8-g128-0x16", ""])
def test_bad_preset_names(name):
    with pytest.raises(ConfigError):
        from_preset(name)


def test_json_round_trip(tmp_path):
    config = from_preset("w3a8-g64-8x8").replace(weight_encoding="signed")
    path = tmp_path / "mine.json"
    path.write_text(config.to_json())
    loaded = load_config(path=path)
    assert loaded.replace(name=config.name) == config
    assert json.loads(config.to_json())["derived"]["psum_bits"] == config.psum_bits
    assert loaded.hash == config.hash


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(path=tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(path=bad)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"rows": 4, "colums": 4}))
    with pytest.raises(ConfigError, match="colums"):
        load_config(path=unknown)


def test_float_offset_mode_round_trips_and_changes_the_hash(tmp_path):
    config = from_preset("w4a8-g32-4x4").replace(zero_mode="float_offset")
    path = tmp_path / "q41.json"
    path.write_text(config.to_json())
    loaded = load_config(path=path)
    assert loaded.zero_mode == "float_offset" and loaded.hash == config.hash
    assert config.hash != from_preset("w4a8-g32-4x4").hash
    assert config.to_dict()["params"]["zero_mode"] == "float_offset"
    assert config.replace(gdu_stages=0).result_offset == from_preset("w4a8-g32-4x4").replace(gdu_stages=0).result_offset + 1
    assert "term" in config.gdu_stage_cycles and "term" not in from_preset("w4a8-g32-4x4").gdu_stage_cycles
    assert from_preset("w4a8-g32-4x4").zero_mode == "integer"


def test_gdu_stages_default_validation_and_hash():
    """The GDU's FP32 units are pipelined by default (DEFAULT_GDU_STAGES); the hash changes with
    the hardware: gdu_stages=0 (the first release's combinational units) keeps the old hash, the
    default and every other depth get their own."""
    config = from_preset("w4a8-g32-4x4")
    assert config.gdu_stages is None and config.gdu_unit_stages == DEFAULT_GDU_STAGES
    assert config.replace(gdu_stages=DEFAULT_GDU_STAGES).hash == config.hash
    assert config.replace(gdu_stages=0, gdu_lanes=4).hash == "788e9d536f2e" != config.replace(gdu_stages=0).hash
    assert len({config.replace(gdu_stages=stages).hash for stages in range(MAX_GDU_STAGES + 1)}) == MAX_GDU_STAGES + 1
    assert config.to_dict()["derived"]["gdu_unit_stages"] == DEFAULT_GDU_STAGES
    assert MixPEConfig.from_dict(json.loads(config.replace(gdu_stages=2).to_json())).gdu_stages == 2
    assert config.replace(gdu_stages=0).gdu_latency == 5 < config.gdu_latency
    for bad in (-1, MAX_GDU_STAGES + 1, 2.0, True):
        with pytest.raises(ConfigError, match=f"gdu_stages={bad!r}: must be an integer from 0 to {MAX_GDU_STAGES}"):
            MixPEConfig(gdu_stages=bad)


@pytest.mark.parametrize("name", ["w4a8-g128-16x16", "w4a8-g128-32x32", "w4a8-g128-64x64", "w4a16-g128-16x16",
                                  "w4a8-g32-4x4", "w4a8-g64-8x8", "w4a8-g8-4x4", "w4a8-g8-12x2", "w4a8-g8-2x20",
                                  "w4a8-g16-16x16", "w4a8-g32-5x7"])
def test_default_lanes_are_the_fewest_without_dequant_stalls(name):
    config = from_preset(name)
    lanes, per_column = config.lanes, config.replace(gdu_lanes=config.cols)
    assert config.gdu_lanes is None and lanes == config.default_lanes
    assert config.group_interval == per_column.group_interval
    if lanes > 1:
        assert config.interval_with_lanes(lanes - 1) > config.group_interval
    # Where a lane's work binds (a lane takes R cycles per column), the closed form.
    if lanes <= config.rows:
        assert lanes == -(-config.cols // (config.group_interval // config.rows))


def test_lanes_schedule_at_the_worst_case():
    """16x16, g = 128: 2 lanes of 8 columns, each 16 rows per column: exactly the group interval
    of work; 1 lane stalls (256 cycles per group); the last column is dequantized 7 lane periods
    (and the lane walk's 2 registers) after the first drain, column 15 = 1 + 7 * 2."""
    config = from_preset("w4a8-g128-16x16")
    assert (config.lanes, config.columns_per_lane, config.lane_period(2)) == (2, 8, 16)
    assert config.interval_with_lanes(2) == 128 == (8 - 1) * 16 + 16
    assert config.replace(gdu_lanes=1).group_interval == 256 and config.replace(gdu_lanes=1).dequant_stall_per_group == 128
    assert config.column_offset(15) == 1 + 7 * 16 + 2
    assert config.result_offset == config.issue_to_drain + config.column_offset(15) + config.gdu_latency
    # C not a multiple of the lanes: 3 lanes of 6, 5, 5 columns; column 15 is lane 0's sixth.
    three = config.replace(gdu_lanes=3)
    assert (three.columns_per_lane, three.column_offset(15), three.group_interval) == (6, 0 + 5 * 16 + 2, 128)
    # More lanes than rows: a lane period of L cycles (column l + L drains L cycles after column l).
    wide = MixPEConfig(rows=2, cols=20, group_size=8, gdu_lanes=10)
    assert wide.lane_period(10) == 10 and wide.group_interval == (2 - 1) * 10 + 2


def test_lanes_per_column_is_the_first_release_schedule():
    for name in ("w4a8-g128-16x16", "w4a8-g8-2x20", "w4a16-g8-4x4"):
        config = from_preset(name).replace(gdu_lanes=from_preset(name).cols)
        sweep = config.issue_to_drain + config.rows - config.band_rows + config.cols - 1
        assert config.group_interval == max(config.group_size, config.rows, (sweep + 1) // 2)
        assert config.result_offset == config.issue_to_drain + config.cols - 1 + config.gdu_latency
        assert config.columns_per_lane == 1 and config.column_offset(config.cols - 1) == config.cols - 1


def test_gdu_lanes_validation_and_hash():
    config = from_preset("w4a8-g128-16x16")
    assert config.replace(gdu_lanes=2).hash == config.hash                   # the default, resolved
    assert config.replace(gdu_lanes=16).hash != config.hash
    assert config.replace(gdu_stages=0, gdu_lanes=16).hash == "c865bb5096d1"  # the first release's core
    assert config.to_dict()["derived"]["lanes"] == 2 and config.to_dict()["params"]["gdu_lanes"] is None
    for bad in (0, 17, 1.5, True):
        with pytest.raises(ConfigError, match=f"gdu_lanes={bad!r}: must be an integer from 1 to cols=16"):
            config.replace(gdu_lanes=bad)
