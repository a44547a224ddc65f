# amaranth: UnusedElaboratable=no
"""Floating-point activations: formats, the edge alignment (golden and RTL), the exponent-offset FP32
multiply, the bit-exact model with its error bound, and the special-value policy."""

from __future__ import annotations

import itertools
import struct
import zlib
from fractions import Fraction

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from golden.fp32 import bits, fadd32, fmul32, fp16_to_fp32, from_bits, int_to_fp32
from golden.fp_activations import (activation_codes, activation_fields, align_activations, decode_activations,
                                   encode_activations, shared_exponents)
from golden.mpgemm import bitexact_mpgemm, error_bound, float_reference, group_partials, within_bound
from golden.operands import FP_OPERAND_KINDS, OperandError, QuantizedWeights, random_operands
from hw.config import ConfigError, MixPEConfig, from_preset
from hw.fp_align import ActivationAligner
from hw.fp_mul import Float32Multiplier

TORCH_FORMATS = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp8_e4m3": torch.float8_e4m3fn,
                 "fp8_e5m2": torch.float8_e5m2}
FORMATS = tuple(TORCH_FORMATS) + ("fp_e3m4", "fp_e6m9")


def seed_for(*params) -> int:
    return zlib.crc32("-".join(map(str, params)).encode())


def config_for(activation: str, **changes) -> MixPEConfig:
    return MixPEConfig(rows=4, cols=4, group_size=changes.pop("group_size", 16), activation=activation, **changes)


# -- formats and encoding --------------------------------------------------------------------------

@pytest.mark.parametrize("activation", TORCH_FORMATS)
def test_decode_every_code_matches_torch(activation):
    config = config_for(activation)
    dtype = TORCH_FORMATS[activation]
    codes = torch.arange(2 ** config.act_bits)
    view = torch.int16 if config.act_bits == 16 else torch.uint8
    expected = codes.to(view).view(dtype).double()
    got = decode_activations(config, codes)
    same = (got == expected) | (torch.isnan(got) & torch.isnan(expected))
    assert bool(same.all()), f"{int((~same).sum())} codes decode differently, first {int((~same).nonzero()[0])}"
    assert bool((activation_codes(config, codes.to(view).view(dtype)) == codes).all())


@pytest.mark.parametrize("activation", TORCH_FORMATS)
def test_encode_matches_torch_rounding_from_float32(activation):
    config = config_for(activation)
    fmt = config.act_format
    gen = torch.Generator().manual_seed(seed_for(activation))
    values = torch.randn(50_000, generator=gen) * torch.pow(2.0, torch.randint(-30, 20, (50_000,), generator=gen).float())
    values = values.clamp(-fmt.max_finite, fmt.max_finite)
    values[:6] = torch.tensor([0.0, -0.0, fmt.min_subnormal, -fmt.min_subnormal / 2, fmt.max_finite, 1.0])
    got = encode_activations(config, values)
    expected = activation_codes(config, values.to(TORCH_FORMATS[activation]))
    assert bool((got == expected).all()), f"{int((got != expected).sum())} of {len(values)} values round differently"


def test_encode_rounds_float64_once():
    """torch rounds float64 -> float16 through float32 (twice); the encoder rounds once."""
    config = config_for("fp16")
    value = torch.tensor([1359.4999608301557], dtype=torch.float64)   # float32 rounds it to 1359.5
    assert float(decode_activations(config, encode_activations(config, value))) == 1359.0


@pytest.mark.parametrize("activation, value, fragment", [
    ("fp16", 65520.0, "largest finite fp16 magnitude 65504"),
    ("fp8_e4m3", 480.0, "largest finite fp8_e4m3 magnitude 448"),
    ("fp8_e4m3", float("inf"), "fp8_e4m3"),
])
def test_encode_refuses_to_saturate(activation, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        encode_activations(config_for(activation), torch.tensor([1.0, value]))


def test_formats_in_configuration_and_presets():
    for preset, activation, pe_bits in (("w4a16-g128-16x16", "fp16", 18), ("w4bf16-g128-16x16", "bf16", 15),
                                        ("w4e4m3-g128-16x16", "fp8_e4m3", 11), ("w4e5m2-g128-16x16", "fp8_e5m2", 10)):
        config = from_preset(preset)
        assert (config.activation, config.pe_act_bits, config.guard) == (activation, pe_bits, 6)
        assert config.hash != config.replace(guard_bits=4).hash
        assert config.to_dict()["derived"]["pe_act_bits"] == pe_bits
    assert config_for("fp_e6m9").act_format.bias == 31
    assert from_preset("w4a8-g128-16x16").replace(gdu_stages=0, gdu_lanes=16).hash == "c865bb5096d1", \
        "INT8 hashes (and cached builds) of the first release's hardware must not change"
    with pytest.raises(ConfigError, match="guard_bits=3: only floating-point"):
        MixPEConfig(guard_bits=3)
    with pytest.raises(ConfigError, match="guard_bits=17: must be an integer from 0 to 16"):
        MixPEConfig(activation="fp16", guard_bits=17)
    with pytest.raises(ConfigError, match=r"activation='fp_e9m2'.*fp_e<E>m<M>"):
        MixPEConfig(activation="fp_e9m2")


# -- alignment ------------------------------------------------------------------------------------

def _value(config: MixPEConfig, code: int) -> Fraction:
    fmt = config.act_format
    negative, exponent, mantissa = code >> (fmt.bits - 1), (code >> fmt.man_bits) & (2 ** fmt.exp_bits - 1), \
        code & (2 ** fmt.man_bits - 1)
    significand = mantissa + (2 ** fmt.man_bits if exponent else 0)
    value = significand * Fraction(2) ** (max(exponent, 1) - fmt.bias - fmt.man_bits)
    return -value if negative else value


def _round_half_away(value: Fraction) -> int:
    magnitude = abs(value)
    rounded = int(magnitude + Fraction(1, 2))      # floor(|v| + 1/2)
    return -rounded if value < 0 else rounded


@pytest.mark.parametrize("activation", FORMATS)
@pytest.mark.parametrize("guard_bits", (0, 4, 9))
def test_alignment_matches_exact_rational_model(activation, guard_bits):
    """aligned = round-half-away(x / 2**k) with k the LSB exponent, |x - aligned 2**k| <= 2**(k-1),
    invalid exactly for Inf/NaN and for elements above the shared exponent."""
    config = config_for(activation, guard_bits=guard_bits, group_size=8)
    fmt = config.act_format
    gen = torch.Generator().manual_seed(seed_for(activation, guard_bits))
    codes = torch.randint(0, 2 ** fmt.bits, (400, 8), generator=gen)
    e_max = torch.randint(1, 2 ** fmt.exp_bits, (400, 1), generator=gen)
    aligned, invalid = align_activations(config, codes, e_max)
    _, e_eff, _, special = activation_fields(config, codes)
    expected_invalid = (special | (e_eff > e_max)).any(dim=1)
    assert bool((invalid[:, 0] == expected_invalid).all())
    for row, column in itertools.product(range(400), range(8)):
        code, shared = int(codes[row, column]), int(e_max[row])
        if bool(special[row, column]) or int(e_eff[row, column]) > shared:
            assert int(aligned[row, column]) == 0
            continue
        lsb = Fraction(2) ** (shared + config.lsb_exponent_offset)
        value = _value(config, code)
        assert int(aligned[row, column]) == _round_half_away(value / lsb), (hex(code), shared)
        assert abs(value - int(aligned[row, column]) * lsb) <= lsb / 2
        assert abs(int(aligned[row, column])) < 2 ** (config.pe_act_bits - 1)


def test_fp16_times_every_code_is_exact_at_its_own_exponent():
    """Golden side of the exhaustive product test: every finite FP16 code x every 4-bit code."""
    config = config_for("fp16", group_size=8)
    codes = torch.arange(2 ** 16)
    _, e_eff, _, special = activation_fields(config, codes)
    finite = ~special
    rows = torch.cat([codes[finite, None], torch.zeros(int(finite.sum()), 7, dtype=torch.int64)], dim=1)
    e_max = e_eff[finite, None]
    aligned, invalid = align_activations(config, rows, e_max)
    assert not invalid.any()
    scale = torch.pow(2.0, (e_max[:, 0] + config.lsb_exponent_offset).double())
    real = decode_activations(config, codes[finite])
    for weight_code in range(16):
        assert bool((aligned[:, 0].double() * weight_code * scale == real * weight_code).all())


def test_shared_exponent_ignores_specials_and_zeros():
    config = config_for("fp16", group_size=8)
    values = torch.tensor([[0.0, -0.0, 1.5, 0.25, 0, 0, 0, 0], [float("inf"), 2.0 ** -20, 0, 0, 0, 0, 0, 0],
                           [0.0] * 8, [float("nan")] + [0.0] * 7], dtype=torch.float64)
    e_max = shared_exponents(config, encode_activations(config, values))
    assert e_max[:, 0].tolist() == [15, 1, 1, 1]      # 1.5 -> field 15; 2^-20 is subnormal (e_eff 1)


def _simulate_aligner(config: MixPEConfig, codes: list[int], e_max: list[int]) -> list[tuple[int, int]]:
    dut = ActivationAligner(config.replace(rows=1))
    results = []

    async def testbench(ctx):
        for code, shared in zip(codes, e_max):
            ctx.set(dut.x[0], code)
            ctx.set(dut.e_max[0], shared)
            await ctx.delay(1e-9)
            results.append((ctx.get(dut.aligned[0]), ctx.get(dut.invalid[0])))

    simulator = Simulator(dut)
    simulator.add_testbench(testbench)
    simulator.run()
    return results


@pytest.mark.parametrize("activation", ("bf16", "fp8_e4m3", "fp8_e5m2", "fp_e3m4"))
def test_aligner_rtl_matches_golden(activation):
    """The aligner block (Amaranth simulation) on random codes and shared exponents, including
    elements above the shared exponent; FP16 is covered exhaustively under Verilator."""
    config = config_for(activation, group_size=8)
    fmt = config.act_format
    rng = np.random.default_rng(seed_for("aligner", activation))
    count = min(2 ** fmt.bits, 1500)
    codes = rng.choice(2 ** fmt.bits, size=count, replace=False).tolist()
    e_max = rng.integers(1, 2 ** fmt.exp_bits, size=count).tolist()
    rows = torch.tensor(codes)[:, None] * torch.tensor([1] + [0] * 7)[None, :]
    aligned, invalid = align_activations(config, rows, torch.tensor(e_max)[:, None])
    got = _simulate_aligner(config, codes, e_max)
    expected = list(zip(aligned[:, 0].tolist(), invalid[:, 0].int().tolist()))
    wrong = [(hex(c), e, g, x) for c, e, g, x in zip(codes, e_max, got, expected) if g != x]
    assert not wrong, f"{len(wrong)} of {count} differ (code, e_max, rtl, golden): {wrong[:5]}"


# -- FP32 multiply with exponent offset ------------------------------------------------------------

def test_fmul32_exponent_offset_rounds_once_and_rtl_agrees():
    rng = np.random.default_rng(seed_for("fmul-offset"))
    count = 600
    a = rng.integers(0, 2 ** 32, size=count, dtype=np.int64)
    b = rng.integers(0, 2 ** 32, size=count, dtype=np.int64)
    offsets = rng.integers(-200, 200, size=count)
    # Products landing near 2^-126 and 2^128 only because of the offset.
    a[:100] = 0x3F800000 + rng.integers(0, 2 ** 23, size=100)
    b[:100] = 0x3F800000 + rng.integers(0, 2 ** 23, size=100)
    offsets[:50], offsets[50:100] = -126 - rng.integers(-1, 2, size=50), 127 + rng.integers(-1, 2, size=50)
    a_fp, b_fp = from_bits(torch.tensor(a)), from_bits(torch.tensor(b))
    expected = bits(fmul32(a_fp, b_fp, torch.tensor(offsets))).tolist()
    plain = fmul32(a_fp, b_fp)
    scaled_exactly = fmul32(plain, torch.ones(count), torch.tensor(offsets))
    finite = torch.isfinite(plain) & (plain != 0) & (plain.abs() > 2.0 ** -100) & (plain.abs() < 2.0 ** 100)
    small_offset = torch.tensor(offsets).abs() < 20
    assert bool((bits(scaled_exactly) == torch.tensor(expected))[finite & small_offset].all())
    dut = Float32Multiplier(offset_bits=10)
    got = []

    async def testbench(ctx):
        for x, y, k in zip(a.tolist(), b.tolist(), offsets.tolist()):
            ctx.set(dut.a, x)
            ctx.set(dut.b, y)
            ctx.set(dut.exp_offset, k)
            await ctx.delay(1e-9)
            got.append(ctx.get(dut.o))

    simulator = Simulator(dut)
    simulator.add_testbench(testbench)
    simulator.run()
    wrong = [(hex(x), hex(y), k, hex(g), hex(e)) for x, y, k, g, e in zip(a.tolist(), b.tolist(), offsets.tolist(),
                                                                          got, expected) if g != e]
    assert not wrong, f"{len(wrong)} of {count} differ (a, b, offset, rtl, golden): {wrong[:5]}"


# -- bit-exact model and error bound ---------------------------------------------------------------

def scalar_fp_mpgemm(config: MixPEConfig, codes: torch.Tensor, weights) -> torch.Tensor:
    """Element-by-element model of the floating-point contract with Python integers."""
    group = config.group_size
    m_count, k = codes.shape
    e_max = shared_exponents(config, codes)
    aligned, invalid = align_activations(config, codes, e_max)
    xs, wc = aligned.tolist(), weights.codes.tolist()
    y = torch.empty(m_count, weights.codes.shape[0], dtype=torch.float32)
    for m, n in itertools.product(range(m_count), range(weights.codes.shape[0])):
        acc = None
        for j in range(k // group):
            span = range(j * group, (j + 1) * group)
            p = sum(xs[m][i] * wc[n][i] for i in span)
            a = sum(xs[m][i] for i in span)
            offset = torch.tensor([int(e_max[m, j]) + config.lsb_exponent_offset])
            scale = fp16_to_fp32(torch.tensor([struct.unpack("<H", struct.pack("<e", float(weights.scales[n, j])))[0]]))
            if config.float_offset:
                raw = struct.unpack("<H", struct.pack("<e", float(weights.offsets[n, j])))[0]
                term = fadd32(fmul32(int_to_fp32(torch.tensor([p])), scale, offset),
                              fmul32(int_to_fp32(torch.tensor([a])), fp16_to_fp32(torch.tensor([raw])), offset))
            else:
                term = fmul32(int_to_fp32(torch.tensor([p - int(weights.zeros[n, j]) * a])), scale, offset)
            if bool(invalid[m, j]):
                term = torch.tensor([float("nan")])
            acc = term if j == 0 else fadd32(acc, term)
        y[m, n] = acc[0]
    return y


@pytest.mark.parametrize("activation", FORMATS)
@pytest.mark.parametrize("zero_mode", ("integer", "float_offset"))
def test_bitexact_equals_scalar_model(activation, zero_mode):
    config = config_for(activation, zero_mode=zero_mode)
    for kind in ("uniform", "outlier", "specials"):
        x, act_scale, weights = random_operands(config, 5, 3, 48, seed=seed_for(activation, zero_mode, kind), kind=kind)
        assert act_scale is None
        got = bits(bitexact_mpgemm(config, x, None, weights))
        assert bool((got == bits(scalar_fp_mpgemm(config, x, weights))).all()), kind


@pytest.mark.parametrize("activation", FORMATS)
@pytest.mark.parametrize("zero_mode", ("integer", "float_offset"))
@pytest.mark.parametrize("guard_bits", (0, None, 8))
@pytest.mark.parametrize("kind", FP_OPERAND_KINDS)
def test_error_bound_holds(activation, zero_mode, guard_bits, kind):
    config = config_for(activation, zero_mode=zero_mode, guard_bits=guard_bits, group_size=32)
    x, _, weights = random_operands(config, 9, 20, 128, seed=seed_for(activation, zero_mode, guard_bits, kind),
                                    kind=kind)
    y = bitexact_mpgemm(config, x, None, weights)
    holds = within_bound(config, x, None, weights, y)
    assert bool(holds.all()), f"bound fails at {holds.logical_not().nonzero()[:3].tolist()}"


@pytest.mark.parametrize("zero_mode", ("integer", "float_offset"))
def test_error_bound_is_inf_where_the_fp32_chain_overflows(zero_mode):
    """BF16 activations near 2**127, every weight 1, four groups of 8, exact result 0 where an FP32
    value of the group chain overflows: row 0 has groups +B and -B with 8B beyond FP32, so the
    terms are +Inf and -Inf and the result NaN; row 1 has groups +v, +v, -v, -v with 8v finite
    but 16v not, so the sum is Inf after group 1 and stays Inf. The bound is inf there, finite
    on a row of ones, and within_bound accepts all rows."""
    config = config_for("bf16", group_size=8, zero_mode=zero_mode)
    big, v = 1.5 * 2.0 ** 127, 1.5 * 2.0 ** 124
    rows = [[big] * 8 + [-big] * 8 + [0.0] * 16, [v] * 16 + [-v] * 16, [1.0] * 32]
    x = encode_activations(config, torch.tensor(rows, dtype=torch.float64))
    if zero_mode == "integer":
        weights = QuantizedWeights(codes=torch.ones(2, 32, dtype=torch.int64), scales=torch.ones(2, 4).half(),
                                   zeros=torch.zeros(2, 4, dtype=torch.int64))
    else:
        weights = QuantizedWeights(codes=torch.zeros(2, 32, dtype=torch.int64), scales=torch.ones(2, 4).half(),
                                   offsets=torch.ones(2, 4).half())
    y = bitexact_mpgemm(config, x, None, weights)
    assert torch.isnan(y[0]).all() and torch.isinf(y[1]).all() and (y[2] == 32).all(), y
    assert (float_reference(config, x, None, weights)[:2] == 0).all()
    bound = error_bound(config, x, None, weights)
    assert torch.isinf(bound[:2]).all() and torch.isfinite(bound[2]).all(), bound
    assert bool(within_bound(config, x, None, weights, y).all())


def test_error_bound_shrinks_with_guard_bits():
    """The alignment part of the bound halves per guard bit (outlier groups: it dominates)."""
    bounds = []
    for guard_bits in (0, 2, 4, 6):
        config = config_for("fp16", guard_bits=guard_bits, group_size=32)
        x, _, weights = random_operands(config, 6, 8, 64, seed=5, kind="outlier")
        bounds.append(float(error_bound(config, x, None, weights).max()))
    ratios = [bounds[i] / bounds[i + 1] for i in range(3)]
    assert all(3.5 < ratio < 4.5 for ratio in ratios), ratios


# -- special values --------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", FORMATS)
def test_special_values_policy(activation):
    """Inf or NaN anywhere in a row's group: that row's outputs are NaN (all columns), other rows
    unaffected; subnormal rows are exact before the FP32 steps; +-0 rows give zeros."""
    config = config_for(activation, group_size=16)
    m, group = 4 * config.rows, config.group_size
    x, _, weights = random_operands(config, m, 5, 2 * group, seed=seed_for("specials", activation), kind="specials")
    y = bitexact_mpgemm(config, x, None, weights)
    values = decode_activations(config, x)
    invalid = ~torch.isfinite(values)
    non_finite_rows = invalid.any(dim=1)
    kind = [(r + r // config.rows) % 4 for r in range(m)]   # each block of R rows starts 1 kind on
    assert non_finite_rows.tolist() == [k in (1, 2) for k in kind]
    assert invalid.sum(dim=1).max() == 1, "one invalid element per row: no group's flag masks another's"
    at_last = [bool(invalid[r].nonzero()[0, 0] % group == group - 1) for r in range(m) if non_finite_rows[r]]
    assert at_last == [kind[r] == 2 for r in range(m) if non_finite_rows[r]], "Inf inside a group, NaN at its end"
    for k in (1, 2):
        assert {r % config.rows for r in range(m) if kind[r] == k} == set(range(config.rows)), \
            "every array row holds an invalid element inside a group and one at a group's last step"
    assert bool(torch.isnan(y[non_finite_rows]).all())
    assert bool(bits(y[non_finite_rows]).eq(0x7FC00000).all()), "canonical NaN"
    assert bool(torch.isfinite(y[~non_finite_rows]).all())
    _, e_eff, _, _ = activation_fields(config, x[[r for r in range(m) if kind[r] == 0]])
    assert bool((e_eff == 1).all()), "kind 0 rows hold only subnormals and zeros"
    assert bool(within_bound(config, x, None, weights, y).all())
    zero_rows = encode_activations(config, torch.tensor([[0.0, -0.0] * 16], dtype=torch.float64))
    assert bool((bitexact_mpgemm(config, zero_rows, None, weights) == 0).all())


def test_element_above_shared_exponent_is_flagged():
    config = config_for("fp16", group_size=8)
    codes = encode_activations(config, torch.tensor([[1.0, 2.0, 0, 0, 0, 0, 0, 0]], dtype=torch.float64))
    _, invalid = align_activations(config, codes, torch.tensor([[15]]))     # 2.0 has exponent field 16
    assert invalid.tolist() == [[True]]


def test_operand_validation_for_float_activations():
    config = config_for("fp16")
    x, _, weights = random_operands(config, 2, 3, 16, seed=1)
    with pytest.raises(OperandError, match="act_scale: got a tensor, but activation='fp16' has no per-token scale"):
        bitexact_mpgemm(config, x, torch.ones(2), weights)
    with pytest.raises(OperandError, match=r"x: code 65536 at index \(0, 0\) is outside the fp16 code range"):
        bitexact_mpgemm(config, torch.full((2, 16), 65536), None, weights)
    with pytest.raises(OperandError, match="activation='fp16' takes torch.float16"):
        bitexact_mpgemm(config, torch.zeros(2, 16, dtype=torch.bfloat16), None, weights)
    as_half = decode_activations(config, x).half()
    assert bool((bits(bitexact_mpgemm(config, as_half, None, weights)) == bits(bitexact_mpgemm(config, x, None, weights))).all())
    p, a, d = group_partials(config, as_half, weights)
    assert p.shape == (2, 3, 1) and a.shape == (2, 1)
    reference = float_reference(config, as_half, None, weights)
    assert torch.allclose(reference, as_half.double() @ (weights.codes - weights.zeros.repeat_interleave(16, 1)).double()
                          .mul(weights.scales.double().repeat_interleave(16, 1)).T)


# -- accuracy target -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", (0, 1, 2))
@pytest.mark.parametrize("outlier_scale", (1, 30, 100))
def test_fp16_default_guard_bits_beat_fp16_gemm(seed, outlier_scale):
    """Issue target: FP16 activations at the default guard bits are no less accurate than an FP16
    GEMM with FP32 accumulation on FP16-rounded dequantized weights (normwise, vs float64)."""
    from gen.accuracy import llm_like_activations, random_weights
    from golden.reference import dequantize_weights
    config = MixPEConfig(group_size=128, activation="fp16")
    weights = random_weights(config, 48, 512, seed)
    values = llm_like_activations(24, 512, seed + 1)
    values = torch.where(values.abs() > 5, values / 30 * outlier_scale, values)
    codes = encode_activations(config, values)
    reference = float_reference(config, codes, None, weights)
    mixpe = bitexact_mpgemm(config, codes, None, weights).double()
    gpu = decode_activations(config, codes).half().float() @ dequantize_weights(weights, 128).half().float().T
    relative = lambda y: float((y.double() - reference).norm() / reference.norm())   # noqa: E731
    assert relative(mixpe) <= relative(gpu), (relative(mixpe), relative(gpu))


# -- native float32 fast path of the FP32 chain ----------------------------------------------------

def _random_raw_operands(config: MixPEConfig, m: int, n: int, k: int, seed: int):
    """Activations as uniformly random raw codes (subnormals, extremes and specials included);
    weights with random codes and random raw FP16 scales and offsets that are 0 or normal of
    either sign (the smallest 2**-14 to the largest 65504)."""
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2 ** config.act_format.bits, (m, k), generator=gen)

    def fp16_values(shape):
        exponent = torch.randint(0, 31, shape, generator=gen)
        mantissa = torch.where(exponent == 0, 0, torch.randint(0, 1024, shape, generator=gen))
        sign = torch.randint(0, 2, shape, generator=gen) << 15
        return (sign | exponent << 10 | mantissa).to(torch.int16).view(torch.float16)

    groups = k // config.group_size
    weight_codes = torch.randint(0, config.code_max + 1, (n, k), generator=gen)
    if config.float_offset:
        return codes, QuantizedWeights(codes=weight_codes, scales=fp16_values((n, groups)),
                                       offsets=fp16_values((n, groups)))
    zeros = torch.randint(0, config.code_max + 1, (n, groups), generator=gen)
    return codes, QuantizedWeights(codes=weight_codes, scales=fp16_values((n, groups)), zeros=zeros)


@pytest.fixture
def native_chain_calls(monkeypatch):
    """Counts of the native chain's outcomes: ``native`` (used) and ``fallback`` (refused)."""
    import golden.mpgemm as mpgemm
    calls = {"native": 0, "fallback": 0}
    native = mpgemm._native_fp_chain

    def counted(*args):
        block = native(*args)
        calls["fallback" if block is None else "native"] += 1
        return block

    monkeypatch.setattr(mpgemm, "_native_fp_chain", counted)
    return calls


@pytest.mark.parametrize("activation", FORMATS)
@pytest.mark.parametrize("zero_mode", ("integer", "float_offset"))
def test_native_chain_equals_contract_functions(activation, zero_mode, native_chain_calls):
    """The native float32 chain gives the contract's bits (fmul32 / fadd32, ``native_fp=False``)
    on every operand kind and on random raw codes over the whole range (subnormals, the largest
    values, Inf and NaN, extreme and zero scales of both signs), falling back where it must."""
    config = config_for(activation, zero_mode=zero_mode)
    cases = [random_operands(config, 6, 5, 64, seed=seed_for("native", activation, zero_mode, kind), kind=kind)[::2]
             for kind in FP_OPERAND_KINDS]
    cases += [_random_raw_operands(config, 6, 5, 64, seed_for("raw", activation, zero_mode, seed)) for seed in range(6)]
    for x, weights in cases:
        fast = bits(bitexact_mpgemm(config, x, None, weights))
        assert bool((fast == bits(bitexact_mpgemm(config, x, None, weights, native_fp=False))).all())
    assert native_chain_calls["native"] > 0


def test_native_chain_falls_back_below_the_normal_range_and_on_overflow(monkeypatch, native_chain_calls):
    """BF16 activations whose term lands below 2**-126 (the contract flushes, native float32 keeps
    subnormals), whose chain overflows, or whose 2**k is itself subnormal, in blocks of one output
    channel: refused blocks take the contract's functions, the others stay native, and the bits are
    the contract's everywhere."""
    import golden.mpgemm as mpgemm
    monkeypatch.setattr(mpgemm, "BLOCK_CODES", 16)            # K = 16: one output channel per block
    config = config_for("bf16", group_size=8, zero_mode="float_offset")
    weights = QuantizedWeights(codes=torch.ones(2, 16, dtype=torch.int64),
                               scales=torch.tensor([[2.0 ** -14, 1.0], [1.0, 1.0]]).half(),
                               offsets=torch.tensor([[0.0, 0.5], [0.5, -0.25]]).half())
    rows_and_calls = [
        ([[2.0 ** -113] + [0.0] * 7 + [1.0] * 8], {"native": 1, "fallback": 1}),  # channel 0: a 2**-127 term
        ([[1.5 * 2.0 ** 127] * 8 + [-1.5 * 2.0 ** 127] * 8], {"native": 0, "fallback": 2}),  # Inf - Inf
        ([[2.0 ** -120] * 16], {"native": 0, "fallback": 0}),                    # 2**k = 2**-127: not tried
    ]
    for rows, calls in rows_and_calls:
        x = encode_activations(config, torch.tensor(rows, dtype=torch.float64))
        native_chain_calls.update(native=0, fallback=0)
        fast = bits(bitexact_mpgemm(config, x, None, weights))
        assert bool((fast == bits(bitexact_mpgemm(config, x, None, weights, native_fp=False))).all()), rows
        assert native_chain_calls == calls, rows
