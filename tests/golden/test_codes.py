"""Bit-exact model and error bound for FP4 E2M1 and power-of-two codes and E8M0 / E4M3 group scales
(:mod:`golden.codes`)."""

import pytest
import torch

from golden.codes import code_values, decoded_scales, random_format_operands, scale_field_bits
from golden.mpgemm import bitexact_mpgemm, error_bound, within_bound
from golden.operands import OperandError, QuantizedWeights
from hw.config import MixPEConfig

CONFIGS = {
    "mxfp4": MixPEConfig(rows=4, cols=4, group_size=32, weight_format="fp4_e2m1", scale_format="e8m0"),
    "nvfp4": MixPEConfig(rows=4, cols=4, group_size=16, weight_format="fp4_e2m1", scale_format="e4m3"),
    "fp4_fp16": MixPEConfig(rows=4, cols=4, group_size=32, weight_format="fp4_e2m1"),
    "pow2_b4": MixPEConfig(rows=4, cols=4, group_size=32, weight_format="pow2", weight_bits=4),
    "pow2_b3_fp16act": MixPEConfig(rows=4, cols=4, group_size=32, weight_format="pow2", weight_bits=3, activation="fp16"),
    "int4_e4m3": MixPEConfig(rows=4, cols=4, group_size=32, scale_format="e4m3"),
    "int4_e8m0_fp8act": MixPEConfig(rows=4, cols=4, group_size=32, scale_format="e8m0", activation="fp8_e4m3"),
}


def test_values_and_scales():
    fp4 = CONFIGS["mxfp4"]
    assert code_values(fp4, torch.arange(16)).tolist() == [0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6]
    scales = torch.tensor([2.0 ** -127, 2.0 ** -126, 2.0 ** -125, 1.0, 2.0 ** 127]).to(torch.float8_e8m0fnu)
    assert decoded_scales(fp4, scales).tolist() == [0.0, 0.0, 2.0 ** -126, 0.5, 2.0 ** 126]   # FTZ below 2**-126
    assert scale_field_bits(scales).tolist() == [0, 1, 2, 127, 254]
    assert scale_field_bits(torch.tensor([1.0, -2.0]).half()).tolist() == [0x3C00, 0xC000]


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("kind", ["uniform", "worst", "signs", "zeros"])
def test_bitexact_within_bound(name, kind):
    config = CONFIGS[name]
    x, act_scale, weights = random_format_operands(config, 5, 8, 4 * config.group_size, seed=19, kind=kind)
    result = bitexact_mpgemm(config, x, act_scale, weights)
    ok = within_bound(config, x, act_scale, weights, result)
    assert bool(ok.all()), f"{name}/{kind}: {int((~ok).sum())} outputs outside the bound"
    finite = torch.isfinite(error_bound(config, x, act_scale, weights))
    assert kind == "worst" or bool(finite.all())


def test_mxfp4_matches_the_dequantized_gemm_exactly_when_no_rounding_happens():
    """One group, one token, act scale 1: x . (E2M1 x 2^e) is an exact small sum in FP32."""
    config = CONFIGS["mxfp4"]
    codes = torch.arange(32).remainder(16)[None, :]
    scales = torch.tensor([[2.0 ** -3]]).to(torch.float8_e8m0fnu)
    weights = QuantizedWeights(codes=codes, scales=scales, zeros=torch.zeros(1, 1, dtype=torch.int64))
    x = torch.arange(-16, 16)[None, :]
    expected = float((x.double() * code_values(config, codes)).sum()) * 2.0 ** -3
    assert bitexact_mpgemm(config, x, torch.ones(1), weights).item() == expected


def test_flushed_e8m0_scales_are_within_the_bound():
    config = CONFIGS["mxfp4"]
    x, act_scale, weights = random_format_operands(config, 3, 4, 64, seed=5)
    tiny = torch.tensor([[2.0 ** -127, 1.0]] * 4).to(torch.float8_e8m0fnu)
    weights = QuantizedWeights(codes=weights.codes, scales=tiny, zeros=weights.zeros)
    result = bitexact_mpgemm(config, x, act_scale, weights)
    assert bool(within_bound(config, x, act_scale, weights, result).all())


@pytest.mark.parametrize("scales, fragment", [
    (torch.tensor([[float("nan")]]).to(torch.float8_e8m0fnu), "e8m0 scales must not be NaN"),
    (torch.tensor([[1.0]]).half(), "float8_e8m0fnu"),
])
def test_bad_scales_are_operand_errors(scales, fragment):
    weights = QuantizedWeights(codes=torch.zeros(1, 32, dtype=torch.int64), scales=scales,
                               zeros=torch.zeros(1, 1, dtype=torch.int64))
    with pytest.raises(OperandError, match=fragment):
        bitexact_mpgemm(CONFIGS["mxfp4"], torch.ones(1, 32, dtype=torch.int64), torch.ones(1), weights)


def test_signed_codes_refuse_zero_points():
    weights = QuantizedWeights(codes=torch.zeros(1, 32, dtype=torch.int64), scales=torch.ones(1, 1).half(),
                               zeros=torch.full((1, 1), 8))
    with pytest.raises(OperandError, match="carry their own sign, so every zero point is 0"):
        bitexact_mpgemm(CONFIGS["pow2_b4"], torch.ones(1, 32, dtype=torch.int64), torch.ones(1), weights)
