"""Host side of the FP32 units bench (:mod:`.tb`): the harness, directed and seeded random operands
for each unit, and their golden results (:mod:`golden.fp32`).

Directed cases per unit (the paths a GDU's few hundred operands reach rarely or never):

* int to float: every position of the leading one, for both signs (powers of two, all ones below
  it, random bits below it: the leading-zero counter and the absolute value's carry at every bit),
  the extremes, and for widths above 24 bits ties, odd neighbours and all-ones runs at every
  rounding position;
* FP16 widening: every subnormal code of both signs (the leading-zero count at every position),
  zeros, infinities, NaNs with each single mantissa bit, every exponent with edge mantissas;
* multiplier: every pair of 38 special patterns (zeros, subnormals, the normal and finite limits,
  infinities, NaNs, values around 1), NaNs with each single mantissa bit against 1.0, ties, a
  sticky bit at every product position (``(1 + 2^-i) * (1 + 2^-j)``), products whose bits below
  the guard region are ``2^22 - 2^j`` or ``2^j`` for every j (a carry into, or a borrow from, the
  rounding position), products around 2^-126 and 2^128, and a random ``exp_offset`` when it has one;
* adder: every pair of the special patterns, the single-bit NaNs, every exponent difference
  0..40, cancellations whose difference has its leading one at every position (the
  normalisation's leading-zero count), near the flush threshold too, and ties that a sticky bit
  would break at every alignment shift from 3 up (the shifted-out mask at every shift);

then seeded random operands (raw bit patterns and random normals) for each.
"""

from __future__ import annotations

import collections
import random
import struct

import torch

from golden.fp32 import bits, fadd32, fmul32, from_bits, int_to_fp32, widen_to_fp32
from hw.config import MixPEConfig
from verif.benches.fp32.harness import FP32Units, harness_latency, unit_specs

__all__ = ["component", "job", "SPECIAL_PATTERNS", "BOUNDARY_PAIRS", "int_operands", "fp16_codes", "multiplier_operands",
           "adder_operands"]

SPECIAL_PATTERNS = (
    0x00000000, 0x80000000,                          # zeros
    0x00000001, 0x807FFFFF, 0x00400000,              # subnormals
    0x00800000, 0x80800000, 0x00800001, 0x00FFFFFF,  # around the min normal
    0x7F7FFFFF, 0xFF7FFFFF, 0x7F7FFFFE, 0x7F000000,  # near the max finite
    0x7F800000, 0xFF800000,                          # infinities
    0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF, 0xFFBFFFFF,  # NaNs
    0x3F800000, 0xBF800000, 0x3F800001, 0x3F7FFFFF, 0x3FFFFFFF,  # around 1
    0x33800000, 0x33800001, 0x34000000, 0xB3800000, 0x33000000,  # ulp-sized values around 1
    0x1F800000, 0x20000000, 0x5F800000, 0x60000000, 0x3F000000, 0x3FC00000, 0x40000000, 0xC0400000,
)
#: Pairs whose sum or product sits on a rounding, overflow or flush boundary.
BOUNDARY_PAIRS = (
    (0x3F800000, 0x33800000), (0x3F800001, 0x33800000),  # ties around 1
    (0x3F7FFFFF, 0x33000000), (0x3FFFFFFF, 0x34000000),  # carries across a binade
    (0x7F7FFFFF, 0x73000000), (0x7F7FFFFF, 0x72FFFFFF),  # max + half ulp -> inf, just below -> max
    (0x00C00000, 0x80800000), (0x80C00000, 0x00800000),  # sums below 2^-126 flush with their sign
    (0x3F7FFFFF, 0x00800001), (0x3F7FFFFF, 0x00800000),  # products around 2^-126
    (0x3F000000, 0x80800001), (0x5F800000, 0x60000000), (0x5F7FFFFF, 0x60000000),
    (0x3F800800, 0x3F800800), (0x3F801000, 0x3F801000), (0x4B800000, 0xCB7FFFFF),
)
#: NaNs with a single mantissa bit, each bit and both signs (the NaN test's ``mantissa != 0`` at every
#: bit), paired with 1.0 either way in both binary units.
SINGLE_BIT_NANS = tuple(sign | 0x7F800000 | 1 << bit for sign in (0, 0x80000000) for bit in range(23))
ONE = 0x3F800000
#: Seeded random operands per unit, beside the directed ones.
RANDOM_COUNT = 1500
#: Product bits below the multiplier's guard region (they only feed its sticky bit; :mod:`hw.fp_mul`).
_STICKY_BITS = 22


def component(config: MixPEConfig) -> FP32Units:
    return FP32Units(config)


def _pack(negative: int, exponent: int, mantissa: int) -> int:
    return negative << 31 | exponent << 23 | mantissa


def _random_normal(rng: random.Random, low: int = 1, high: int = 254) -> int:
    return _pack(rng.getrandbits(1), rng.randint(low, high), rng.getrandbits(23))


def int_operands(width: int, rng: random.Random) -> list[int]:
    """Signed integers of ``width`` bits (see the module docstring)."""
    low, high = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    values = {0, 1, -1, 2, -2, low, high, low + 1, high - 1}
    for k in range(width - 1):
        for magnitude in (2 ** k, 2 ** (k + 1) - 1, 2 ** k | rng.getrandbits(k) if k else 1):
            values |= {magnitude, -magnitude}
    for shift in range(max(0, width - 25) + 1):
        for base in (2 ** 24, 2 ** 24 + 1, 2 ** 24 + 2, 2 ** 24 + 3, 2 ** 25 - 1, 2 ** 24 - 1):
            for offset in (-1, 0, 1):
                values |= {(base << shift) + offset, -((base << shift) + offset)}
    values = sorted(v for v in values if low <= v <= high)
    lengths = [rng.randint(1, width) for _ in range(RANDOM_COUNT)]
    return values + [rng.getrandbits(n) - 2 ** (n - 1) for n in lengths]


def fp16_codes(rng: random.Random) -> list[int]:
    """Raw FP16 codes (see the module docstring)."""
    codes = [sign | mantissa for sign in (0, 0x8000) for mantissa in range(0x400)]   # zeros and subnormals
    codes += [sign | 0x7C00 | mantissa for sign in (0, 0x8000)  # infinities, NaNs with one mantissa bit
              for mantissa in (0, 0x3FF, *(1 << bit for bit in range(10)))]
    codes += [sign | exponent << 10 | mantissa for sign in (0, 0x8000) for exponent in range(1, 31)
              for mantissa in (0, 1, 0x200, 0x3FF, rng.getrandbits(10))]
    return codes + [rng.getrandbits(16) for _ in range(RANDOM_COUNT)]


def _binary_operands(rng: random.Random) -> list[tuple[int, int]]:
    """Pairs both binary units get: every pair of special patterns, the boundary pairs, the
    single-bit NaNs against 1.0, random raw bit patterns and random normals with exponent
    differences up to 40 and trailing zeros (ties)."""
    pairs = [(a, b) for a in SPECIAL_PATTERNS for b in SPECIAL_PATTERNS] + list(BOUNDARY_PAIRS)
    pairs += [pair for nan in SINGLE_BIT_NANS for pair in ((nan, ONE), (ONE, nan))]
    pairs += [(rng.getrandbits(32), rng.getrandbits(32)) for _ in range(RANDOM_COUNT // 2)]
    for _ in range(RANDOM_COUNT // 2):
        exponent = rng.randint(1, 254)
        other = min(254, max(1, exponent + rng.randint(-40, 40)))
        trailing_a, trailing_b = rng.randrange(24), rng.randrange(24)
        pairs.append((_pack(rng.getrandbits(1), exponent, rng.getrandbits(23) >> trailing_a << trailing_a),
                      _pack(rng.getrandbits(1), other, rng.getrandbits(23) >> trailing_b << trailing_b)))
    return pairs


def multiplier_operands(rng: random.Random) -> list[tuple[int, int]]:
    """Multiplier pairs (see the module docstring)."""
    pairs = _binary_operands(rng)
    # (1 + 2^-i)(1 + 2^-j): product bits 46, 46 - i, 46 - j and 46 - i - j, so the sticky bit and
    # the carry-save rows see a lone one at every position.
    for i in range(1, 24):
        for j in range(1, 24):
            pairs.append((_pack(rng.getrandbits(1), rng.randint(64, 190), 1 << (23 - i)),
                          _pack(rng.getrandbits(1), rng.randint(64, 190), 1 << (23 - j))))
    # Products whose bits below the guard region are 2^22 - 2^j (all ones from bit j up) or 2^j
    # (a lone one): 2^j more carries into the guard and kept bits, 2^j less clears the sticky bit
    # or borrows from them, either of which changes the rounding for about one product in eight.
    for j in range(_STICKY_BITS):
        for low_bits in (-(1 << j), 1 << j):
            for _ in range(16):
                a = rng.getrandbits(23) | 1
                b = pow(a | 1 << 23, -1, 1 << _STICKY_BITS) * low_bits % (1 << _STICKY_BITS)
                b |= rng.getrandbits(1) << _STICKY_BITS
                pairs.append((_pack(rng.getrandbits(1), rng.randint(64, 190), a),
                              _pack(rng.getrandbits(1), rng.randint(64, 190), b)))
    # 12-bit by 13-bit significands: the 25-bit products are ties.
    for _ in range(RANDOM_COUNT // 4):
        a = (rng.randrange(2 ** 11, 2 ** 12) | 1) << 12
        b = (rng.randrange(2 ** 12, 2 ** 13) | 1) << 11
        pairs.append((_pack(rng.getrandbits(1), rng.randint(1, 254), a - 2 ** 23),
                      _pack(rng.getrandbits(1), rng.randint(1, 254), b - 2 ** 23)))
    # Products around 2^-126 and 2^128: a in [1, 2) times its reciprocal rounded to binary32,
    # scaled by 2^-60 * 2^-66 and by 2^64 * 2^64.
    for scale_a, scale_b in ((-60, -66), (64, 64)):
        for _ in range(RANDOM_COUNT // 8):
            a = _pack(0, 127, rng.getrandbits(23))
            reciprocal = struct.unpack("<I", struct.pack("<f", 1.0 / struct.unpack("<f", struct.pack("<I", a))[0]))[0]
            sign = rng.getrandbits(1) << 31
            pairs.append((a + (scale_a << 23) | sign, reciprocal + (scale_b << 23)))
    return pairs


def adder_operands(rng: random.Random) -> list[tuple[int, int]]:
    """Adder pairs (see the module docstring)."""
    pairs = _binary_operands(rng)
    # Opposite signs, magnitudes Delta apart in bit-pattern order (monotone in value): the
    # difference has its leading one at every position; a quarter near the flush threshold.
    for k in range(27):
        for _ in range(12):
            exponent = rng.randint(1, 12) if rng.random() < 0.25 else rng.randint(1, 253)
            a = _pack(0, exponent, rng.getrandbits(23)) + 2 ** 27
            delta = 2 ** k | rng.getrandbits(k) if k else 1
            b = max(0, a - delta)
            negative = rng.getrandbits(1)
            pairs.append((a | negative << 31, b | (1 - negative) << 31))
    return pairs + _sticky_ties()


#: Exponent differences of :func:`_sticky_ties`: from 3 (the smaller operand's last bit lands on the
#: sticky position) to 25, the last where a sticky bit can break a tie (the hidden bit one below the
#: guard, subtracted from a power of two); the adder's alignment saturates at 27 (``hw.fp_add``).
_TIE_SHIFTS = range(3, 26)


def _sticky_ties(per_case: int = 4, tries: int = 400) -> list[tuple[int, int]]:
    """Adder pairs at every exponent difference d in :data:`_TIE_SHIFTS`, effective addition and
    subtraction, whose exact sum is a tie that the smaller operand's last mantissa bit would break:
    its bits shifted out by the alignment are 0, so the sticky bit is 0, and a sticky bit of 1 (a
    wrong shifted-out mask at shift d) changes the rounding. The first ``per_case`` of ``tries``
    draws (a larger operand with a random or zero mantissa). Own generator: the other operands stay."""
    rng, candidates = random.Random("sticky_ties"), []
    for shift in _TIE_SHIFTS:
        for subtract in (0, 1):
            for _ in range(tries):
                exponent, negative = rng.randint(64, 190), rng.getrandbits(1)
                larger = _pack(negative, exponent, rng.choice([0, rng.getrandbits(23)]))
                # Bit d - 1 of the smaller significand (the hidden bit 23 at d = 24) lands on the
                # guard position and the bits below it are 0, bit 0 among them ("| 1": a sticky bit).
                low = min(max(shift - 1, 1), 23)
                mantissa = (rng.getrandbits(23) >> low << low | 1 << (shift - 1)) & 0x7FFFFF
                candidates.append((shift, subtract, larger, _pack(negative ^ subtract, exponent - shift, mantissa)))
    ties = _expected_binary(fadd32, [(larger, smaller) for _, _, larger, smaller in candidates])
    broken = _expected_binary(fadd32, [(larger, smaller | 1) for _, _, larger, smaller in candidates])
    found, pairs = collections.Counter(), []
    for (shift, subtract, larger, smaller), tie, sticky in zip(candidates, ties, broken):
        if tie != sticky and found[shift, subtract] < per_case:
            found[shift, subtract] += 1
            pairs.append((larger, smaller) if rng.getrandbits(1) else (smaller, larger))
    return pairs


def _expected_binary(golden, pairs, offsets=None) -> list[int]:
    a = from_bits(torch.tensor([p[0] for p in pairs], dtype=torch.int64))
    b = from_bits(torch.tensor([p[1] for p in pairs], dtype=torch.int64))
    result = golden(a, b) if offsets is None else golden(a, b, torch.tensor(offsets, dtype=torch.int64))
    return bits(result).tolist()


def _unit_job(kind: str, parameter: int, rng: random.Random) -> dict:
    """``ports`` (input names), ``vectors`` (raw unsigned port values per cycle), ``expected`` (raw FP32)."""
    if kind == "int_to_float":
        values = int_operands(parameter, rng)
        return {"ports": ["i"], "vectors": [[v & (2 ** parameter - 1)] for v in values],
                "expected": bits(int_to_fp32(torch.tensor(values, dtype=torch.int64))).tolist()}
    if kind == "widen":
        codes = fp16_codes(rng)
        return {"ports": ["i"], "vectors": [[c] for c in codes],
                "expected": bits(widen_to_fp32(torch.tensor(codes), 5, 10)).tolist()}
    if kind == "adder":
        pairs = adder_operands(rng)
        return {"ports": ["a", "b"], "vectors": [list(p) for p in pairs], "expected": _expected_binary(fadd32, pairs)}
    pairs = multiplier_operands(rng)
    if not parameter:
        return {"ports": ["a", "b"], "vectors": [list(p) for p in pairs], "expected": _expected_binary(fmul32, pairs)}
    # The offset's whole range, and 0 on the directed boundary cases (their threshold is at 0).
    low, high = -(2 ** (parameter - 1)), 2 ** (parameter - 1) - 1
    directed = len(SPECIAL_PATTERNS) ** 2 + len(BOUNDARY_PAIRS)
    offsets = [0 if index < directed or rng.random() < 0.25 else rng.randint(low, high) for index in range(len(pairs))]
    return {"ports": ["a", "b", "exp_offset"],
            "vectors": [[a, b, k & (2 ** parameter - 1)] for (a, b), k in zip(pairs, offsets)],
            "expected": _expected_binary(fmul32, pairs, offsets)}


def job(config: MixPEConfig, seed: int) -> dict:
    """Per unit of :func:`~verif.benches.fp32.harness.unit_specs`: its operands, one set per cycle,
    and the expected results, ``latency`` cycles later; JSON-able."""
    rng = random.Random(seed)
    units = {name: _unit_job(kind, parameter, rng) for name, (kind, parameter) in unit_specs(config).items()}
    return {"latency": harness_latency(config), "units": units}
