"""llama.cpp K-quants on the K-quant core (scale_mode="kquant"): the stored fields denote gguf's
weights bit for bit, every type maps and stays within its bound, subnormal d is a reason."""

import gguf
import numpy as np
import pytest
import torch

from golden.kquant import validate_kquant_operands
from golden.operands import quantize_activations_int8
from hw.config import MixPEConfig
from sw.gguf_kquants import K_QUANTS, kquant_weights
from sw.gguf_report import core_for, gguf_report

T = gguf.GGMLQuantizationType


def kquant_blocks(label: str, rows: int, k: int, seed: int) -> np.ndarray:
    """Random super-blocks whose FP16 d (and dmin) are normal: 2**e * [1, 2) with a random sign, e in -12 .. 2."""
    layout = K_QUANTS[label]
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (rows, k // 256, layout.block_bytes), dtype=np.uint8)
    for offset in {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}[label]:
        d = rng.choice([-1.0, 1.0], (rows, k // 256)) * rng.uniform(1, 2, (rows, k // 256)) \
            * np.ldexp(1.0, rng.integers(-12, 3, (rows, k // 256)))
        blocks[..., offset:offset + 2] = d.astype(np.float16)[..., None].view(np.uint8)
    return blocks.reshape(rows, -1)


def gguf_style(config: MixPEConfig, weights) -> torch.Tensor:
    """gguf-py's float32 evaluation of the stored fields: fp32(fp32(d*sc) * (q - z)) [- fp32(dmin*m)]."""
    group = config.group_size
    d = weights.scales.float().repeat_interleave(256, dim=1)
    scale = d * weights.sub_scales.float().repeat_interleave(group, dim=1)
    if config.float_offset:
        dmin = (-weights.offsets).float().repeat_interleave(256, dim=1)
        return scale * weights.codes.float() - dmin * weights.mins.float().repeat_interleave(group, dim=1)
    return scale * (weights.codes - weights.zeros.repeat_interleave(group, dim=1)).float()


@pytest.mark.parametrize("label", list(K_QUANTS))
def test_stored_fields_denote_gguf_weights_bit_for_bit(label):
    data = kquant_blocks(label, 5, 512, seed=3)
    config = core_for(label, MixPEConfig(rows=4, cols=4, group_size=32))
    weights = kquant_weights(label, data.reshape(-1, K_QUANTS[label].block_bytes), 5, 512)
    reference = torch.from_numpy(gguf.quants.dequantize(data, T[label]))
    assert torch.equal(gguf_style(config, weights), reference)
    x, act_scale = quantize_activations_int8(torch.randn(2, 512, dtype=torch.float64))
    validate_kquant_operands(config, x, act_scale, weights)
    assert (config.scale_mode, config.weight_bits, config.group_size) == ("kquant", K_QUANTS[label].bits,
                                                                          K_QUANTS[label].group)


def write_kquant_gguf(path, labels, subnormal: str | None = None) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    for index, label in enumerate(labels):
        data = kquant_blocks(label, 24, 512, seed=index)
        if label == subnormal:
            data[3, 0:2] = np.frombuffer(np.float16(2.0 ** -20).tobytes(), np.uint8)      # row 3, first d
        writer.add_tensor(f"blk.{index}.ffn_up.weight", data, raw_dtype=T[label])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize("base", [MixPEConfig(rows=4, cols=4, group_size=32, name="int8"), None],
                         ids=["int8", "fp16"])
def test_every_k_quant_runs_within_its_bound(tmp_path, base):
    path = tmp_path / "k.gguf"
    write_kquant_gguf(path, list(K_QUANTS))
    report = gguf_report(path, *([base] if base else []), check=True, tokens=4, seed=1)
    assert report["summary"] == "5 of 5 quantized tensors run on the array", report["tensors"]
    assert report["all_bit_exact"] and report["max_err_over_bound"] <= 1


def test_subnormal_d_runs_exactly(tmp_path):
    path = tmp_path / "sub.gguf"
    write_kquant_gguf(path, ["Q4_K"], subnormal="Q4_K")
    (record,) = gguf_report(path, check=True, tokens=3)["tensors"]
    assert record["bit_exact_import"] is True and record["config"]["scale_mode"] == "kquant"
    assert record["max_err_over_bound"] <= 1
