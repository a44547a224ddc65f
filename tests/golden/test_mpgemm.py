"""Tests of the golden models: operands, float64 reference, bit-exact MixPE numerics and error bound."""

from __future__ import annotations

import dataclasses
import itertools
import struct
import time
import zlib

import pytest
import torch

from golden.fp32 import fadd32, fmul32, fp16_to_fp32, int_to_fp32
from golden.mpgemm import bitexact_mpgemm, error_bound, float_reference, group_partials
from golden.operands import (OPERAND_KINDS, OperandError, QuantizedWeights, quantize_activations_int8,
                             quantize_weights_rtn, random_operands, resolve_seed, validate_operands)
from golden.reference import dequantize_weights, reference_mpgemm
from hw.config import MixPEConfig

ENCODINGS = ("unsigned", "signed")


def seed_for(*params) -> int:
    """A fixed seed per parameter combination (stable across runs and processes)."""
    return zlib.crc32("-".join(map(str, params)).encode())


def fp32_bits(y: torch.Tensor) -> torch.Tensor:
    return y.contiguous().view(torch.int32)


def scalar_mpgemm(config: MixPEConfig, x, act_scale, weights) -> torch.Tensor:
    """Element-by-element model of the contract: Python integer loops, one fp32 call per operation."""
    group = config.group_size
    xs, codes, zeros = x.tolist(), weights.codes.tolist(), weights.zeros.tolist()
    scales = weights.scales.tolist()
    m_count, k = x.shape
    n_count = weights.codes.shape[0]
    y = torch.empty(m_count, n_count, dtype=torch.float32)
    for m, n in itertools.product(range(m_count), range(n_count)):
        acc = None
        for j in range(k // group):
            p = sum(xs[m][i] * codes[n][i] for i in range(j * group, (j + 1) * group))
            a = sum(xs[m][i] for i in range(j * group, (j + 1) * group))
            d = p - zeros[n][j] * a
            raw16 = struct.unpack("<H", struct.pack("<e", scales[n][j]))[0]
            term = fmul32(int_to_fp32(torch.tensor([d])), fp16_to_fp32(torch.tensor([raw16])))
            acc = term if j == 0 else fadd32(acc, term)
        y[m, n] = fmul32(acc, act_scale[m:m + 1])[0]
    return y


# -- bit-exact model ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", OPERAND_KINDS)
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("bits", (2, 3, 4, 5, 6, 8))
@pytest.mark.parametrize("group", (8, 32, 64, 128))
def test_bitexact_equals_scalar_model(group, bits, encoding, kind):
    config = MixPEConfig(weight_bits=bits, group_size=group, weight_encoding=encoding)
    seed = seed_for("scalar", group, bits, encoding, kind)
    x, act_scale, weights = random_operands(config, 2, 3, 3 * group, seed, kind)
    fast = bitexact_mpgemm(config, x, act_scale, weights)
    slow = scalar_mpgemm(config, x, act_scale, weights)
    assert fast.dtype == torch.float32 and fast.shape == (2, 3)
    assert torch.equal(fp32_bits(fast), fp32_bits(slow)), f"seed={seed}: {fast} != {slow}"


def test_group_partials_shapes_and_values():
    config = MixPEConfig(weight_bits=3, group_size=8)
    seed = seed_for("partials")
    x, _, weights = random_operands(config, 3, 5, 32, seed)
    p, a, d = group_partials(config, x, weights)
    assert p.shape == (3, 5, 4) and a.shape == (3, 4) and d.shape == (3, 5, 4)
    assert p.dtype == a.dtype == d.dtype == torch.int64
    x_groups = x.view(3, 4, 8)
    codes_groups = weights.codes.view(5, 4, 8)
    expected_p = (x_groups[:, None] * codes_groups[None]).sum(-1)
    assert torch.equal(p, expected_p), f"seed={seed}"
    assert torch.equal(a, x_groups.sum(-1)), f"seed={seed}"
    assert torch.equal(d, expected_p - weights.zeros[None] * a[:, None]), f"seed={seed}"


# -- error bound ----------------------------------------------------------------------------------

BOUND_CASES = [  # (group size, weight bits, encoding, groups)
    (8, 4, "unsigned", 32),
    (32, 2, "signed", 32),
    (128, 8, "unsigned", 8),
    (128, 3, "signed", 4),
    (1024, 4, "unsigned", 2),
    (64, 5, "signed", 8),
    (256, 6, "unsigned", 4),
]


def check_error_bound(config, groups, seed, kind, label, median_limit):
    """bitexact within error_bound of the reference; on uniform data the bound is also tight."""
    x, act_scale, weights = random_operands(config, 8, 32, groups * config.group_size, seed, kind)
    y = bitexact_mpgemm(config, x, act_scale, weights).double()
    reference = reference_mpgemm(x, act_scale, weights, config.group_size)
    bound = error_bound(config, x, act_scale, weights)
    error = (y - reference).abs()
    assert torch.isfinite(bound).all(), f"seed={seed}: no FP32 overflow expected"
    assert (error <= bound).all(), f"seed={seed}: error {error.max().item()} exceeds bound"
    ratio = (error / bound).nan_to_num(0.0).max().item()
    print(f"\n{label} seed={seed}: max error/bound = {ratio:.3g}")
    if kind == "uniform":
        assert ratio > 0.01, f"seed={seed}: bound is vacuous (max error/bound {ratio:.3g})"
        relative = (bound / y.abs()).median().item()
        print(f"median bound/|y| = {relative:.3g}")
        assert relative < median_limit, f"seed={seed}: median bound/|y| = {relative:.3g}"


@pytest.mark.parametrize("kind", OPERAND_KINDS)
@pytest.mark.parametrize("group,bits,encoding,groups", BOUND_CASES)
def test_error_bound_holds(group, bits, encoding, groups, kind):
    config = MixPEConfig(weight_bits=bits, group_size=group, weight_encoding=encoding)
    seed = seed_for("bound", group, bits, encoding, groups, kind)
    check_error_bound(config, groups, seed, kind, f"{kind} g={group} b={bits} {encoding} G={groups}", 1e-5)


def test_error_bound_is_inf_on_fp32_overflow():
    config = MixPEConfig(group_size=8)
    seed = seed_for("overflow")
    x, act_scale, weights = random_operands(config, 2, 6, 16, seed, "worst")
    huge_scale = torch.full_like(act_scale, 3.0e38)
    y = bitexact_mpgemm(config, x, huge_scale, weights)
    bound = error_bound(config, x, huge_scale, weights)
    assert torch.isinf(y).any(), f"seed={seed}"
    assert torch.isinf(bound[torch.isinf(y)]).all(), f"seed={seed}"


# -- algebra and widths ---------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("group", (8, 64))
def test_eq5_group_formula_equals_dequantize_then_matmul(group, encoding):
    """sum_j s_j (P_j - z_j A_j) == x @ ((Q - z) * s).T, exactly, with integer scales."""
    config = MixPEConfig(weight_bits=4, group_size=group, weight_encoding=encoding)
    seed = seed_for("eq5", group, encoding)
    gen = torch.Generator().manual_seed(seed)
    x, _, weights = random_operands(config, 4, 6, 4 * group, seed)
    scales = torch.randint(1, 9, weights.scales.shape, generator=gen).half()
    weights = dataclasses.replace(weights, scales=scales)
    act_scale = torch.ones(4)
    _, _, d = group_partials(config, x, weights)
    per_group = (d.double() * scales.double()[None]).sum(-1)
    dequantized = reference_mpgemm(x, act_scale, weights, group)
    assert torch.equal(per_group, dequantized), f"seed={seed}"
    assert torch.equal(dequantized, x.double() @ dequantize_weights(weights, group).T), f"seed={seed}"


def signed_width(value: int) -> int:
    """Bits of the narrowest two's complement field holding ``value``."""
    return (value if value >= 0 else -value - 1).bit_length() + 1


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("group", (8, 128, 1024))
@pytest.mark.parametrize("bits", (2, 3, 4, 5, 6, 8))
def test_worst_case_d_fills_dsum_bits(bits, group, encoding):
    config = MixPEConfig(weight_bits=bits, group_size=group, weight_encoding=encoding)
    seed = seed_for("worst-d", bits, group, encoding)
    x, _, weights = random_operands(config, 1, 2, group, seed, "worst")
    _, _, d = group_partials(config, x, weights)
    widths = [signed_width(value) for value in d.flatten().tolist()]
    assert max(widths) == config.dsum_bits, f"seed={seed}: D={d.flatten().tolist()} dsum_bits={config.dsum_bits}"
    if encoding == "unsigned":
        extreme = 128 * group * config.code_max
        assert sorted(d.flatten().tolist()) == [-extreme, extreme], f"seed={seed}"


# -- validation -----------------------------------------------------------------------------------

BASE = MixPEConfig(weight_bits=4, group_size=8)
SIGNED = BASE.replace(weight_encoding="signed")


def valid_operands(config: MixPEConfig = BASE):
    """x (3, 16), act_scale (3,), weights 4 x 16 with 2 groups."""
    return random_operands(config, 3, 4, 16, seed_for("valid", config.weight_encoding))


def with_weights(**changes):
    def mutate(x, act_scale, weights):
        return x, act_scale, dataclasses.replace(weights, **changes)
    return mutate


def set_item(tensor: torch.Tensor, index, value) -> torch.Tensor:
    changed = tensor.clone()
    changed[index] = value
    return changed


_, _, _w = valid_operands()
BAD_CASES = {  # case: (mutation, config, tensor named, fragment of the message)
    "x not a tensor": (lambda x, a, w: (x.tolist(), a, w), BASE, "x", "list"),
    "x dtype": (lambda x, a, w: (x.int(), a, w), BASE, "x", "torch.int32"),
    "x rank": (lambda x, a, w: (x.flatten(), a, w), BASE, "x", "(48,)"),
    "x empty": (lambda x, a, w: (x[:0], a[:0], w), BASE, "x", "(0, 16)"),
    "x above int8": (lambda x, a, w: (set_item(x, (1, 2), 128), a, w), BASE, "x", "128"),
    "x below int8": (lambda x, a, w: (set_item(x, (0, 0), -129), a, w), BASE, "x", "-129"),
    "K not multiple of group": (lambda x, a, w: (x[:, :12], a, dataclasses.replace(w, codes=w.codes[:, :12])),
                                BASE, "x", "K=12"),
    "weights type": (lambda x, a, w: (x, a, (w.codes, w.scales, w.zeros)), BASE, "weights", "tuple"),
    "codes K mismatch": (lambda x, a, w: (x[:, :8], a, w), BASE, "weights.codes", "(4, 16)"),
    "codes dtype": (with_weights(codes=_w.codes.int()), BASE, "weights.codes", "torch.int32"),
    "codes empty N": (with_weights(codes=_w.codes[:0], scales=_w.scales[:0], zeros=_w.zeros[:0]),
                      BASE, "weights.codes", "(0, 16)"),
    "codes above range": (with_weights(codes=set_item(_w.codes, (2, 3), 16)), BASE, "weights.codes", "16"),
    "codes negative": (with_weights(codes=set_item(_w.codes, (0, 1), -1)), BASE, "weights.codes", "-1"),
    "scales dtype": (with_weights(scales=_w.scales.float()), BASE, "weights.scales", "torch.float32"),
    "scales shape": (with_weights(scales=_w.scales[:, :1]), BASE, "weights.scales", "(4, 1)"),
    "scales inf": (with_weights(scales=set_item(_w.scales, (1, 1), float("inf"))), BASE, "weights.scales", "inf"),
    "scales nan": (with_weights(scales=set_item(_w.scales, (1, 0), float("nan"))), BASE, "weights.scales", "nan"),
    "scales subnormal": (with_weights(scales=set_item(_w.scales, (0, 1), 2.0 ** -20)), BASE, "weights.scales",
                         repr(2.0 ** -20)),
    "zeros dtype": (with_weights(zeros=_w.zeros.double()), BASE, "weights.zeros", "torch.float64"),
    "zeros shape": (with_weights(zeros=_w.zeros.T), BASE, "weights.zeros", "(2, 4)"),
    "zeros above range": (with_weights(zeros=set_item(_w.zeros, (3, 0), 16)), BASE, "weights.zeros", "16"),
    "zeros not symmetric": (with_weights(zeros=set_item(valid_operands(SIGNED)[2].zeros, (0, 0), 7)), SIGNED,
                            "weights.zeros", "zero point to be 8"),
    "act_scale dtype": (lambda x, a, w: (x, a.double(), w), BASE, "act_scale", "torch.float64"),
    "act_scale shape": (lambda x, a, w: (x, a[:2], w), BASE, "act_scale", "(2,)"),
    "act_scale rank": (lambda x, a, w: (x, a[:, None], w), BASE, "act_scale", "(3, 1)"),
    "act_scale inf": (lambda x, a, w: (x, set_item(a, 0, float("-inf")), w), BASE, "act_scale", "-inf"),
    "act_scale nan": (lambda x, a, w: (x, set_item(a, 2, float("nan")), w), BASE, "act_scale", "nan"),
    "act_scale subnormal": (lambda x, a, w: (x, set_item(a, 1, 1e-40), w), BASE, "act_scale", "at index (1,)"),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_validation_names_the_tensor(case):
    mutate, config, name, fragment = BAD_CASES[case]
    x, act_scale, weights = mutate(*valid_operands(config))
    with pytest.raises(OperandError) as error:
        validate_operands(config, x, act_scale, weights)
    message = str(error.value)
    assert message.startswith(f"{name}:"), message
    assert fragment in message, message
    with pytest.raises(OperandError, match=f"^{name}:"):
        bitexact_mpgemm(config, x, act_scale, weights)


def test_int8_needs_token_scales():
    x, _, weights = valid_operands()
    for model in (bitexact_mpgemm, error_bound, float_reference):
        with pytest.raises(OperandError, match=r"^act_scale: None, but activation='int8' needs per-token FP32 "
                                               r"scales \(a float32 tensor of shape \(M,\)"):
            model(BASE, x, None, weights)


def test_valid_operands_pass_and_are_not_modified():
    x, act_scale, weights = valid_operands()
    copies = [t.clone() for t in (x, act_scale, weights.codes, weights.scales, weights.zeros)]
    validate_operands(BASE, x, act_scale, weights)
    bitexact_mpgemm(BASE, x, act_scale, weights)
    for before, after in zip(copies, (x, act_scale, weights.codes, weights.scales, weights.zeros)):
        assert torch.equal(before, after)


@pytest.mark.parametrize("call,fragment", [
    (lambda: random_operands(BASE, 2, 2, 12, 0), "k=12"),
    (lambda: random_operands(BASE, 0, 2, 8, 0), "m=0"),
    (lambda: random_operands(BASE, 2, 2, 8, 0, kind="gaussian"), "kind='gaussian'"),
    (lambda: quantize_activations_int8(torch.tensor([[1.0, float("nan")]])), "x_float"),
    (lambda: quantize_activations_int8(torch.tensor([[1e-39, 0.0]])), "x_float: row 0"),
    (lambda: quantize_weights_rtn(BASE, torch.ones(2, 12)), "w_float"),
    (lambda: quantize_weights_rtn(BASE, torch.full((1, 8), 1e9)), "w_float: group (0, 0)"),
])
def test_generators_and_quantizers_reject_bad_input(call, fragment):
    with pytest.raises(OperandError) as error:
        call()
    assert fragment in str(error.value), str(error.value)


def test_resolve_seed():
    assert resolve_seed(7) == 7 and resolve_seed(0) == 0
    assert 0 <= resolve_seed(None) < 2 ** 31


# -- quantizers -----------------------------------------------------------------------------------

def test_quantize_activations_int8():
    x_float = torch.tensor([[127.0, 0.5, 1.5, -2.5], [0.0, 0.0, 0.0, 0.0], [0.3, -0.2, 0.1, 0.0]])
    codes, scale = quantize_activations_int8(x_float)
    assert codes.dtype == torch.int64 and scale.dtype == torch.float32
    assert codes[0].tolist() == [127, 0, 2, -2]  # round half to even
    assert codes[1].tolist() == [0, 0, 0, 0] and scale[1].item() == 1.0
    assert codes[2, 0].item() == 127
    seed = seed_for("act-quant")
    x_float = torch.randn(16, 64, generator=torch.Generator().manual_seed(seed))
    codes, scale = quantize_activations_int8(x_float)
    assert codes.abs().max() <= 127, f"seed={seed}"
    error = (codes * scale.double()[:, None] - x_float.double()).abs()
    assert (error <= 0.5 * scale.double()[:, None] * (1 + 1e-6)).all(), f"seed={seed}"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("bits", (2, 3, 4, 5, 6, 8))
def test_quantize_weights_rtn(bits, encoding):
    config = MixPEConfig(weight_bits=bits, group_size=32, weight_encoding=encoding)
    seed = seed_for("rtn", bits, encoding)
    w_float = 0.05 * torch.randn(8, 128, generator=torch.Generator().manual_seed(seed))
    w_float[3, 32:64] = 0.0  # an all-zero group
    weights = quantize_weights_rtn(config, w_float)
    x, act_scale = torch.zeros(1, 128, dtype=torch.int64), torch.ones(1)
    validate_operands(config, x, act_scale, weights)
    assert weights.scales[3, 1].item() == 2.0 ** -14, f"seed={seed}"
    assert (weights.codes[3, 32:64] == weights.zeros[3, 1]).all(), f"seed={seed}"
    scale = weights.scales.double().repeat_interleave(32, dim=1)
    error = (dequantize_weights(weights, 32) - w_float.double()).abs()
    # half a step, plus the shift of the grid caused by rounding the scale to FP16
    tolerance = scale * (0.5 + (config.code_max + 1) * 2.0 ** -10)
    assert (error <= tolerance).all(), f"seed={seed}: max error/scale {(error / scale).max().item():.3g}"


# -- size -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_mixtral_expert_gemm_timing():
    """M=64 tokens x K=4096 x N=14336 (one Mixtral expert's up projection) with the default config."""
    config = MixPEConfig()
    seed = seed_for("mixtral")
    x, act_scale, weights = random_operands(config, 64, 14336, 4096, seed)
    start, start_cpu = time.perf_counter(), time.process_time()
    y = bitexact_mpgemm(config, x, act_scale, weights)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    print(f"\nbitexact_mpgemm M=64 K=4096 N=14336 g={config.group_size}: {elapsed:.2f} s wall, "
          f"{cpu:.2f} s CPU, {torch.get_num_threads()} threads")
    assert y.shape == (64, 14336) and torch.isfinite(y).all(), f"seed={seed}"
    assert elapsed < 60, f"seed={seed}: {elapsed:.1f} s (a few seconds expected on an idle 2-core machine)"
    block = QuantizedWeights(codes=weights.codes[:64], scales=weights.scales[:64], zeros=weights.zeros[:64])
    y_block = bitexact_mpgemm(config, x[:4], act_scale[:4], block)
    assert torch.equal(fp32_bits(y_block), fp32_bits(y[:4, :64])), f"seed={seed}"
    bound = error_bound(config, x[:4], act_scale[:4], block)
    reference = reference_mpgemm(x[:4], act_scale[:4], block, config.group_size)
    assert ((y_block.double() - reference).abs() <= bound).all(), f"seed={seed}"


# -- float offsets (llama.cpp Q4_1: w = d*q + m) ---------------------------------------------------

def scalar_offset_mpgemm(config: MixPEConfig, x, act_scale, weights) -> torch.Tensor:
    """Element-by-element model of the float-offset contract: term = fp32(P)*d + fp32(A)*m."""
    group = config.group_size
    xs, codes = x.tolist(), weights.codes.tolist()
    scales, offsets = weights.scales.tolist(), weights.offsets.tolist()
    m_count, k = x.shape
    n_count = weights.codes.shape[0]

    def fp16(value):
        return fp16_to_fp32(torch.tensor([struct.unpack("<H", struct.pack("<e", value))[0]]))

    y = torch.empty(m_count, n_count, dtype=torch.float32)
    for m, n in itertools.product(range(m_count), range(n_count)):
        acc = None
        for j in range(k // group):
            p = sum(xs[m][i] * codes[n][i] for i in range(j * group, (j + 1) * group))
            a = sum(xs[m][i] for i in range(j * group, (j + 1) * group))
            t = fmul32(int_to_fp32(torch.tensor([p])), fp16(scales[n][j]))
            o = fmul32(int_to_fp32(torch.tensor([a])), fp16(offsets[n][j]))
            term = fadd32(t, o)
            acc = term if j == 0 else fadd32(acc, term)
        y[m, n] = fmul32(acc, act_scale[m:m + 1])[0]
    return y


def offset_config(**changes) -> MixPEConfig:
    return MixPEConfig(zero_mode="float_offset", **changes)


@pytest.mark.parametrize("kind", OPERAND_KINDS)
@pytest.mark.parametrize("bits,group", [(4, 32), (2, 8), (5, 32), (6, 64), (8, 128)])
def test_float_offset_bitexact_equals_scalar_model(bits, group, kind):
    config = offset_config(weight_bits=bits, group_size=group)
    seed = seed_for("offset-scalar", group, bits, kind)
    x, act_scale, weights = random_operands(config, 2, 3, 3 * group, seed, kind)
    assert weights.zeros is None and weights.offsets.dtype == torch.float16
    fast = bitexact_mpgemm(config, x, act_scale, weights)
    slow = scalar_offset_mpgemm(config, x, act_scale, weights)
    assert torch.equal(fp32_bits(fast), fp32_bits(slow)), f"seed={seed}: {fast} != {slow}"


@pytest.mark.parametrize("kind", OPERAND_KINDS)
@pytest.mark.parametrize("group,bits,groups", [(8, 4, 32), (32, 4, 8), (128, 8, 8), (1024, 8, 2)])
def test_float_offset_error_bound_holds(group, bits, groups, kind):
    config = offset_config(weight_bits=bits, group_size=group)
    seed = seed_for("offset-bound", group, bits, groups, kind)
    check_error_bound(config, groups, seed, kind, f"float_offset {kind} g={group} b={bits} G={groups}", 3e-5)


def test_float_offset_bound_adversarial_cancellation_and_large_p():
    """t and o cancel (m = -d*q, codes q constant), and |P| > 2**24 (int_to_fp32 rounds)."""
    config = offset_config(weight_bits=8, group_size=1024)
    gen = torch.Generator().manual_seed(seed_for("offset-adversarial"))
    m, n, groups = 4, 6, 3
    x = torch.randint(100, 128, (m, groups * 1024), generator=gen)
    x[1] = -x[1]
    codes = torch.randint(250, 256, (n, groups * 1024), generator=gen)
    codes[0] = 7                                                        # P = 7A: cancels against m = -7d
    scales = (torch.randint(1, 16, (n, groups), generator=gen) / 4).half()   # 4-bit mantissas: 7*d is exact
    offsets = (-7 * scales.double()).half()
    offsets[1:] = torch.randn(n - 1, groups, generator=gen).half()
    weights = QuantizedWeights(codes=codes, scales=scales, offsets=offsets)
    act_scale = torch.rand(m, generator=gen) + 0.5
    p, _, d = group_partials(config, x, weights)
    assert torch.equal(p, d) and (p.abs() > 2 ** 24).any()
    y = bitexact_mpgemm(config, x, act_scale, weights).double()
    reference = reference_mpgemm(x, act_scale, weights, 1024)
    assert torch.equal(y[:, 0], torch.zeros(m, dtype=torch.float64))   # exact cancellation, exact result
    assert ((y - reference).abs() <= error_bound(config, x, act_scale, weights)).all()


def test_float_offset_configuration_and_operands():
    with pytest.raises(ValueError, match="zero_mode='fp8'"):
        MixPEConfig(zero_mode="fp8")
    with pytest.raises(ValueError, match="requires weight_encoding='unsigned'"):
        MixPEConfig(zero_mode="float_offset", weight_encoding="signed")
    config = offset_config(group_size=8)
    assert config.replace(gdu_stages=0).gdu_latency == MixPEConfig(group_size=8, gdu_stages=0).gdu_latency + 1
    assert config.hash != MixPEConfig(group_size=8).hash
    x, act_scale, weights = random_operands(config, 2, 4, 16, 0)
    integer_x, _, integer_weights = random_operands(MixPEConfig(group_size=8), 2, 4, 16, 0)
    bad = {
        "weights.zeros": dataclasses.replace(weights, zeros=integer_weights.zeros),
        "weights.offsets": dataclasses.replace(weights, offsets=None),
    }
    for name, value in bad.items():
        with pytest.raises(OperandError, match=f"^{name}: zero_mode='float_offset'"):
            validate_operands(config, x, act_scale, value)
    with pytest.raises(OperandError, match="^weights.offsets: zero_mode='integer'"):
        validate_operands(MixPEConfig(group_size=8), integer_x, act_scale,
                          dataclasses.replace(integer_weights, offsets=weights.offsets))
    for value, fragment in ((float("inf"), "inf"), (2.0 ** -20, repr(2.0 ** -20))):
        offsets = weights.offsets.clone()
        offsets[1, 1] = value
        with pytest.raises(OperandError, match=r"^weights.offsets: value .* offsets must be finite") as error:
            validate_operands(config, x, act_scale, dataclasses.replace(weights, offsets=offsets))
        assert fragment in str(error.value)
    with pytest.raises(OperandError, match="^weights.offsets: dtype torch.float32"):
        validate_operands(config, x, act_scale, dataclasses.replace(weights, offsets=weights.offsets.float()))


@pytest.mark.parametrize("zero_mode", ["integer", "float_offset"])
def test_bitexact_channel_blocks_equal_scalar_model(monkeypatch, zero_mode):
    """Channel blocks of 2 (the last one partial) give the scalar model's bits, and a bad code in a
    later block is reported with its index like validate_operands does."""
    import golden.mpgemm as mpgemm
    config = MixPEConfig(weight_bits=4, group_size=8, zero_mode=zero_mode)
    seed = seed_for("blocks", zero_mode)
    x, act_scale, weights = random_operands(config, 3, 7, 24, seed)
    monkeypatch.setattr(mpgemm, "BLOCK_CODES", 2 * 24)
    fast = bitexact_mpgemm(config, x, act_scale, weights)
    slow = (scalar_offset_mpgemm if zero_mode == "float_offset" else scalar_mpgemm)(config, x, act_scale, weights)
    assert torch.equal(fp32_bits(fast), fp32_bits(slow)), f"seed={seed}"
    codes = weights.codes.clone()
    codes[5, 9] = 16
    with pytest.raises(OperandError, match=r"weights.codes: value 16 at index \(5, 9\) is outside the 4-bit"):
        bitexact_mpgemm(config, x, act_scale, dataclasses.replace(weights, codes=codes))
