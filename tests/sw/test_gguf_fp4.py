"""gguf's MXFP4 and NVFP4 tensors: imported bit for bit against gguf-py's ``dequantize``, mapped to
the FP4 cores, and ``mixpe gguf --check`` within the error bound on a small seeded file."""

import gguf
import numpy as np
import pytest
import torch

from gen.cli import main
from golden.codes import real_weights
from hw.config import MixPEConfig
from sw.checkpoint import CheckpointError
from sw.gguf_fp4 import core_for_fp4, import_fp4
from sw.gguf_import import GGUFError
from sw.gguf_report import gguf_report

T = gguf.GGMLQuantizationType
SEED = 19
CORE = MixPEConfig(rows=4, cols=4, group_size=32)


def mxfp4_data(seed: int, shape) -> np.ndarray:
    """gguf-py's MXFP4 quantization of seeded weights with an all-zero block (E8M0 e = 0)."""
    w = (0.05 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
    w[..., 0, :32] = 0.0
    return gguf.quants.quantize(w, T.MXFP4)


def nvfp4_data(seed: int, rows: int, k: int) -> np.ndarray:
    """Seeded NVFP4 blocks (gguf-py has no NVFP4 quantizer): random codes, UE4M3 scale bytes in
    0x08 .. 0x60, plus 0 and 0x7F (both 0 to gguf), a subnormal 0x03 and 0xB8 (bit 7 set, read as 0x38)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (rows, k // 64, 36), dtype=np.uint8)
    blocks[..., :4] = rng.integers(0x08, 0x61, (rows, k // 64, 4), dtype=np.uint8)
    blocks[0, 0, :4] = (0x00, 0x7F, 0x03, 0xB8)
    return blocks.reshape(rows, -1)


def gguf_weights(data: np.ndarray, qtype) -> torch.Tensor:
    return torch.from_numpy(np.asarray(gguf.quants.dequantize(data, qtype), dtype=np.float32)).double()


@pytest.mark.parametrize("label", ["MXFP4", "NVFP4"])
def test_import_is_bit_exact_and_the_core_holds_the_same_weights(label):
    data = mxfp4_data(SEED, (24, 128)) if label == "MXFP4" else nvfp4_data(SEED, 24, 128)
    imported = import_fp4(data, (24, 128), label, name=label)
    reference = gguf_weights(data, T[label]).reshape(24, 128)
    assert torch.equal(imported.dequantize(), reference)
    config = core_for_fp4(label, CORE)
    assert (config.weight_format, config.group_size) == ("fp4_e2m1", 32 if label == "MXFP4" else 16)
    assert torch.equal(real_weights(config, imported.to_quantized_weights(config)), reference)


def test_nvfp4_layout_from_known_codes():
    """Sub-block s: scale byte s, then 8 bytes whose low nibbles are elements 0 .. 7 and high 8 .. 15."""
    codes = np.arange(64) % 16
    qs = (codes.reshape(4, 2, 8)[:, 0] | (codes.reshape(4, 2, 8)[:, 1] << 4)).astype(np.uint8)
    block = np.concatenate([np.array([0x38, 0x40, 0x7F, 0x30], np.uint8), qs.reshape(-1)])[None, :]
    imported = import_fp4(block, (1, 64), "NVFP4")
    assert imported.codes[0].tolist() == codes.tolist()
    scales = imported.to_quantized_weights(core_for_fp4("NVFP4", CORE)).scales
    assert scales.double()[0].tolist() == [1.0, 2.0, 0.0, 0.5]          # 0x7F: gguf's 0, not E4M3's NaN
    assert torch.equal(imported.dequantize(), gguf_weights(block, T.NVFP4))


def test_scales_no_core_holds_are_refused_for_the_array_only():
    block = nvfp4_data(SEED, 1, 64)
    block[0, 0] = 0xFF                                                   # gguf: 480 > E4M3's 448
    imported = import_fp4(block, (1, 64), "NVFP4", name="w")
    assert torch.equal(imported.dequantize(), gguf_weights(block, T.NVFP4))
    with pytest.raises(CheckpointError, match="0xFF"):
        imported.to_quantized_weights(core_for_fp4("NVFP4", CORE))
    with pytest.raises(GGUFError, match="36 bytes"):
        import_fp4(block[:, :-1], (1, 64), "NVFP4", name="w")


def write_fp4_gguf(path, seed: int = SEED) -> None:
    """A seeded GGUF with an MXFP4 and an NVFP4 tensor, a 3-D MXFP4 expert tensor and an F32 norm."""
    writer = gguf.GGUFWriter(str(path), "gpt-oss")
    tensors = {"blk.0.ffn_down.weight": (mxfp4_data(seed, (40, 96)), T.MXFP4),
               "blk.0.attn_q.weight": (nvfp4_data(seed + 1, 40, 128), T.NVFP4),
               "blk.0.ffn_gate_exps.weight": (mxfp4_data(seed + 2, (2, 8, 64)), T.MXFP4),
               "blk.0.attn_norm.weight": (np.ones(64, dtype=np.float32), None)}
    for name, (data, qtype) in tensors.items():
        writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize("base", [None, MixPEConfig(rows=4, cols=4, group_size=32)], ids=["fp16", "int8"])
def test_report_and_check_on_a_small_file(tmp_path, base):
    path = tmp_path / "fp4.gguf"
    write_fp4_gguf(path)
    report = gguf_report(path, *([base] if base else []), check=True, tokens=5, seed=3)
    records = {r["name"]: r for r in report["tensors"]}
    assert report["summary"] == "3 of 3 quantized tensors run on the array"
    assert report["all_bit_exact"] and 0 < report["max_err_over_bound"] <= 1
    nvfp4 = records["blk.0.attn_q.weight"]
    assert (nvfp4["type"], nvfp4["shape"], nvfp4["config"]["scale_format"], nvfp4["config"]["group_size"]) == \
        ("NVFP4", [128, 40], "e4m3", 16)
    experts = records["blk.0.ffn_gate_exps.weight"]
    assert experts["shape"] == [64, 8, 2] and experts["config"]["scale_format"] == "e8m0"


def test_cli_check_passes(tmp_path, capsys):
    path = tmp_path / "fp4.gguf"
    write_fp4_gguf(path)
    assert main(["gguf", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "gguf-nvfp4-fp16-16x16" in out and "3 of 3 quantized tensors run on the array" in out
