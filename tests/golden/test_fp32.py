"""golden/fp32.py against exact rational arithmetic (fractions.Fraction) and an independent RNE rounder."""

from __future__ import annotations

import struct
from fractions import Fraction

import numpy as np
import pytest
import torch

from golden.fp32 import (
    bf16_to_fp32,
    bits,
    fadd32,
    fmul32,
    fp16_bits,
    fp16_to_fp32,
    from_bits,
    int_to_fp32,
    widen_to_fp32,
)
from golden.numerics import CANONICAL_NAN_BITS

SEED = 20240611
NAN = "nan"
INF = "inf"

POS_INF_BITS = 0x7F800000
MIN_NORMAL_BITS = 0x00800000
MAX_FINITE_BITS = 0x7F7FFFFF
ONE_BITS = 0x3F800000


# ---------------------------------------------------------------- independent reference


def rne_to_24_bits(magnitude: Fraction) -> tuple[int, int, bool]:
    """Round a positive rational to 24 significant bits (RNE, unbounded exponent).

    Returns (significand in [2^23, 2^24), exponent e, was_tie) with value = significand * 2^(e-23).
    """
    assert magnitude > 0
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if magnitude < Fraction(2) ** exponent:
        exponent -= 1
    assert Fraction(2) ** exponent <= magnitude < Fraction(2) ** (exponent + 1)
    scaled = magnitude / Fraction(2) ** (exponent - 23)
    significand = scaled.numerator // scaled.denominator
    remainder = scaled - significand
    tie = remainder == Fraction(1, 2)
    if remainder > Fraction(1, 2) or (tie and significand % 2 == 1):
        significand += 1
    if significand == 2 ** 24:
        significand, exponent = 2 ** 23, exponent + 1
    return significand, exponent, tie


def encode(negative: bool, magnitude) -> int:
    """binary32 bits of a signed exact value under the contract: RNE, overflow to inf, FTZ after rounding."""
    sign = (1 << 31) if negative else 0
    if magnitude == INF:
        return sign | POS_INF_BITS
    if magnitude == 0:
        return sign
    significand, exponent, _ = rne_to_24_bits(magnitude)
    if exponent > 127:
        return sign | POS_INF_BITS
    if exponent < -126:
        return sign
    return sign | ((exponent + 127) << 23) | (significand - 2 ** 23)


def decode(pattern: int, flush_subnormal: bool = True):
    """(negative, magnitude) of a binary32 pattern, magnitude a Fraction, INF or NaN."""
    negative = bool(pattern >> 31)
    exponent = (pattern >> 23) & 0xFF
    mantissa = pattern & 0x7FFFFF
    if exponent == 0xFF:
        return negative, (INF if mantissa == 0 else NAN)
    if exponent == 0:
        return negative, (Fraction(0) if flush_subnormal else Fraction(mantissa, 2 ** 149))
    return negative, Fraction(2 ** 23 + mantissa) * Fraction(2) ** (exponent - 127 - 23)


def reference_mul(a: int, b: int) -> int:
    (neg_a, mag_a), (neg_b, mag_b) = decode(a), decode(b)
    negative = neg_a != neg_b
    if NAN in (mag_a, mag_b):
        return CANONICAL_NAN_BITS
    if INF in (mag_a, mag_b):
        return CANONICAL_NAN_BITS if 0 in (mag_a, mag_b) else encode(negative, INF)
    return encode(negative, mag_a * mag_b)


def reference_add(a: int, b: int) -> int:
    (neg_a, mag_a), (neg_b, mag_b) = decode(a), decode(b)
    if NAN in (mag_a, mag_b):
        return CANONICAL_NAN_BITS
    if mag_a == INF and mag_b == INF:
        return CANONICAL_NAN_BITS if neg_a != neg_b else encode(neg_a, INF)
    if mag_a == INF or mag_b == INF:
        return encode(neg_a if mag_a == INF else neg_b, INF)
    total = (-mag_a if neg_a else mag_a) + (-mag_b if neg_b else mag_b)
    if total == 0:
        both_zero_negative = mag_a == 0 and mag_b == 0 and neg_a and neg_b
        return encode(both_zero_negative, 0)
    return encode(total < 0, abs(total))


def reference_widen(code: int, exp_bits: int, man_bits: int) -> int:
    bias = 2 ** (exp_bits - 1) - 1
    negative = bool(code >> (exp_bits + man_bits))
    exponent = (code >> man_bits) & (2 ** exp_bits - 1)
    mantissa = code & (2 ** man_bits - 1)
    if exponent == 2 ** exp_bits - 1:
        return CANONICAL_NAN_BITS if mantissa else encode(negative, INF)
    if exponent == 0:
        value = Fraction(mantissa) * Fraction(2) ** (1 - bias - man_bits)
    else:
        value = Fraction(2 ** man_bits + mantissa) * Fraction(2) ** (exponent - bias - man_bits)
    if 0 < value < Fraction(2) ** -126:  # binary32 subnormal, exactly representable
        scaled = value * 2 ** 149
        assert scaled.denominator == 1
        return ((1 << 31) if negative else 0) | scaled.numerator
    result = encode(negative, value)
    assert decode(result)[1] == value, "widening must be exact"
    return result


# ---------------------------------------------------------------- vectors

SPECIAL_PATTERNS = [
    0x00000000, 0x80000000,                      # zeros
    0x00000001, 0x807FFFFF, 0x00400000,          # subnormals
    MIN_NORMAL_BITS, 0x80800000, 0x00800001,     # min normal and neighbour
    MAX_FINITE_BITS, 0xFF7FFFFF, 0x7F7FFFFE,     # max finite
    POS_INF_BITS, 0xFF800000,                    # infinities
    0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF, 0xFFBFFFFF,  # quiet and signalling NaNs
    ONE_BITS, 0xBF800000, 0x3F800001, 0x3F7FFFFF, 0x3FFFFFFF,     # around 1
    0x33800000, 0x33800001, 0x34000000, 0xB3800000,               # 2^-24, around half-ulp of 1
    0x1F800000, 0x20000000, 0x5F800000, 0x60000000,               # 2^-64, 2^-63, 2^64, 2^65
    0x00FFFFFF, 0x01000000, 0x3F000000, 0x3FC00000, 0x40000000,
]


def _pack(negative, biased_exponent, mantissa):
    return (negative.astype(np.int64) << 31) | (biased_exponent.astype(np.int64) << 23) | mantissa.astype(np.int64)


def random_operand_pairs(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    """Mix of raw random patterns, close exponents, short significands (ties) and near-threshold products."""
    pairs = []
    raw = rng.integers(0, 2 ** 32, size=(count, 2), dtype=np.int64)
    pairs += [tuple(map(int, p)) for p in raw]

    # Exponent differences 0..40 with random trailing zeros, to hit ties and cancellation in the adder.
    exp_a = rng.integers(1, 255, size=count)
    exp_b = np.clip(exp_a - rng.integers(-40, 41, size=count), 1, 254)
    trailing = rng.integers(0, 24, size=(count, 2))
    man = rng.integers(0, 2 ** 23, size=(count, 2)) >> trailing << trailing
    signs = rng.integers(0, 2, size=(count, 2))
    a = _pack(signs[:, 0], exp_a, man[:, 0])
    b = _pack(signs[:, 1], exp_b, man[:, 1])
    pairs += list(zip(map(int, a), map(int, b)))

    # Short significands: a 12-bit by 13-bit product has 24 or 25 bits, a tie when it has 25.
    sig_a = rng.integers(2 ** 11, 2 ** 12, size=count) | 1
    sig_b = rng.integers(2 ** 12, 2 ** 13, size=count) | 1
    a = _pack(signs[:, 0], rng.integers(60, 195, size=count), (sig_a << 12) - 2 ** 23)
    b = _pack(signs[:, 1], rng.integers(60, 195, size=count), (sig_b << 11) - 2 ** 23)
    pairs += list(zip(map(int, a), map(int, b)))

    # Products just around 2^-126 and 2^128: b is approximately 1/a, scaled.
    a_values = 1.0 + rng.random(count)
    recip = (1.0 / a_values).astype(np.float32)
    a_f32 = a_values.astype(np.float32)
    for scale_a, scale_b in ((2.0 ** -60, 2.0 ** -66), (2.0 ** 64, 2.0 ** 64)):
        sa = (a_f32 * np.float32(scale_a)).view(np.uint32).astype(np.int64)
        sb = (recip * np.float32(scale_b)).view(np.uint32).astype(np.int64)
        pairs += list(zip(map(int, sa), map(int, sb)))
    return pairs


def hand_picked_pairs() -> list[tuple[int, int]]:
    return [
        (ONE_BITS, 0x33800000),         # 1 + 2^-24: tie, stays 1
        (0x3F800001, 0x33800000),       # tie, rounds up to even
        (0x3F7FFFFF, 0x33000000),       # (1 - 2^-24) + 2^-25: tie, rounds up across the binade to 1
        (0x3FFFFFFF, 0x34000000),       # (2 - 2^-23) + 2^-23 = 2 exactly
        (MAX_FINITE_BITS, 0x73000000),  # max + half ulp: tie to even = 2^128 -> inf
        (MAX_FINITE_BITS, 0x72FFFFFF),  # max + just under half ulp -> max
        (MAX_FINITE_BITS, MAX_FINITE_BITS),
        (0x00C00000, 0x80800000),       # 1.5*2^-126 - 2^-126 = 2^-127 -> +0
        (0x80C00000, MIN_NORMAL_BITS),  # -> -0
        (MIN_NORMAL_BITS, 0x80800000),  # exact cancellation -> +0
        (0x80000000, 0x80000000), (0x00000000, 0x80000000), (0x80000000, 0x00000000),
        (0x80000001, 0x80000000),       # subnormal treated as -0: -0 + -0 = -0
        (0x00000001, 0x80000000),       # +0 + -0 = +0
        (0x3F7FFFFF, 0x00800001),       # (1 - 2^-24) * 2^-126 (1 + 2^-23): just above 2^-126
        (0x3F7FFFFF, MIN_NORMAL_BITS),  # 2^-126 - 2^-150, exact with unbounded exponent -> flushed
        (0x3F000000, 0x00800001),       # 2^-127 (1 + 2^-23) -> flushed
        (0x3F000000, 0x80800000),       # -> -0 (product sign)
        (POS_INF_BITS, 0x00000000), (0x00000000, 0xFF800000), (POS_INF_BITS, 0x00000001),
        (POS_INF_BITS, 0xFF800000), (POS_INF_BITS, POS_INF_BITS), (0xFF800000, 0x3F800000),
        (0x5F800000, 0x60000000),       # 2^64 * 2^65 -> inf
        (0x5F7FFFFF, 0x60000000),       # just below 2^128 after product -> finite
        (0x3F800001, 0x3F800001),       # (1 + 2^-23)^2: rounds down
        (0x3F801000, 0x3F801000),       # (1 + 2^-11)^2 = 1 + 2^-10 + 2^-22: exact
        (0x3F800800, 0x3F800800),       # (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24: tie to even
    ]


def _bits_list(values: torch.Tensor) -> list[int]:
    return bits(values).tolist()


def _first_mismatches(inputs, got, expected, limit=5):
    bad = [(i, g, e) for i, g, e in zip(inputs, got, expected) if g != e]
    lines = [f"in={tuple(hex(x) for x in i) if isinstance(i, tuple) else hex(i)} got={g:#010x} "
             f"expected={e:#010x}" for i, g, e in bad[:limit]]
    return len(bad), lines


@pytest.fixture(scope="module")
def operand_pairs():
    rng = np.random.default_rng(SEED)
    specials = [(a, b) for a in SPECIAL_PATTERNS for b in SPECIAL_PATTERNS]
    return specials + hand_picked_pairs() + random_operand_pairs(rng, 1000)


# ---------------------------------------------------------------- tests


def test_bits_round_trip():
    patterns = torch.tensor([0, 0x80000000, 0x7FC00000, 0xFFFFFFFF, ONE_BITS, 0x00000001], dtype=torch.int64)
    values = from_bits(patterns)
    assert values.dtype == torch.float32
    assert bits(values).tolist() == patterns.tolist()
    as_int32 = from_bits(torch.tensor([-1, -(2 ** 31)], dtype=torch.int32))  # int32 view of the same patterns
    assert bits(as_int32).tolist() == [0xFFFFFFFF, 0x80000000]
    assert struct.pack("<f", float(from_bits(torch.tensor([ONE_BITS]))[0])) == struct.pack("<I", ONE_BITS)


@pytest.mark.parametrize("operation, reference", [(fmul32, reference_mul), (fadd32, reference_add)],
                         ids=["fmul32", "fadd32"])
def test_binary_operation_matches_exact_arithmetic(operation, reference, operand_pairs):
    a = from_bits(torch.tensor([p[0] for p in operand_pairs], dtype=torch.int64))
    b = from_bits(torch.tensor([p[1] for p in operand_pairs], dtype=torch.int64))
    got = _bits_list(operation(a, b))
    expected = [reference(x, y) for x, y in operand_pairs]
    count, lines = _first_mismatches(operand_pairs, got, expected)
    assert count == 0, f"seed={SEED}: {count} mismatches of {len(got)}:\n" + "\n".join(lines)


def _exact_result(op, a, b):
    (neg_a, mag_a), (neg_b, mag_b) = decode(a), decode(b)
    if not (isinstance(mag_a, Fraction) and isinstance(mag_b, Fraction)):
        return None
    if op == "mul":
        return mag_a * mag_b
    return abs((-mag_a if neg_a else mag_a) + (-mag_b if neg_b else mag_b))


@pytest.mark.parametrize("op", ["mul", "add"])
def test_vectors_cover_the_rounding_corner_cases(op, operand_pairs):
    """The vector set really contains ties, carries across a binade, overflow by rounding and FTZ."""
    ties = binade_carries = rounding_overflows = rounded_up_to_min_normal = flushed_negative = 0
    for a, b in operand_pairs:
        exact = _exact_result(op, a, b)
        if not exact:
            continue
        significand, exponent, tie = rne_to_24_bits(exact)
        ties += tie
        carried = exact < Fraction(2) ** exponent
        binade_carries += carried
        rounding_overflows += carried and exponent == 128
        rounded_up_to_min_normal += carried and exponent == -126
        result = reference_mul(a, b) if op == "mul" else reference_add(a, b)
        flushed_negative += result == 0x80000000 and exact > 0
    assert ties >= 20, f"seed={SEED}"
    assert binade_carries >= 5, f"seed={SEED}"
    assert rounding_overflows >= 1, f"seed={SEED}"
    assert flushed_negative >= 1, f"seed={SEED}"
    if op == "mul":
        assert rounded_up_to_min_normal >= 5, f"seed={SEED}"


def test_flushed_and_zero_signs():
    def add(x, y):
        return bits(fadd32(from_bits(torch.tensor([x])), from_bits(torch.tensor([y])))).item()

    def mul(x, y):
        return bits(fmul32(from_bits(torch.tensor([x])), from_bits(torch.tensor([y])))).item()

    assert add(0x00C00000, 0x80800000) == 0x00000000
    assert add(0x80C00000, 0x00800000) == 0x80000000
    assert add(0x40400000, 0xC0400000) == 0x00000000
    assert add(0x80000000, 0x80000000) == 0x80000000
    assert add(0x00000000, 0x80000000) == 0x00000000
    assert mul(0x3F000000, 0x80800000) == 0x80000000
    assert mul(0x80000000, 0x7F800000) == CANONICAL_NAN_BITS
    assert mul(0x80000000, 0x3F800000) == 0x80000000
    assert mul(0xBF7FFFFF, 0x00800001) == 0x80800000


def test_int_to_fp32_matches_exact_rounding():
    rng = np.random.default_rng(SEED + 1)
    edges = [0, 1, -1, 2 ** 24, 2 ** 24 + 1, 2 ** 24 + 2, 2 ** 24 + 3, -(2 ** 24 + 1), -(2 ** 24 + 3),
             2 ** 24 - 1, 2 ** 25 + 2, 2 ** 25 + 6, 2 ** 53, 2 ** 53 + 1, 2 ** 53 - 1, -(2 ** 53) - 1,
             2 ** 62 - 1, -(2 ** 62) + 1, 2 ** 63 - 1, -(2 ** 63), 2 ** 63 - 2 ** 39, 2 ** 63 - 2 ** 39 - 1,
             (2 ** 24 + 1) << 30, ((2 ** 24 + 1) << 30) + 1, -((2 ** 24 + 1) << 30)]
    widths = rng.integers(1, 64, size=4000)
    randoms = [int(x) for x in rng.integers(-(2 ** 62), 2 ** 62, size=4000, dtype=np.int64) >> (63 - widths)]
    values = edges + randoms
    got = _bits_list(int_to_fp32(torch.tensor(values, dtype=torch.int64)))
    expected = [encode(v < 0, Fraction(abs(v))) for v in values]
    count, lines = _first_mismatches(values, got, expected)
    assert count == 0, f"seed={SEED + 1}: {count} mismatches:\n" + "\n".join(lines)
    assert int_to_fp32(torch.tensor([0])).item() == 0 and not torch.signbit(int_to_fp32(torch.tensor([0]))).item()


@pytest.mark.parametrize("exp_bits, man_bits", [(5, 10), (8, 7), (4, 3), (5, 2), (2, 1), (8, 23), (6, 9)])
def test_widen_matches_exact_value(exp_bits, man_bits):
    width = 1 + exp_bits + man_bits
    if width <= 16:
        codes = list(range(2 ** width))
    else:
        rng = np.random.default_rng(SEED + 2)
        codes = [int(c) for c in rng.integers(0, 2 ** width, size=20000)]
        codes += [0, 1, 2 ** man_bits - 1, 2 ** man_bits, (2 ** exp_bits - 1) << man_bits, 2 ** width - 1]
    got = _bits_list(widen_to_fp32(torch.tensor(codes), exp_bits, man_bits))
    expected = [reference_widen(c, exp_bits, man_bits) for c in codes]
    count, lines = _first_mismatches(codes, got, expected)
    assert count == 0, f"{count} mismatches:\n" + "\n".join(lines)


def test_fp16_and_bf16_agree_with_torch_casts():
    codes = torch.arange(2 ** 16, dtype=torch.int64)
    for convert, dtype in ((fp16_to_fp32, torch.float16), (bf16_to_fp32, torch.bfloat16)):
        native = codes.to(torch.int16).view(dtype).to(torch.float32)  # int64 -> int16 wraps
        native = torch.where(native.isnan(), from_bits(torch.tensor([CANONICAL_NAN_BITS])), native)
        assert torch.equal(bits(convert(codes)), bits(native)), dtype
    assert bits(fp16_to_fp32(torch.tensor([0x0001]))).item() == 0x33800000  # 2^-24, now normal
    assert bits(bf16_to_fp32(torch.tensor([0x8001]))).item() == 0x80010000  # stays a binary32 subnormal


def test_raw_bit_patterns_round_trip():
    codes = torch.arange(2 ** 16, dtype=torch.int64)
    assert torch.equal(fp16_bits(codes.to(torch.int16).view(torch.float16)), codes)
    assert fp16_bits(torch.tensor([-65504.0], dtype=torch.float16)).item() == 0xFBFF
    patterns = torch.tensor([0, 0x80000000, 0x3F800000, 0xFF7FFFFF, CANONICAL_NAN_BITS], dtype=torch.int64)
    assert torch.equal(bits(from_bits(patterns)), patterns)
    with pytest.raises(TypeError):
        fp16_bits(torch.ones(2))
