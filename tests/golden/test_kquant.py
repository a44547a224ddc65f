"""Hierarchical group dequantization (scale_mode="kquant"): the bit-exact model against a scalar
replay of its contract, its error bound on every operand kind, and the operand checks."""

import pytest
import torch

from golden.fp32 import fadd32, fmul32, int_to_fp32
from golden.kquant import (KQuantWeights, dequantize_kquant, kquant_error_bound, random_kquant_operands,
                           superblock_sums, validate_kquant_operands)
from golden.mpgemm import bitexact_mpgemm, error_bound, float_reference, within_bound
from golden.operands import FP_OPERAND_KINDS, OPERAND_KINDS, OperandError
from hw.config import MixPEConfig

Q4_K = MixPEConfig(rows=4, cols=4, group_size=32, zero_mode="float_offset", scale_mode="kquant", name="q4k")
Q5_K = Q4_K.replace(weight_bits=5, name="q5k")
Q2_K = Q4_K.replace(weight_bits=2, group_size=16, name="q2k")
Q6_K = MixPEConfig(rows=4, cols=4, weight_bits=6, weight_encoding="signed", group_size=16, scale_mode="kquant",
                   name="q6k")
Q3_K = Q6_K.replace(weight_bits=3, name="q3k")
ANY_ZERO = Q6_K.replace(weight_encoding="unsigned", weight_bits=4, name="int-zero")
CONFIGS = [Q4_K, Q5_K, Q2_K, Q6_K, Q3_K, ANY_ZERO]


def scalar_model(config, x, act_scale, weights):
    """The contract of golden.kquant one output at a time, with golden.fp32's functions throughout."""
    from golden.kquant import _pe_activations
    pe_x, lsb, invalid = _pe_activations(config, x)
    s_sum, m_sum = superblock_sums(config, pe_x, weights)
    m, n, supers = s_sum.shape
    out = torch.empty(m, n, dtype=torch.float32)
    for row in range(m):
        for col in range(n):
            acc = None
            for s in range(supers):
                offset = None if lsb is None else lsb[row, s]
                term = fmul32(int_to_fp32(s_sum[row, col, s]), weights.scales[col, s].float(), offset)
                if config.float_offset:
                    term = fadd32(term, fmul32(int_to_fp32(m_sum[row, col, s]), weights.offsets[col, s].float(), offset))
                if invalid is not None and invalid[row, s]:
                    term = torch.tensor(float("nan"))
                acc = term if acc is None else fadd32(acc, term)
            out[row, col] = acc if config.fp_activation else fmul32(acc, act_scale[row])
    return out


@pytest.mark.parametrize("activation", ["int8", "fp16"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_model_equals_its_scalar_contract(config, activation):
    config = config.replace(activation=activation)
    x, act_scale, weights = random_kquant_operands(config, 3, 5, 512, seed=7)
    got = bitexact_mpgemm(config, x, act_scale, weights)
    assert torch.equal(got.view(torch.int32), scalar_model(config, x, act_scale, weights).view(torch.int32))


@pytest.mark.parametrize("activation", ["int8", "fp16", "bf16"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_every_kind_is_within_its_bound(config, activation):
    config = config.replace(activation=activation)
    kinds = FP_OPERAND_KINDS if config.fp_activation else OPERAND_KINDS
    for seed, kind in enumerate(kinds):
        x, act_scale, weights = random_kquant_operands(config, 6, 7, 768, seed=seed, kind=kind)
        exact = bitexact_mpgemm(config, x, act_scale, weights)
        assert bool(within_bound(config, x, act_scale, weights, exact).all()), kind
        if kind == "uniform":
            bound = error_bound(config, x, act_scale, weights)
            error = (exact.double() - float_reference(config, x, act_scale, weights)).abs()
            assert bool((error <= bound).all()) and float((error / bound).max()) > 1e-3   # not vacuous


def test_zero_sub_scales_give_exact_zeros_and_maximal_ones_stay_exact_integers():
    x, act_scale, weights = random_kquant_operands(Q6_K, 4, 6, 512, seed=3, kind="zeros")
    y = bitexact_mpgemm(Q6_K, x, act_scale, weights)
    assert bool((y[:, 0::2] == 0).all()) and bool((y[:, 1::2] != 0).any())
    x, act_scale, weights = random_kquant_operands(Q6_K, 4, 6, 512, seed=3, kind="worst")
    s_sum, _ = superblock_sums(Q6_K, x, weights)
    assert int(s_sum.abs().max()) == 128 * 256 * 128 * 32         # sc = -128, |x| = 128, |q - z| = 32
    assert int(s_sum.abs().max()) < 2 ** (Q6_K.sub_sum_bits - 1)


def test_operands_hold_subnormal_d_and_o():
    _, _, weights = random_kquant_operands(Q4_K, 2, 8, 256, seed=2, kind="zeros")
    for values in (weights.scales[3::4], weights.offsets[3::4]):
        assert bool(((values != 0) & (values.float().abs() < 2.0 ** -14)).any())


def test_dequantized_weights_follow_the_llama_cpp_formulas():
    x, act_scale, weights = random_kquant_operands(Q4_K, 1, 2, 256, seed=5)
    w = dequantize_kquant(Q4_K, weights)
    n, k = 1, 37
    j = k // 32
    expected = float(weights.scales[n, 0]) * int(weights.sub_scales[n, j]) * int(weights.codes[n, k]) \
        + float(weights.offsets[n, 0]) * int(weights.mins[n, j])
    assert float(w[n, k]) == expected


def test_operand_errors_name_the_field():
    x, act_scale, weights = random_kquant_operands(Q4_K, 2, 3, 256, seed=1)
    bad = KQuantWeights(codes=weights.codes, scales=weights.scales, sub_scales=weights.sub_scales + 64,
                        offsets=weights.offsets, mins=weights.mins)
    with pytest.raises(OperandError, match=r"weights.sub_scales: value \d+ at index .* the unsigned 6-bit range"):
        validate_kquant_operands(Q4_K, x, act_scale, bad)
    with pytest.raises(OperandError, match=r"float_offset.* needs weights.offsets and mins, zeros=None"):
        validate_kquant_operands(Q4_K, x, act_scale, KQuantWeights(weights.codes, weights.scales, weights.sub_scales))
    with pytest.raises(OperandError, match=r"K-quant super-block, 256"):
        random_kquant_operands(Q4_K, 2, 3, 128, seed=1)
    with pytest.raises(OperandError, match=r"expected KQuantWeights"):
        kquant_error_bound(Q4_K, x, act_scale, "weights")
    x6, scale6, w6 = random_kquant_operands(Q6_K, 2, 3, 256, seed=1)
    with pytest.raises(OperandError, match=r"weights.zeros: .* zero point 32"):
        validate_kquant_operands(Q6_K, x6, scale6, KQuantWeights(w6.codes, w6.scales, w6.sub_scales, zeros=w6.zeros - 1))


def test_cycle_model_takes_whole_super_blocks():
    from golden.cycles import predict_cycles
    assert predict_cycles(Q4_K, [8, 16]).cycles > predict_cycles(Q4_K.replace(scale_mode="flat"), [8, 16]).cycles
    with pytest.raises(ValueError, match=r"groups_per_tile\[1\]=4: scale_mode='kquant' tiles are whole super-blocks of 8"):
        predict_cycles(Q4_K, [8, 4])
