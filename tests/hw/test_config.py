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


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
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
    ({"weight_bits": 5}, "weight_bits=5"),
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


@pytest.mark.parametrize("name", ["w4a8-g128", "w5a8-g128-16x16", "w4a8-g100-16x16", "w4a8-g128-0x16", ""])
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
    assert config.replace(gdu_stages=0).hash == "788e9d536f2e" != config.hash
    assert len({config.replace(gdu_stages=stages).hash for stages in range(MAX_GDU_STAGES + 1)}) == MAX_GDU_STAGES + 1
    assert config.to_dict()["derived"]["gdu_unit_stages"] == DEFAULT_GDU_STAGES
    assert MixPEConfig.from_dict(json.loads(config.replace(gdu_stages=2).to_json())).gdu_stages == 2
    assert config.replace(gdu_stages=0).gdu_latency == 5 < config.gdu_latency
    for bad in (-1, MAX_GDU_STAGES + 1, 2.0, True):
        with pytest.raises(ConfigError, match=f"gdu_stages={bad!r}: must be an integer from 0 to {MAX_GDU_STAGES}"):
            MixPEConfig(gdu_stages=bad)
