"""The operands of the FP32 units bench (``verif/benches/fp32``) reach what its docstring promises,
checked on the host side without a simulator."""

import random

import pytest

from hw.config import from_preset
from hw.fp_stages import ADDER_CUTS
from verif.benches.fp32.harness import harness_latency, unit_specs
from verif.benches.fp32.host import (ONE, SINGLE_BIT_NANS, adder_operands, fp16_codes, int_operands, job,
                                     multiplier_operands)


def test_units_follow_the_gdu_parameters():
    assert unit_specs(from_preset("w4a8-g32-4x4")) == {
        "to_float": ("int_to_float", 17), "widen": ("widen", 16), "scale_mul": ("multiplier", 0), "adder": ("adder", 0)}
    fp16 = from_preset("w4a16-g32-4x4")
    assert unit_specs(fp16)["scale_mul"] == ("multiplier", fp16.lsb_exponent_bits)
    offsets = fp16.replace(zero_mode="float_offset")
    assert unit_specs(offsets)["asum_to_float"] == ("int_to_float", offsets.asum_bits)
    assert harness_latency(fp16) == 1 + len(ADDER_CUTS)  # the adder is the deepest unit at 5 stages


@pytest.mark.parametrize("width", [17, 27, 33])
def test_int_operands_put_the_leading_one_everywhere(width):
    values = int_operands(width, random.Random(1))
    assert all(-(2 ** (width - 1)) <= v < 2 ** (width - 1) for v in values)
    for negative in (False, True):
        lengths = {abs(v).bit_length() for v in values if (v < 0) == negative}
        assert lengths >= set(range(1, width)), sorted(set(range(1, width)) - lengths)


def test_fp16_codes_hold_every_subnormal_of_both_signs():
    codes = set(fp16_codes(random.Random(1)))
    assert {sign | mantissa for sign in (0, 0x8000) for mantissa in range(0x400)} <= codes
    assert {0x7C00, 0xFC00, 0x7E00} <= codes


def test_multiplier_operands_reach_every_sticky_pattern():
    pairs = multiplier_operands(random.Random(1))

    def significand(raw):
        return raw & 0x7FFFFF | 1 << 23

    low_bits = [significand(a) * significand(b) % 2 ** 22 for a, b in pairs if (a >> 23 & 0xFF) not in (0, 255)
                and (b >> 23 & 0xFF) not in (0, 255)]
    # 2^22 - 2^j (ones from bit j up to the guard region) and 2^j, for every j.
    assert {2 ** 22 - 2 ** j for j in range(22)} | {2 ** j for j in range(22)} <= set(low_bits)


def test_adder_operands_cancel_to_every_leading_zero_count():
    pairs = adder_operands(random.Random(1))
    differences = [abs((a & 0x7FFFFFFF) - (b & 0x7FFFFFFF)) for a, b in pairs if (a ^ b) >> 31]
    assert {d.bit_length() for d in differences} >= set(range(1, 28))


def test_job_expectations_are_raw_fp32():
    units = job(from_preset("w4a16-g32-4x4"), seed=1)["units"]
    assert set(units) == {"to_float", "widen", "scale_mul", "adder"}
    for unit in units.values():
        assert len(unit["vectors"]) == len(unit["expected"]) and all(0 <= e < 2 ** 32 for e in unit["expected"])
    assert units["scale_mul"]["ports"] == ["a", "b", "exp_offset"]


@pytest.mark.parametrize("operands", [adder_operands, multiplier_operands])
def test_binary_units_get_a_nan_with_each_single_mantissa_bit(operands):
    pairs = set(operands(random.Random(1)))
    for bit in range(23):
        for sign in (0, 1 << 31):
            nan = sign | 0x7F800000 | 1 << bit
            assert nan in SINGLE_BIT_NANS and {(nan, ONE), (ONE, nan)} <= pairs, hex(nan)


def test_adder_operands_hold_ties_a_sticky_bit_breaks_at_every_alignment_shift():
    """For every exponent difference 3..25 and both effective operations (but addition at 25, where
    none exists): pairs whose smaller operand's shifted-out bits are 0 and whose sum changes when its
    last mantissa bit is set (a sticky bit of 1, as a wrong shifted-out mask would give)."""
    import torch

    from golden.fp32 import bits, fadd32, from_bits

    pairs = [(a, b) if a & 0x7FFFFFFF >= b & 0x7FFFFFFF else (b, a) for a, b in adder_operands(random.Random(1))]
    pairs = [(a, b) for a, b in pairs if 0 < b >> 23 & 0xFF and a >> 23 & 0xFF < 255]

    def added(pairs_):
        return bits(fadd32(*(from_bits(torch.tensor([p[i] for p in pairs_], dtype=torch.int64)) for i in (0, 1)))).tolist()

    shift = [(a >> 23 & 0xFF) - (b >> 23 & 0xFF) for a, b in pairs]
    kept = [s >= 3 and (b & ((1 << min(s - 1, 23)) - 1)) == 0 for (a, b), s in zip(pairs, shift)]    # below the guard: 0
    ties = [(pair, s) for pair, s, keep, tie, broken in zip(pairs, shift, kept, added(pairs),
                                                            added([(a, b | 1) for a, b in pairs])) if keep and tie != broken]
    reached = {(s, (a ^ b) >> 31) for (a, b), s in ties}
    assert reached >= {(s, subtract) for s in range(3, 26) for subtract in (0, 1)} - {(25, 0)}
