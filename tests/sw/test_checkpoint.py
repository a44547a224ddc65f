"""Checkpoint import (sw/checkpoint.py): tensors packed in the test to each published layout from
known codes (GPTQ v1/v2 incl. 3-bit and act-order, AWQ GEMM, compressed-tensors pack-quantized),
llama.cpp Q4_0/Q4_1 blocks from gguf-py's own quantizer and a GGUF file, the hardware mapping,
and every malformed-checkpoint error.

The packers here follow the reference code quoted in checkpoint-formats.md (AutoGPTQ
``QuantLinear.pack``, AutoAWQ ``order_map``, compressed-tensors ``pack_to_int32``), independently
of the importer's unpacker."""

import gguf
import numpy as np
import pytest
import torch

from golden.mpgemm import bitexact_mpgemm, error_bound
from golden.operands import quantize_activations_int8
from golden.reference import dequantize_weights, reference_mpgemm
from hw.config import MixPEConfig
from sw.checkpoint import (CheckpointError, GroupQuantized, gguf_tensors, hf_quantization_options, import_awq,
                           import_compressed_tensors, import_gguf, import_gptq, import_state_dict)

PREFIX = "model.layers.0.mlp.down_proj"


# -- packers written after the published reference code ----------------------------------------

def gptq_pack_rows(values: np.ndarray, bits: int) -> np.ndarray:
    """AutoGPTQ ``QuantLinear.pack`` on rows: (R, C) codes -> (R // 32 * bits, C) uint32 words."""
    values = values.astype(np.uint32)
    out = np.zeros((values.shape[0] // 32 * bits, values.shape[1]), dtype=np.uint32)
    i = row = 0
    while row < out.shape[0]:
        if bits in (2, 4, 8):
            for j in range(i, i + 32 // bits):
                out[row] |= values[j] << (bits * (j - i))
            i += 32 // bits
            row += 1
        else:  # 3 bits: 10 values + 2 bits | 1 bit + 10 values + 1 bit | 2 bits + 10 values
            for j in range(i, i + 10):
                out[row] |= values[j] << (3 * (j - i))
            i += 10
            out[row] |= values[i] << 30
            row += 1
            out[row] |= (values[i] >> 2) & 1
            i += 1
            for j in range(i, i + 10):
                out[row] |= values[j] << (3 * (j - i) + 1)
            i += 10
            out[row] |= values[i] << 31
            row += 1
            out[row] |= (values[i] >> 1) & 0x3
            i += 1
            for j in range(i, i + 10):
                out[row] |= values[j] << (3 * (j - i) + 2)
            i += 10
            row += 1
    return out


def as_int32(words: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(words).astype(np.uint32).view(np.int32))


def gptq_tensors(codes, zeros, scales, bits, v1=True):
    """(qweight, qzeros, scales) for codes (N, K), zeros (N, G), scales (N, G)."""
    qweight = as_int32(gptq_pack_rows(codes.t().numpy(), bits))                     # (K*b/32, N)
    stored = (zeros - 1) if v1 else zeros
    stored = stored.numpy().astype(np.int64) & (2 ** bits - 1)                      # v1 zero 0 wraps
    qzeros = as_int32(gptq_pack_rows(stored, bits).T)                                # (G, N*b/32)
    return qweight, qzeros, scales.t().contiguous()


AWQ_ORDER_MAP = [0, 2, 4, 6, 1, 3, 5, 7]


def awq_pack(values: np.ndarray) -> np.ndarray:
    """AutoAWQ GEMM: (R, N) 4-bit values -> (R, N/8), ``out[:, c] |= v[:, 8c + order_map[i]] << 4i``."""
    values = values.astype(np.uint32)
    out = np.zeros((values.shape[0], values.shape[1] // 8), dtype=np.uint32)
    for col in range(out.shape[1]):
        for i in range(8):
            out[:, col] |= values[:, col * 8 + AWQ_ORDER_MAP[i]] << (4 * i)
    return out


def ct_pack_dense(values: np.ndarray, bits: int) -> np.ndarray:
    """compressed-tensors ``pack_to_int32`` (packed_dim=1, after the +2**(b-1) offset): each row in
    groups of 32 elements -> ``bits`` words, element e at stream bit ``e*bits``, split across words."""
    rows, cols = values.shape
    padded = -(-cols // 32) * 32
    v = np.zeros((rows, padded), dtype=np.uint64)
    v[:, :cols] = values
    out = np.zeros((rows, padded // 32 * bits), dtype=np.uint64)
    for e in range(padded):
        start = (e % 32) * bits
        word = (e // 32) * bits + start // 32
        shift = start % 32
        out[:, word] |= (v[:, e] << np.uint64(shift)) & np.uint64(0xFFFFFFFF)
        if shift + bits > 32:
            out[:, word + 1] |= v[:, e] >> np.uint64(32 - shift)
    return out[:, :-(-cols * bits // 32)].astype(np.uint32)


def ct_pack_legacy(values: np.ndarray, bits: int) -> np.ndarray:
    """Older compressed-tensors ``pack_to_int32``: ``32 // bits`` elements per word, zero padded."""
    factor = 32 // bits
    rows, cols = values.shape
    padded = -(-cols // factor) * factor
    v = np.zeros((rows, padded), dtype=np.uint32)
    v[:, :cols] = values
    shifts = (np.arange(factor, dtype=np.uint32) * bits)
    return (v.reshape(rows, -1, factor) << shifts).sum(axis=2, dtype=np.uint64).astype(np.uint32)


def random_fields(seed, n, k, group, bits, zero_low=0):
    gen = torch.Generator().manual_seed(seed)
    groups = k // group
    codes = torch.randint(0, 2 ** bits, (n, k), generator=gen)
    zeros = torch.randint(zero_low, 2 ** bits, (n, groups), generator=gen)
    scales = (0.001 + 0.05 * torch.rand(n, groups, generator=gen)).half()
    return codes, zeros, scales


def exact_dequant(codes, zeros, scales, g_idx):
    return (codes - zeros[:, g_idx]).double() * scales.double()[:, g_idx]


def assert_fields(imported: GroupQuantized, codes, zeros, scales, group, g_idx=None):
    g_idx = torch.arange(codes.shape[1]) // group if g_idx is None else g_idx
    assert torch.equal(imported.codes, codes)
    assert torch.equal(imported.zeros, zeros)
    assert imported.scales.dtype == scales.dtype and torch.equal(imported.scales, scales)
    assert torch.equal(imported.g_idx, g_idx) and imported.group_size == group
    assert torch.equal(imported.dequantize(), exact_dequant(codes, zeros, scales, g_idx))


# -- GPTQ --------------------------------------------------------------------------------------

# AutoGPTQ packs 2, 3, 4 and 8 bits only (its reference packer below does too).
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("fmt", ["gptq", "gptq_v2"])
def test_gptq_round_trip(bits, fmt):
    n, k, group = 64, 256, 64
    codes, zeros, scales = random_fields(bits, n, k, group, bits, zero_low=1 if fmt == "gptq" else 0)
    zeros[0, 0], zeros[1, 1] = 2 ** bits - 1, (1 if fmt == "gptq" else 0)
    qweight, qzeros, s = gptq_tensors(codes, zeros, scales, bits, v1=fmt == "gptq")
    assert qweight.shape == (k * bits // 32, n) and qzeros.shape == (k // group, n * bits // 32)
    state = {f"{PREFIX}.qweight": qweight, f"{PREFIX}.qzeros": qzeros, f"{PREFIX}.scales": s,
             f"{PREFIX}.g_idx": (torch.arange(k) // group).int(), f"{PREFIX}.bias": torch.zeros(n)}
    imported = import_state_dict(PREFIX, state, format=fmt, bits=bits, group_size=group)
    assert_fields(imported, codes, zeros, scales, group)
    assert imported.name == PREFIX and imported.contiguous_groups
    inferred = import_gptq(qweight, qzeros, s, bits=bits, checkpoint_format=fmt)          # group size from G
    assert inferred.group_size == group and torch.equal(inferred.codes, codes)


def test_gptq_v1_symmetric_stores_seven_words():
    n, k, group = 32, 64, 32
    codes, _, scales = random_fields(0, n, k, group, 4)
    zeros = torch.full((n, 2), 8)
    _, qzeros, _ = gptq_tensors(codes, zeros, scales, 4, v1=True)
    assert (qzeros == 0x77777777).all()                                  # as in real sym v1 checkpoints
    imported = import_gptq(*gptq_tensors(codes, zeros, scales, 4), bits=4, group_size=group)
    config = MixPEConfig(rows=4, cols=4, weight_bits=4, weight_encoding="signed", group_size=32)
    hw = imported.to_quantized_weights(config)
    assert torch.equal(hw.codes, codes) and (hw.zeros == 8).all()


def test_gptq_v1_zero_zero_wraps():
    n, k, group = 32, 64, 32
    codes, zeros, scales = random_fields(1, n, k, group, 4, zero_low=1)
    zeros[3, 1] = 0                                                       # stored as -1 -> 0xF
    tensors = gptq_tensors(codes, zeros, scales, 4, v1=True)
    with pytest.raises(CheckpointError, match=r"qzeros: stored value 15 at group 1, channel 3 means zero point 16"):
        import_gptq(*tensors, bits=4, group_size=group)
    imported = import_gptq(*tensors, bits=4, group_size=group, wrap_v1_zero=True)
    assert torch.equal(imported.zeros, zeros)


def test_gptq_act_order_permutes_k_for_the_core():
    n, k, group, bits = 32, 128, 32, 4
    gen = torch.Generator().manual_seed(5)
    codes, zeros, scales = random_fields(5, n, k, group, bits)
    g_idx = (torch.arange(k) // group)[torch.randperm(k, generator=gen)]    # desc_act: groups scattered over K
    qweight, qzeros, s = gptq_tensors(codes, zeros, scales, bits, v1=False)
    imported = import_gptq(qweight, qzeros, s, g_idx.int(), bits=bits, group_size=group, checkpoint_format="gptq_v2")
    assert_fields(imported, codes, zeros, scales, group, g_idx)
    config = MixPEConfig(rows=4, cols=4, weight_bits=4, group_size=32)
    with pytest.raises(CheckpointError, match=r"act-order groups are not contiguous along K"):
        imported.to_quantized_weights(config)
    grouped, perm = imported.sort_groups()
    assert torch.equal(g_idx[perm], torch.arange(k) // group)
    hw = grouped.to_quantized_weights(config)
    x_real = torch.randn(6, k, generator=gen)
    xq, act_scale = quantize_activations_int8(x_real)
    expected = (xq.double() * act_scale.double()[:, None]) @ imported.dequantize().T      # original K order
    x_perm = xq[:, perm].contiguous()
    y = bitexact_mpgemm(config, x_perm, act_scale, hw)
    assert ((y.double() - expected).abs() <= error_bound(config, x_perm, act_scale, hw)).all()


# -- AWQ ---------------------------------------------------------------------------------------

def test_awq_round_trip():
    n, k, group = 48, 256, 128
    codes, zeros, scales = random_fields(9, n, k, group, 4)
    qweight = as_int32(awq_pack(codes.t().numpy()))                      # (K, N/8)
    qzeros = as_int32(awq_pack(zeros.t().numpy()))                       # (G, N/8)
    state = {f"{PREFIX}.qweight": qweight, f"{PREFIX}.qzeros": qzeros, f"{PREFIX}.scales": scales.t().contiguous()}
    imported = import_state_dict(PREFIX, state, format="awq", group_size=group)
    assert_fields(imported, codes, zeros, scales, group)
    # Known nibble: channel 1 sits in nibble 4 of word 0 (bits 16..19).
    assert ((qweight[:, 0].long() >> 16) & 0xF).tolist() == codes[1].tolist()
    # A 128-column checkpoint group feeds a 32-column hardware group (scales and zeros repeated).
    config = MixPEConfig(rows=4, cols=4, weight_bits=4, group_size=32)
    hw = imported.to_quantized_weights(config)
    assert torch.equal(dequantize_weights(hw, 32), imported.dequantize())


# -- compressed-tensors ------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_compressed_tensors_round_trip(bits, symmetric):
    n, k, group = 40, 80, 16                      # K*b and N*b not multiples of 32 for 3 bits: padded words
    codes, zeros, scales = random_fields(20 + bits, n, k, group, bits)
    if symmetric:
        zeros = torch.full_like(zeros, 2 ** (bits - 1))
    signed_codes = codes - 2 ** (bits - 1)                                     # what the quantizer stores in int8
    packed = as_int32(ct_pack_dense((signed_codes + 2 ** (bits - 1)).numpy(), bits))
    assert packed.shape == (n, -(-k * bits // 32))
    if bits in (4, 8):                                                         # older releases: same words
        assert torch.equal(packed, as_int32(ct_pack_legacy(codes.numpy(), bits)))
    state = {f"{PREFIX}.weight_packed": packed, f"{PREFIX}.weight_scale": scales.float(),
             f"{PREFIX}.weight_shape": torch.tensor([n, k], dtype=torch.int64)}
    if not symmetric:
        zp_signed = zeros - 2 ** (bits - 1)
        state[f"{PREFIX}.weight_zero_point"] = as_int32(ct_pack_dense((zp_signed + 2 ** (bits - 1)).t().numpy(), bits).T)
        assert state[f"{PREFIX}.weight_zero_point"].shape == (-(-n * bits // 32), k // group)
    imported = import_state_dict(PREFIX, state, format="compressed-tensors", bits=bits, group_size=group)
    assert_fields(imported, codes, zeros, scales.float(), group)
    if not symmetric:   # an unpacked int8 signed zero point is accepted too
        unpacked = import_compressed_tensors(packed, scales.float(), torch.tensor([n, k]),
                                             (zeros - 2 ** (bits - 1)).to(torch.int8), bits=bits)
        assert torch.equal(unpacked.zeros, zeros)
    config = MixPEConfig(rows=4, cols=4, weight_bits=bits, group_size=16,
                         weight_encoding="signed" if symmetric else "unsigned")
    hw = imported.to_quantized_weights(config)                                 # float32 scales that are FP16 values
    assert hw.scales.dtype == torch.float16 and torch.equal(dequantize_weights(hw, 16), imported.dequantize())


# -- llama.cpp / GGUF --------------------------------------------------------------------------

def q4_blocks(codes: torch.Tensor, d: torch.Tensor, m: torch.Tensor | None = None) -> np.ndarray:
    """block_q4_0 / block_q4_1 bytes from codes (N, K) and fp16 d, m (N, K/32): ``qs[j] = q[j] | q[j+16] << 4``."""
    n, k = codes.shape
    q = codes.numpy().astype(np.uint8).reshape(n, k // 32, 32)
    qs = q[..., :16] | (q[..., 16:] << 4)
    parts = [d.numpy().astype(np.float16)[..., None].view(np.uint8)]
    if m is not None:
        parts.append(m.numpy().astype(np.float16)[..., None].view(np.uint8))
    return np.concatenate(parts + [qs], axis=-1).reshape(n, -1)


def test_q4_0_from_known_codes_matches_gguf_dequantize():
    n, k = 6, 96
    codes, _, d = random_fields(30, n, k, 32, 4)
    d[0, 0] = -d[0, 0]                                                         # Q4_0 scales are often negative
    data = q4_blocks(codes, d)
    imported = import_gguf(data, (n, k), gguf.GGMLQuantizationType.Q4_0)
    assert_fields(imported, codes, torch.full((n, 3), 8), d, 32)
    reference = gguf.quants.dequantize(data, gguf.GGMLQuantizationType.Q4_0)
    assert np.array_equal(imported.dequantize().float().numpy(), reference)


def test_q4_1_from_known_codes_matches_gguf_dequantize():
    n, k = 6, 96
    codes, _, d = random_fields(31, n, k, 32, 4)
    m = (-0.3 * torch.rand(n, 3, generator=torch.Generator().manual_seed(2))).half()
    data = q4_blocks(codes, d, m)
    imported = import_gguf(data, (n, k), "Q4_1")
    assert torch.equal(imported.codes, codes) and torch.equal(imported.scales, d) and torch.equal(imported.offsets, m)
    reference = gguf.quants.dequantize(data, gguf.GGMLQuantizationType.Q4_1)
    assert np.array_equal(imported.dequantize().float().numpy(), reference)
    assert torch.equal(imported.dequantize(), torch.from_numpy(reference).double())


@pytest.mark.parametrize("qtype", [gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q4_1])
def test_gguf_quantizer_output_round_trips(qtype):
    gen = torch.Generator().manual_seed(int(qtype))
    w = (0.02 * torch.randn(16, 256, generator=gen)).numpy()
    w[0, :32] = 0.0                                                            # an all-zero block (d = 0)
    data = gguf.quants.quantize(w, qtype)
    imported = import_gguf(data, w.shape, qtype)
    reference = gguf.quants.dequantize(data, qtype)
    assert np.array_equal(imported.dequantize().float().numpy(), reference)
    assert np.abs(reference - w).max() < 0.02
    if qtype == gguf.GGMLQuantizationType.Q4_0:
        for encoding in ("unsigned", "signed"):
            config = MixPEConfig(rows=4, cols=4, weight_bits=4, weight_encoding=encoding, group_size=32)
            hw = imported.to_quantized_weights(config)
            assert torch.equal(dequantize_weights(hw, 32).float(), torch.from_numpy(reference))
    else:
        with pytest.raises(CheckpointError, match=r"float offsets \(llama.cpp Q4_1, w = d\*q \+ m\) need the Q4_1 mode"):
            imported.to_quantized_weights(MixPEConfig(group_size=32))
        hw = imported.to_quantized_weights(MixPEConfig(group_size=32, zero_mode="float_offset"))
        assert hw.zeros is None and torch.equal(hw.offsets, imported.offsets)
        assert torch.equal(dequantize_weights(hw, 32).float(), torch.from_numpy(reference))


def test_gguf_file_through_reader(tmp_path):
    gen = torch.Generator().manual_seed(4)
    w = (0.05 * torch.randn(8, 64, generator=gen)).numpy()
    data = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_0)
    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("blk.0.ffn_down.weight", data, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    imported = import_state_dict("blk.0.ffn_down", gguf_tensors(path), format="gguf")
    assert imported.shape == (8, 64) and imported.name == "blk.0.ffn_down.weight"
    assert np.array_equal(imported.dequantize().float().numpy(),
                          gguf.quants.dequantize(data, gguf.GGMLQuantizationType.Q4_0))


# -- hardware mapping --------------------------------------------------------------------------

def test_hardware_mapping_bits_and_encodings():
    codes, zeros, scales = random_fields(40, 8, 64, 32, 3)
    q3 = GroupQuantized(codes=codes, scales=scales, zeros=zeros, bits=3, group_size=32)
    hw = q3.to_quantized_weights(MixPEConfig(rows=4, cols=4, weight_bits=4, group_size=32))   # 3-bit on a 4-bit core
    assert torch.equal(hw.codes, codes) and torch.equal(dequantize_weights(hw, 32), q3.dequantize())
    signed = MixPEConfig(rows=4, cols=4, weight_bits=4, weight_encoding="signed", group_size=32)
    hw = q3.to_quantized_weights(signed)                                       # |q - z| <= 7 fits, re-centred
    assert (hw.zeros == 8).all() and torch.equal(dequantize_weights(hw, 32), q3.dequantize())

    codes8, zeros8, scales8 = random_fields(41, 8, 64, 32, 8)
    q8 = GroupQuantized(codes=codes8, scales=scales8, zeros=zeros8, bits=8, group_size=32, name="w8")
    with pytest.raises(CheckpointError, match=r"w8.codes: value \d+ at index .* outside the hardware's 4-bit"):
        q8.to_quantized_weights(MixPEConfig(weight_bits=4, group_size=32))
    asym = GroupQuantized(codes=torch.full((2, 32), 15), scales=torch.ones(2, 1, dtype=torch.float16),
                          zeros=torch.zeros(2, 1, dtype=torch.int64), bits=4, group_size=32)
    with pytest.raises(CheckpointError, match=r"code 15 - zero 0 at index \(0, 0\) is 15, outside the signed 4-bit"):
        asym.to_quantized_weights(signed)
    with pytest.raises(CheckpointError, match=r"group_size=32 is not a multiple of the hardware group_size=64"):
        asym.to_quantized_weights(MixPEConfig(group_size=64))


@pytest.mark.parametrize("scale, fragment", [
    (0.1, r"scales: value 0.1.* is not exactly representable in FP16"),
    (1e5, r"beyond the FP16 maximum"),
    (2.0 ** -20, r"is subnormal in FP16"),
])
def test_hardware_mapping_rejects_scales(scale, fragment):
    scales = torch.full((2, 1), 0.5, dtype=torch.float32)
    scales[1, 0] = scale
    q = GroupQuantized(codes=torch.zeros(2, 32, dtype=torch.int64), scales=scales,
                       zeros=torch.zeros(2, 1, dtype=torch.int64), bits=4, group_size=32)
    with pytest.raises(CheckpointError, match=fragment):
        q.to_quantized_weights(MixPEConfig(group_size=32))


# -- malformed checkpoints ---------------------------------------------------------------------

def gptq_state(bits=4, n=32, k=64, group=32):
    codes, zeros, scales = random_fields(50, n, k, group, bits, zero_low=1)
    qweight, qzeros, s = gptq_tensors(codes, zeros, scales, bits)
    return {f"{PREFIX}.qweight": qweight, f"{PREFIX}.qzeros": qzeros, f"{PREFIX}.scales": s}


def ct_state(bits=3, n=40, k=80, group=16):
    codes, zeros, scales = random_fields(51, n, k, group, bits)
    return {f"{PREFIX}.weight_packed": as_int32(ct_pack_dense(codes.numpy(), bits)),
            f"{PREFIX}.weight_scale": scales, f"{PREFIX}.weight_shape": torch.tensor([n, k], dtype=torch.int32)}


def replaced(state, leaf, value):
    state = dict(state)
    if value is None:
        del state[f"{PREFIX}.{leaf}"]
    else:
        state[f"{PREFIX}.{leaf}"] = value(state[f"{PREFIX}.{leaf}"]) if callable(value) else value
    return state


@pytest.mark.parametrize("state, options, fragment", [
    (replaced(gptq_state(), "qzeros", None), {}, rf"{PREFIX}.qzeros: missing from the state dict"),
    (replaced(gptq_state(), "qweight", lambda t: t.long()), {},
     r"qweight: dtype torch.int64, expected torch.int32"),
    (replaced(gptq_state(), "scales", lambda t: t[:, :16]), {}, r"scales: shape \(2, 16\), expected \(G, 32\)"),
    (replaced(gptq_state(), "qzeros", lambda t: t[:1]), {}, r"qzeros: shape \(1, 4\), expected \(2, 4\)"),
    (replaced(gptq_state(), "qweight", lambda t: t[:5]), {}, r"group_size=32: does not divide K=40"),
    (replaced(gptq_state(bits=3), "qweight", lambda t: t[:5]), {"bits": 3},
     r"qweight: shape \(5, 32\) has 5 rows, which is not K\*3/32 for a whole K"),
    (gptq_state(), {"group_size": 48}, r"group_size=48: does not divide K=64"),
    (gptq_state(), {"group_size": 16}, r"2 groups, expected K/group_size = 64/16 = 4"),
    (replaced(gptq_state(), "g_idx", torch.zeros(64, dtype=torch.int32)), {},
     r"g_idx: group 0 has 64 columns, expected group_size=32"),
    (replaced(gptq_state(), "g_idx", torch.full((64,), 2, dtype=torch.int32)), {},
     r"g_idx: value 2 at index \(0,\) is outside the group indices \[0, 1\]"),
    (replaced(gptq_state(), "g_idx", torch.zeros(60, dtype=torch.int32)), {},
     r"g_idx: shape \(60,\), expected \(64,\)"),
    (replaced(gptq_state(), "scales", lambda t: t.index_fill(1, torch.tensor([3]), float("inf"))), {},
     r"down_proj.scales: value inf at index \(0, 3\) is not finite"),
])
def test_malformed_gptq(state, options, fragment):
    options = {"bits": 4, "group_size": 32, **options}
    with pytest.raises(CheckpointError, match=fragment):
        import_state_dict(PREFIX, state, format="gptq", **options)


@pytest.mark.parametrize("state, options, fragment", [
    (replaced(ct_state(), "weight_packed", lambda t: t | (1 << 31)), {"symmetric": True},
     r"weight_packed: padding bits 16..31 of the last packed word at index \(0,\) are nonzero"),
    (replaced(ct_state(), "weight_packed", lambda t: t[:, :7]), {"symmetric": True},
     r"weight_packed: shape \(40, 7\) has 7 words .* expected ceil\(80\*3/32\) = 8"),
    (replaced(ct_state(), "weight_shape", torch.tensor([41, 80])), {"symmetric": True},
     r"weight_packed: shape \(40, 8\), expected \(41, 8\) for weight_shape \(41, 80\)"),
    (ct_state(), {"symmetric": False}, r"weight_zero_point: missing; an asymmetric checkpoint"),
    (replaced(ct_state(), "weight_zero_point", torch.full((40, 5), 9, dtype=torch.int8)), {},
     r"weight_zero_point: value 9 at index \(0, 0\) is outside the signed 3-bit range \[-4, 3\]"),
    (replaced(ct_state(), "weight_scale", lambda t: t.double()), {"symmetric": True},
     r"weight_scale: dtype torch.float64, expected torch.float16 or torch.bfloat16 or torch.float32"),
])
def test_malformed_compressed_tensors(state, options, fragment):
    with pytest.raises(CheckpointError, match=fragment):
        import_state_dict(PREFIX, state, format="compressed-tensors", bits=3, group_size=16, **options)


def test_malformed_other_formats():
    awq = {f"{PREFIX}.qweight": torch.zeros(64, 4, dtype=torch.int32),
           f"{PREFIX}.qzeros": torch.zeros(2, 4, dtype=torch.int32),
           f"{PREFIX}.scales": torch.ones(2, 32, dtype=torch.float16)}
    assert import_state_dict(PREFIX, awq, format="awq").shape == (32, 64)
    with pytest.raises(CheckpointError, match=r"bits=8: the AWQ GEMM layout packs 4-bit codes only"):
        import_state_dict(PREFIX, awq, format="awq", bits=8)
    with pytest.raises(CheckpointError, match=r"qzeros: shape \(2, 3\), expected \(2, 4\)"):
        import_state_dict(PREFIX, replaced(awq, "qzeros", torch.zeros(2, 3, dtype=torch.int32)), format="awq")
    with pytest.raises(CheckpointError, match=r"format='exl2': allowed values"):
        import_state_dict(PREFIX, awq, format="exl2")
    with pytest.raises(CheckpointError, match=r"format 'awq': .*unexpected keyword argument 'sym'"):
        import_state_dict(PREFIX, awq, format="awq", sym=True)
    data = gguf.quants.quantize(np.zeros((2, 64), dtype=np.float32), gguf.GGMLQuantizationType.Q4_0)
    with pytest.raises(CheckpointError, match=r"shape \(2, 36\), expected \(2, 54\) bytes: 2 rows of 3 Q4_0 blocks"):
        import_gguf(data, (2, 96), "Q4_0")
    with pytest.raises(CheckpointError, match=r"expected K a positive multiple of the Q4_0 block size 32"):
        import_gguf(data, (4, 36), "Q4_0")
    with pytest.raises(CheckpointError, match=r"weight: tensor type 'IQ4_XS' is not imported \(imported: Q4_0, Q4_1"):
        import_gguf(data, (2, 64), "IQ4_XS")


def test_hf_quantization_options():
    assert hf_quantization_options({"quant_method": "gptq", "bits": 3, "group_size": 128, "desc_act": True,
                                    "sym": True, "checkpoint_format": "gptq_v2"}) == \
        ("gptq_v2", {"bits": 3, "group_size": 128})
    assert hf_quantization_options({"quant_method": "awq", "bits": 4, "group_size": 64, "version": "GEMM",
                                    "zero_point": True}) == ("awq", {"bits": 4, "group_size": 64})
    ct = {"quant_method": "compressed-tensors", "format": "pack-quantized",
          "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
              "num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 128,
              "actorder": None}}}, "ignore": ["lm_head"]}
    assert hf_quantization_options(ct) == ("compressed-tensors", {"bits": 4, "group_size": 128, "symmetric": True})
    with pytest.raises(CheckpointError, match=r"version='gemv'"):
        hf_quantization_options({"quant_method": "awq", "version": "gemv"})
    with pytest.raises(CheckpointError, match=r"quant_method='bitsandbytes'"):
        hf_quantization_options({"quant_method": "bitsandbytes"})


def test_q4_1_through_the_float_offset_core_within_bound():
    """gguf-py's Q4_1 quantizer -> import_gguf -> zero_mode='float_offset' operands -> bit-exact model,
    within error_bound of the float64 reference; a hardware group of 16 repeats d and m."""
    gen = torch.Generator().manual_seed(41)
    w = (0.02 * torch.randn(24, 128, generator=gen) + 0.01).numpy()
    data = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_1)
    imported = import_gguf(data, w.shape, "Q4_1")
    x_codes, act_scale = quantize_activations_int8(torch.randn(5, 128, generator=gen))
    for group in (32, 16):
        config = MixPEConfig(rows=4, cols=4, group_size=group, zero_mode="float_offset")
        hw = imported.to_quantized_weights(config)
        y = bitexact_mpgemm(config, x_codes, act_scale, hw).double()
        reference = reference_mpgemm(x_codes, act_scale, hw, group)
        bound = error_bound(config, x_codes, act_scale, hw)
        assert ((y - reference).abs() <= bound).all()
        assert (bound / reference.abs()).median() < 1e-5
    with pytest.raises(CheckpointError, match="integer zero points need zero_mode='integer'"):
        q4_0 = import_gguf(gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_0), w.shape, "Q4_0")
        q4_0.to_quantized_weights(MixPEConfig(group_size=32, zero_mode="float_offset"))
    offsets = imported.offsets.float().clone()
    offsets[0, 0] = 2.0 ** -20                                       # subnormal in FP16
    bad = GroupQuantized(codes=imported.codes, scales=imported.scales, offsets=offsets, bits=4, group_size=32)
    with pytest.raises(CheckpointError, match=r"weight.offsets: value .* is subnormal in FP16"):
        bad.to_quantized_weights(MixPEConfig(group_size=32, zero_mode="float_offset"))
    offsets[0, 0] = 0.1                                              # not an FP16 number
    bad = GroupQuantized(codes=imported.codes, scales=imported.scales, offsets=offsets, bits=4, group_size=32)
    with pytest.raises(CheckpointError, match="not exactly representable in FP16, the hardware's offset format"):
        bad.to_quantized_weights(MixPEConfig(group_size=32, zero_mode="float_offset"))
