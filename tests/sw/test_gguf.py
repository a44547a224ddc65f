"""llama.cpp GGUF: the Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 importers bit for bit against gguf-py, bad files as
one-line errors naming the file and the tensor, and ``mixpe gguf`` on a small seeded file."""

import json
import re

import gguf
import numpy as np
import pytest
import torch

from gen.cli import main
from golden.reference import dequantize_weights
from hw.config import MixPEConfig
from sw.checkpoint import CheckpointError, import_state_dict
from sw.gguf_import import (BLOCK_TYPES, GGUFError, gguf_tensors, import_gguf, import_gguf_tensor, quantize_gguf,
                             read_gguf)
from sw.gguf_kquants import K_QUANTS
from sw.gguf_report import core_for, gguf_report

T = gguf.GGMLQuantizationType
SEED = 19


def weights(seed: int, shape=(24, 128)) -> np.ndarray:
    """Seeded float32 weights with an all-zero block, an all-positive block and an outlier (no
    subnormal FP16 scales or offsets: those are not on the array, see the subnormal test)."""
    rng = np.random.default_rng(seed)
    w = (0.05 * rng.standard_normal(shape)).astype(np.float32)
    w[..., 0, :32] = 0.0
    w[..., 1, 32:64] = np.abs(w[..., 1, 32:64]) + 0.01      # min m = 0.01: normal in FP16
    w[..., 2, 40] = 1.5
    return w


@pytest.mark.parametrize("label", list(BLOCK_TYPES))
def test_gguf_quantizer_import_is_bit_exact_and_maps_to_its_core(label):
    w = weights(SEED)
    data = gguf.quants.quantize(w, T[label])
    imported = import_gguf(data, w.shape, label, name=label)
    reference = torch.from_numpy(gguf.quants.dequantize(data, T[label])).double()
    assert torch.equal(imported.dequantize(), reference)
    assert imported.bits == BLOCK_TYPES[label].bits and imported.group_size == 32
    config = core_for(label, MixPEConfig(rows=4, cols=4, group_size=32))
    hw = imported.to_quantized_weights(config)
    if not config.float_offset:             # the offset types' weights d*q + m are rounded to FP32 by gguf
        assert torch.equal(dequantize_weights(hw, 32), imported.dequantize())
    assert torch.equal(quantize_gguf(torch.from_numpy(w), label).codes, imported.codes)


def test_q5_and_q8_layouts_from_known_codes():
    """Element j: low nibble of byte j (j < 16) or high nibble of byte j - 16, bit 4 = bit j of qh."""
    codes = np.arange(32) % 32
    qs = (codes[:16] & 0xF) | ((codes[16:] & 0xF) << 4)
    qh = sum(int(c >> 4) << j for j, c in enumerate(codes))
    d = np.float16(0.25).tobytes()
    block = np.frombuffer(d + np.uint32(qh).tobytes() + qs.astype(np.uint8).tobytes(), dtype=np.uint8)
    imported = import_gguf(block[None, :], (1, 32), "Q5_0")
    assert imported.codes.tolist() == [codes.tolist()] and imported.zeros.tolist() == [[16]]
    assert torch.equal(imported.dequantize()[0], torch.from_numpy(0.25 * (codes - 16.0)))
    q8 = np.frombuffer(d + np.arange(-16, 16, dtype=np.int8).tobytes(), dtype=np.uint8)
    imported = import_gguf(q8[None, :], (1, 32), "Q8_0")
    assert imported.codes[0].tolist() == list(range(112, 144)) and imported.zeros.tolist() == [[128]]


def write_gguf(path, seed: int = SEED) -> dict:
    """A small seeded GGUF: one tensor of each block type, a 3-D expert tensor, an F32 norm and a
    Q4_K tensor (raw bytes); returns {name: raw data}."""
    writer = gguf.GGUFWriter(str(path), "llama")
    tensors = {}
    for i, label in enumerate(BLOCK_TYPES):
        tensors[f"blk.{i}.ffn_down.weight"] = (gguf.quants.quantize(weights(seed + i, (40, 96)), T[label]), T[label])
    tensors["blk.0.ffn_gate_exps.weight"] = (gguf.quants.quantize(weights(seed, (2, 8, 64)), T.Q8_0), T.Q8_0)
    tensors["blk.0.attn_norm.weight"] = (np.ones(64, dtype=np.float32), None)
    d_dmin = np.frombuffer(np.array([0.1, 0.05], dtype=np.float16).tobytes(), np.uint8)   # d*sc_j not FP16
    tensors["blk.0.attn_k.weight"] = (np.concatenate([np.tile(d_dmin, (2, 1)), np.full((2, 140), 17, np.uint8)],
                                                     axis=1), T.Q4_K)
    for name, (data, qtype) in tensors.items():
        writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return tensors


def test_report_and_check_on_a_small_file(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_gguf(path)
    report = gguf_report(path, check=True, tokens=5, seed=3)
    records = {r["name"]: r for r in report["tensors"]}
    assert report["summary"] == "7 of 7 quantized tensors run on the array"
    assert report["all_bit_exact"] and 0 < report["max_err_over_bound"] <= 1
    q51 = records["blk.3.ffn_down.weight"]
    assert (q51["type"], q51["shape"], q51["config"]["weight_bits"], q51["config"]["zero_mode"]) == \
        ("Q5_1", [96, 40], 5, "float_offset")
    assert records["blk.4.ffn_down.weight"]["config"]["weight_encoding"] == "signed"
    assert records["blk.0.ffn_gate_exps.weight"]["shape"] == [64, 8, 2]
    experts = import_gguf_tensor(gguf_tensors(path)["blk.0.ffn_gate_exps.weight"], path)
    assert experts.shape == (16, 64)                          # 2 experts of 8 channels, stacked
    q4_k = records["blk.0.attn_k.weight"]
    assert q4_k["config"]["scale_mode"] == "kquant" and q4_k["bit_exact_import"] is True
    assert "not quantized" in records["blk.0.attn_norm.weight"]["unsupported_reason"]
    int8 = gguf_report(path, MixPEConfig(rows=4, cols=4, group_size=32), check=True, tokens=3, seed=4)
    assert int8["all_bit_exact"] and int8["max_err_over_bound"] <= 1


def test_cli_writes_the_json_report(tmp_path, capsys):
    path = tmp_path / "tiny.gguf"
    write_gguf(path)
    out = tmp_path / "report.json"
    assert main(["gguf", str(path), "--preset", "w4a8-g32-4x4", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["check"] is False and report["max_err_over_bound"] is None
    for record in report["tensors"]:
        assert {"name", "type", "shape", "bit_exact_import", "max_err_over_bound"} <= set(record)
        assert ("config" in record) != ("unsupported_reason" in record)
    assert "7 of 7 quantized tensors run on the array" in capsys.readouterr().out


def test_subnormal_scales_are_an_unsupported_reason(tmp_path):
    path = tmp_path / "subnormal.gguf"
    tensors = write_gguf(path)
    reader = gguf.GGUFReader(path, "r+")
    reader.tensors[0].data[1, 0:2] = np.frombuffer(np.float16(2.0 ** -20).tobytes(), np.uint8)   # Q4_0 row 1 d
    reader.data.flush()
    del reader, tensors
    record = gguf_report(path)["tensors"][0]
    assert "config" not in record and "is subnormal in FP16" in record["unsupported_reason"], record
    assert record["bit_exact_import"] is True


def kquant_blocks(label: str, rows: int, k: int, seed: int, d_exponents=(-20, 5)) -> np.ndarray:
    """Random super-blocks of ``label`` whose FP16 d (and dmin) are finite, 2**e times [-1, 1) for e
    in ``d_exponents`` (one value: a power of two, so that every d*sc_j is an FP16 number)."""
    layout = K_QUANTS[label]
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (rows, k // 256, layout.block_bytes), dtype=np.uint8)
    fields = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}[label]
    for offset in fields:
        low, high = d_exponents[0], d_exponents[-1] + 1
        if len(d_exponents) == 1:
            d = np.ldexp(1.0, np.full((rows, k // 256), low))
        else:
            d = rng.uniform(-1, 1, (rows, k // 256)) * np.ldexp(1.0, rng.integers(low, high, (rows, k // 256)))
        blocks[..., offset:offset + 2] = d.astype(np.float16)[..., None].view(np.uint8)
    return blocks.reshape(rows, -1)


@pytest.mark.parametrize("label", list(K_QUANTS))
def test_k_quants_import_bit_exactly(label):
    data = kquant_blocks(label, 6, 512, seed=SEED)
    imported = import_gguf(data, (6, 512), T[label], name=label)
    reference = torch.from_numpy(gguf.quants.dequantize(data, T[label])).double()
    assert torch.equal(imported.dequantize(), reference)
    assert (imported.bits, imported.group_size) == (K_QUANTS[label].bits, K_QUANTS[label].group)


@pytest.mark.parametrize("label", ["Q4_K", "Q6_K"])
def test_k_quants_with_fp16_exact_sub_scales_run_on_the_array(tmp_path, label):
    """d a power of two (every d*sc_j an FP16 number): on the K-quant core like any other d."""
    path = tmp_path / "k.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("w", kquant_blocks(label, 20, 512, seed=SEED, d_exponents=(-6,)), raw_dtype=T[label])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    report = gguf_report(path, MixPEConfig(rows=4, cols=4, group_size=32), check=True, tokens=3)
    (record,) = report["tensors"]
    assert record["config"]["group_size"] == K_QUANTS[label].group and record["bit_exact_import"]
    assert report["summary"] == "1 of 1 quantized tensors run on the array" and report["max_err_over_bound"] <= 1


# -- bad input ---------------------------------------------------------------------------------

def patched(tmp_path, patch) -> str:
    """A written small GGUF with ``patch(reader)`` applied to its bytes in place."""
    path = tmp_path / "bad.gguf"
    write_gguf(path)
    reader = gguf.GGUFReader(path, "r+")
    patch(reader)
    reader.data.flush()
    return str(path)


def set_type(reader, index: int, code: int):
    reader.tensors[index].field.parts[4][0] = code


def set_first_dim(reader, index: int, value: int):
    reader.tensors[index].field.parts[3][0] = value


def set_scale(reader, index: int, offset: int, value: float):
    reader.tensors[index].data[0, offset:offset + 2] = np.frombuffer(np.float16(value).tobytes(), np.uint8)


@pytest.mark.parametrize("patch, fragment", [
    (lambda r: set_type(r, 2, 99), r"tensor 'blk.2.ffn_down.weight': unknown tensor type 99"),
    (lambda r: r.tensors[1].field.parts[3].__setitem__(1, 80),
     r"tensor 'blk.1.ffn_down.weight': Q4_1 shape \[96, 80\] needs bytes .* runs into tensor 'blk.2.ffn_down.weight'"),
    (lambda r: set_first_dim(r, 6, 96), r"tensor 'blk.0.attn_norm.weight': F32 shape \[96\] .*runs into"),
    (lambda r: set_first_dim(r, 0, 100),
     r"tensor 'blk.0.ffn_down.weight': Q4_0 shape \[100, 40\] \(ggml order\) is not whole 32-element blocks"),
])
def test_bad_tensor_tables_name_the_file_and_the_tensor(tmp_path, patch, fragment):
    path = patched(tmp_path, patch)
    with pytest.raises(GGUFError, match=fragment) as caught:
        read_gguf(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


@pytest.mark.parametrize("index, offset, value, fragment", [
    (0, 0, float("nan"), r"blk.0.ffn_down.weight: scale d: value nan at index \(0, 0\) is not finite"),
    (3, 2, float("inf"), r"blk.3.ffn_down.weight: offset m: value inf at index \(0, 0\) is not finite"),
])
def test_non_finite_scales_name_the_file_and_the_tensor(tmp_path, index, offset, value, fragment):
    path = patched(tmp_path, lambda r: set_scale(r, index, offset, value))
    with pytest.raises(GGUFError, match=f"^{re.escape(path)}: {fragment}$"):
        gguf_report(path)
    assert main(["gguf", path]) == 2


def test_truncated_and_unreadable_files(tmp_path, capsys):
    path = tmp_path / "tiny.gguf"
    write_gguf(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:-200])
    with pytest.raises(GGUFError, match=rf"^{re.escape(str(cut))}: tensor 'blk.0.attn_k.weight': Q4_K shape "
                                        rf"\[256, 2\] needs bytes \d+\.\.\d+ but the file has \d+ bytes: the file "
                                        rf"is truncated"):
        read_gguf(cut)
    header = tmp_path / "header.gguf"
    header.write_bytes(data[:40])
    with pytest.raises(GGUFError, match=rf"^{re.escape(str(header))}: not a readable GGUF file \("):
        read_gguf(header)
    with pytest.raises(GGUFError, match=r"missing.gguf: file not found"):
        gguf_tensors(tmp_path / "missing.gguf")
    assert main(["gguf", str(cut)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mixpe gguf: {cut}: tensor 'blk.0.attn_k.weight'") and "\n" not in err


def test_import_errors_name_the_tensor():
    data = gguf.quants.quantize(np.zeros((2, 64), dtype=np.float32), T.Q5_1)
    with pytest.raises(GGUFError, match=r"^w: shape \(2, 48\), expected \(2, 72\) bytes: 2 rows of 3 Q5_1 blocks"):
        import_gguf(data, (2, 96), "Q5_1", name="w")
    with pytest.raises(GGUFError, match=r"^w: tensor type 'IQ4_NL' is not imported"):
        import_gguf(data, (2, 64), T.IQ4_NL, name="w")
    with pytest.raises(GGUFError, match=r"^w: shape \(2, 64\), expected K a positive multiple of the Q6_K block "
                                        r"size 256"):
        import_gguf(data, (2, 64), T.Q6_K, name="w")
    nan_d = kquant_blocks("Q5_K", 2, 256, seed=1)
    nan_d[1, 2:4] = np.frombuffer(np.float16("nan").tobytes(), np.uint8)
    with pytest.raises(GGUFError, match=r"^w: super-block dmin: value nan at index \(1, 0\) is not finite"):
        import_gguf(nan_d, (2, 256), "Q5_K", name="w")
    with pytest.raises(CheckpointError, match=r"blk.0.attn_k.weight: tensor type 'IQ2_XS' is not imported"):
        import_state_dict("blk.0.attn_k", {"blk.0.attn_k.weight": _reader_tensor(T.IQ2_XS)}, format="gguf")


def _reader_tensor(qtype):
    class Tensor:
        data, shape, tensor_type = np.zeros((2, 144), np.uint8), [256, 2], qtype
    return Tensor()


@pytest.mark.slow
def test_smollm2_q4_1_file_runs_on_the_array():
    """The project's real GGUF (SmolLM2-135M Q4_1: 210 Q4_1 projections, a Q8_0 embedding): every
    quantized tensor maps, imports bit-exactly and stays within its bound (minutes)."""
    from sw.smollm import smollm_gguf_path
    report = gguf_report(smollm_gguf_path(), check=True)
    assert report["summary"] == "211 of 211 quantized tensors run on the array"
    assert report["all_bit_exact"] and report["max_err_over_bound"] <= 1
