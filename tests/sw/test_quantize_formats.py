"""Quantizers of :mod:`sw.quantize_formats`: DenseShift-style power-of-two, MXFP4 (against gguf-py),
NVFP4, FireQ with and without its power-of-two tensor multiplier; the core runs each bit-exactly."""

import numpy as np
import pytest
import torch

from golden.codes import tensor_scaled_bound, tensor_scaled_mpgemm
from golden.operands import OperandError, quantize_activations_int8
from hw.codes import pe_value
from hw.config import MixPEConfig
from sw.quantize_formats import (e4m3_underflow, quantize_fireq, quantize_mxfp4, quantize_nvfp4, quantize_pow2,
                                 real_weights)

POW2 = MixPEConfig(rows=4, cols=4, group_size=32, weight_format="pow2", weight_bits=3)
MXFP4 = MixPEConfig(rows=4, cols=4, group_size=32, weight_format="fp4_e2m1", scale_format="e8m0")
NVFP4 = MixPEConfig(rows=4, cols=4, group_size=16, weight_format="fp4_e2m1", scale_format="e4m3")
FIREQ = MixPEConfig(rows=4, cols=4, group_size=32, scale_format="e4m3")


def weights(n=8, k=64, seed=1, sigma=0.02):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * sigma


def test_pow2_codes_are_the_nearest_level_of_their_scale():
    w = weights()
    quantized = quantize_pow2(POW2, w)
    scales = quantized.weights.scales.double().repeat_interleave(32, dim=1)
    levels = torch.tensor([pe_value("pow2", 3, code) for code in range(8)], dtype=torch.float64)
    errors = (w[..., None] - levels * scales[..., None]).abs()
    chosen = errors.gather(-1, quantized.weights.codes[..., None])[..., 0]
    assert torch.equal(chosen, errors.min(dim=-1).values)      # nearest of the 8 levels, no zero among them
    assert float((real_weights(quantized) - w).norm() / w.norm()) < 0.2


def test_pow2_scales_of_tiny_weights_stay_normal_fp16():
    quantized = quantize_pow2(POW2, weights(sigma=1e-6))
    assert float(quantized.weights.scales.double().min()) >= 2 ** -14


def test_mxfp4_matches_gguf_away_from_ties_and_rounds_ties_to_even():
    gguf = pytest.importorskip("gguf")
    w = weights(16, 256).float().numpy()
    w[0, :32] = 0.0                                             # an all-zero block: E8M0 code 0
    ours = real_weights(quantize_mxfp4(MXFP4, torch.from_numpy(w).double())).numpy()
    theirs = gguf.quants.dequantize(gguf.quants.quantize(w, gguf.GGMLQuantizationType.MXFP4),
                                    gguf.GGMLQuantizationType.MXFP4)
    assert np.array_equal(ours, theirs.astype(np.float64))
    tie = torch.zeros(1, 32, dtype=torch.float64)
    tie[0, :2] = torch.tensor([0.75, 4.0])                      # block scale 1: 0.75 is halfway between 0.5 and 1
    assert real_weights(quantize_mxfp4(MXFP4, tie))[0, 0] == 1.0    # OCP: to the even mantissa (llama.cpp: 0.5)


@pytest.mark.parametrize("quantize, config", [(quantize_pow2, POW2), (quantize_mxfp4, MXFP4), (quantize_nvfp4, NVFP4),
                                              (quantize_fireq, FIREQ)], ids=["pow2", "mxfp4", "nvfp4", "fireq"])
def test_core_runs_the_quantized_weights_within_the_bound(quantize, config):
    w = weights(6, 64)
    quantized = quantize(config, w)
    x, act_scale = quantize_activations_int8(torch.randn(3, 64, generator=torch.Generator().manual_seed(2)))
    result = tensor_scaled_mpgemm(config, x, act_scale, quantized.weights, quantized.tensor_scale)
    reference, bound = tensor_scaled_bound(config, x, act_scale, quantized.weights, quantized.tensor_scale)
    assert bool(((result.double() - reference).abs() <= bound).all())
    y_float = (x.double() * act_scale.double()[:, None]) @ real_weights(quantized).T
    assert torch.allclose(reference, y_float, rtol=1e-12, atol=1e-12)


def test_fp_activations_take_the_tensor_scale_after_the_core():
    config = NVFP4.replace(activation="fp16")
    quantized = quantize_nvfp4(config, weights(4, 32))
    x = torch.randn(2, 32, generator=torch.Generator().manual_seed(4)).half()
    result = tensor_scaled_mpgemm(config, x, None, quantized.weights, quantized.tensor_scale)
    reference, bound = tensor_scaled_bound(config, x, None, quantized.weights, quantized.tensor_scale)
    assert bool(((result.double() - reference).abs() <= bound).all())


def test_fireq_multiplier_keeps_the_scales_normal():
    w = weights(8, 128)
    with_multiplier = quantize_fireq(FIREQ, w)
    stored = with_multiplier.weights.scales.double()
    assert 224 <= float(stored.max()) <= 448 and float(stored.min()) >= 2 ** -6
    assert with_multiplier.tensor_scale == 2.0 ** -15                # weights of 0.02: scales near 0.005
    without = quantize_fireq(FIREQ, w, tensor_multiplier=False)
    raw = (w.view(8, 4, 32).amax(-1) - w.view(8, 4, 32).amin(-1)) / 15
    lost = e4m3_underflow(raw)
    assert lost["subnormal"] == lost["scales"] == 32 and lost["to_zero"] == 0
    error = {name: float((real_weights(q) - w).norm() / w.norm()) for name, q in (("with", with_multiplier),
                                                                                 ("without", without))}
    assert error["with"] < error["without"]


def test_quantizers_check_the_configuration():
    with pytest.raises(OperandError, match="quantize_mxfp4 needs weight_format='fp4_e2m1', scale_format='e8m0'"):
        quantize_mxfp4(NVFP4, weights())
    with pytest.raises(OperandError, match="quantize_pow2 needs 'pow2'"):
        quantize_pow2(FIREQ, weights())
