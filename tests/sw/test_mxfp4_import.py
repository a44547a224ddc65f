"""gpt-oss-style MXFP4 expert tensors: the importer against gguf-py's MXFP4 quantize/dequantize and
transformers' gpt-oss dequantization, bit for bit, and on the core's FP4 E2M1 / E8M0 numerics."""

import gguf
import numpy as np
import pytest
import torch

from golden.fp_activations import decode_activations
from golden.mpgemm import bitexact_mpgemm, error_bound
from golden.operands import activation_operand
from hw.config import MixPEConfig
from sw.checkpoint import CheckpointError
from sw.mxfp4_import import E2M1_VALUES, core_for_mxfp4, from_ggml, import_mxfp4, mxfp4_tensors

MXFP4 = gguf.GGMLQuantizationType.MXFP4


def gguf_experts(seed=3, shape=(2, 24, 64)):
    """Seeded float weights (experts, N, K) quantized by gguf-py (llama.cpp's MXFP4 reference)."""
    w = (0.05 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
    w[0, 0, :32] = 0.0
    w[1, 2, 5] = 3.0
    return gguf.quants.quantize(w, MXFP4), shape


def gpt_oss_tensors(weights):
    """``_blocks`` (E, N, K/32, 16) and ``_scales`` (E, N, K/32) as gpt-oss stores them: element 2j
    in the low nibble of byte j, 2j + 1 in the high nibble."""
    codes = weights.codes.numpy().astype(np.uint8).reshape(*weights.exponents.shape, 16, 2)
    return torch.from_numpy(codes[..., 0] | (codes[..., 1] << 4)), weights.exponents.to(torch.uint8)


def test_gguf_blocks_round_trip_bit_exactly():
    data, shape = gguf_experts()
    weights = from_ggml(data, shape, "blk.0.ffn_up_exps.weight")
    reference = torch.from_numpy(gguf.quants.dequantize(data, MXFP4)).double()
    assert torch.equal(weights.dequantize(), reference)
    assert np.array_equal(weights.to_ggml(), data)


def test_gpt_oss_layout_matches_transformers():
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors
    data, shape = gguf_experts()
    expected = from_ggml(data, shape)
    blocks, scales = gpt_oss_tensors(expected)
    state = {"model.layers.0.mlp.experts.gate_up_proj_blocks": blocks,
             "model.layers.0.mlp.experts.gate_up_proj_scales": scales, "model.layers.0.mlp.router.weight": 0}
    (name, imported), = mxfp4_tensors(state, "model.layers.0.").items()
    assert name == "model.layers.0.mlp.experts.gate_up_proj"
    assert torch.equal(imported.codes, expected.codes) and torch.equal(imported.exponents, expected.exponents)
    hf = convert_moe_packed_tensors(blocks, scales, dtype=torch.float32)          # (E, K, N), the HF parameter
    assert torch.equal(hf.transpose(1, 2).double(), imported.dequantize())


def test_known_codes():
    blocks = torch.zeros(1, 1, 16, dtype=torch.uint8)
    blocks[0, 0, 0] = 0x2F                          # element 0: code 15 = -6; element 1: code 2 = +1
    weights = import_mxfp4(blocks, torch.tensor([[130]], dtype=torch.uint8))
    assert weights.codes[0, :2].tolist() == [15, 2] and E2M1_VALUES[15] == -6.0
    assert weights.dequantize()[0, :3].tolist() == [-48.0, 8.0, 0.0]          # scale 2^(130 - 127)


def test_experts_run_on_the_fp4_core_within_the_bound():
    data, shape = gguf_experts()
    weights = from_ggml(data, shape, "experts")
    weights.exponents[1, 3, 0] = 1                 # 2^-126: flushed to zero by the GDU, within the bound
    config = core_for_mxfp4(MixPEConfig(rows=4, cols=4, activation="fp16", group_size=32))
    x = activation_operand(config, torch.randn(5, shape[-1], generator=torch.Generator().manual_seed(0),
                                               dtype=torch.float64))
    for e in range(shape[0]):
        expert = weights.expert(e)
        operands = expert.to_quantized_weights(config)
        y = bitexact_mpgemm(config, x, None, operands).double()
        error = (y - decode_activations(config, x) @ expert.dequantize().T).abs()
        assert (error <= error_bound(config, x, None, operands)).all()


def test_bad_tensors():
    blocks = torch.full((2, 3, 16), 0x21, dtype=torch.uint8)
    scales = torch.full((2, 3), 127, dtype=torch.uint8)
    with pytest.raises(CheckpointError, match=r"w_scales: shape \(2, 2\), expected \(2, 3\)"):
        import_mxfp4(blocks, scales[:, :2], name="w")
    with pytest.raises(CheckpointError, match=r"w_blocks: dtype torch.int8"):
        import_mxfp4(blocks.to(torch.int8), scales, name="w")
    nan = scales.clone()
    nan[1, 2] = 255
    with pytest.raises(CheckpointError, match=r"w_scales: E8M0 code 255 \(NaN\) at index \(1, 2\)"):
        import_mxfp4(blocks, nan, name="w")
    with pytest.raises(CheckpointError, match=r"w_scales: missing"):
        mxfp4_tensors({"w_blocks": blocks})
    config = core_for_mxfp4(MixPEConfig(rows=4, cols=4, group_size=32))
    with pytest.raises(CheckpointError, match=r"w: MXFP4 needs weight_format='fp4_e2m1'"):
        import_mxfp4(blocks, scales, name="w").to_quantized_weights(MixPEConfig(rows=4, cols=4, group_size=32))
    with pytest.raises(CheckpointError, match=r"the core takes one 2-D weight"):
        import_mxfp4(blocks[None], scales[None], name="w").to_quantized_weights(config)
