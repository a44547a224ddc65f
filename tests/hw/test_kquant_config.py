"""scale_mode="kquant": validation, the super-block sum widths against their worst cases, the GDU
stages it adds, and the hashes of flat configurations unchanged."""

import pytest

from hw.config import KQUANT_SUPER_BLOCK, ConfigError, MixPEConfig, from_preset

Q4_K = MixPEConfig(rows=4, cols=4, group_size=32, zero_mode="float_offset", scale_mode="kquant")
Q6_K = MixPEConfig(rows=4, cols=4, weight_bits=6, weight_encoding="signed", group_size=16, scale_mode="kquant")


def test_flat_is_the_default_and_keeps_the_hash():
    config = from_preset("w4a8-g32-4x4")
    assert config.scale_mode == "flat" and not config.kquant and config.superblock_groups == 1
    assert config.replace(scale_mode="flat").hash == config.hash
    assert config.replace(gdu_stages=0, gdu_lanes=4).hash == "788e9d536f2e"
    assert Q4_K.hash != Q4_K.replace(scale_mode="flat").hash
    assert (config.sub_sum_bits, config.min_sum_bits) == (config.dsum_bits, config.asum_bits)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"scale_mode": "q4_k"}, r"scale_mode='q4_k': allowed values are \('flat', 'kquant'\)"),
    ({"scale_mode": "kquant", "group_size": 512}, r"group_size=512: scale_mode='kquant' needs a group"),
])
def test_invalid_scale_modes_name_the_parameter(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        MixPEConfig(**kwargs)


@pytest.mark.parametrize("activation", ["int8", "fp16", "bf16"])
@pytest.mark.parametrize("config", [Q4_K, Q6_K, Q4_K.replace(weight_bits=2, group_size=16),
                                    Q6_K.replace(weight_bits=3), Q4_K.replace(weight_bits=8, group_size=8)],
                         ids=lambda c: f"w{c.weight_bits}-g{c.group_size}-{c.zero_mode}")
def test_superblock_sums_hold_their_worst_cases(config, activation):
    """S = sum_j sc_j * D_j and M = sum_j m_j * A_j over a super-block at their extremes fit the
    derived signed widths, and one bit less would not hold them."""
    config = config.replace(activation=activation)
    x_max = 2 ** (config.pe_act_bits - 1)                  # |x| <= 2**(a-1): -2**(a-1) is reached
    d_max = x_max * config.code_max * config.group_size    # |D_j|: codes 0 against z = 2**b - 1, or P itself
    sc_max = 2 ** 7 if config.sub_scale_signed else 2 ** 6 - 1
    s_max = sc_max * config.superblock_groups * d_max
    assert s_max < 2 ** (config.sub_sum_bits - 1) and s_max >= 2 ** (config.sub_sum_bits - 2)
    if config.float_offset:
        m_max = 63 * config.superblock_groups * x_max * config.group_size
        assert m_max < 2 ** (config.min_sum_bits - 1) and m_max >= 2 ** (config.min_sum_bits - 2)
    assert config.superblock_groups * config.group_size == KQUANT_SUPER_BLOCK


def test_kquant_adds_two_integer_stages():
    flat = Q4_K.replace(scale_mode="flat")
    assert list(Q4_K.gdu_stage_cycles)[:3] == ["dsum", "sub_scale", "sub_accumulate"]
    assert Q4_K.gdu_latency >= flat.gdu_latency + 2
    assert Q6_K.replace(gdu_stages=0).gdu_latency == Q6_K.replace(scale_mode="flat", gdu_stages=0).gdu_latency + 2
