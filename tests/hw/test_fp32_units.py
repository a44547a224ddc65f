# amaranth: UnusedElaboratable=no
"""The FP32 blocks in hw/ against the bit-exact golden model golden/fp32.py, combinational and at
every pipeline depth (:mod:`hw.fp_stages`).

(The first line silences Amaranth's unused-elaboratable lint for the constructors that are
expected to raise.)
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from amaranth.back import verilog
from amaranth.sim import Simulator

from golden.fp32 import bits, fadd32, fmul32, from_bits, int_to_fp32, widen_to_fp32
from hw.fp_add import Float32Adder
from hw.fp_int_to_float import IntToFloat32
from hw.fp_mul import Float32Multiplier
from hw.fp_stages import ADDER_CUTS, MULTIPLIER_CUTS, int_to_float_cuts
from hw.fp_widen import WidenToFloat32
from verif.benches.fp32.host import BOUNDARY_PAIRS, SPECIAL_PATTERNS

SEED = 1_526_311

# The directed patterns are the FP32 units bench's (the RTL counterpart of these tests).
HAND_PICKED_PAIRS = list(BOUNDARY_PAIRS)


def _pack(negative, biased_exponent, mantissa) -> np.ndarray:
    return ((np.asarray(negative, dtype=np.int64) << 31) | (np.asarray(biased_exponent, dtype=np.int64) << 23)
            | np.asarray(mantissa, dtype=np.int64))


def _pairs(a, b) -> list[tuple[int, int]]:
    return list(zip(map(int, a), map(int, b)))


def binary_operand_pairs(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    pairs = [(x, y) for x in SPECIAL_PATTERNS for y in SPECIAL_PATTERNS] + HAND_PICKED_PAIRS

    raw = rng.integers(0, 2 ** 32, size=(count, 2), dtype=np.int64)
    pairs += _pairs(raw[:, 0], raw[:, 1])

    # Exponent differences 0..40 (both orders), random signs and trailing zeros (ties).
    exp_a = rng.integers(1, 255, size=count)
    exp_b = np.clip(exp_a + rng.integers(-40, 41, size=count), 1, 254)
    trailing = rng.integers(0, 24, size=(count, 2))
    mantissas = rng.integers(0, 2 ** 23, size=(count, 2)) >> trailing << trailing
    signs = rng.integers(0, 2, size=(count, 2))
    pairs += _pairs(_pack(signs[:, 0], exp_a, mantissas[:, 0]), _pack(signs[:, 1], exp_b, mantissas[:, 1]))

    # Nearby values of opposite sign: massive cancellation, including exact zero and results
    # that fall below 2^-126 when the exponents are small.
    a = rng.integers(0, 2 ** 31, size=count, dtype=np.int64)
    a = np.where(rng.random(count) < 0.25, a & 0x03FFFFFF, a)  # a quarter near the FTZ threshold
    a = np.where((a >> 23) >= 0xFE, a - (2 << 23), a)
    b = a + rng.integers(-(2 ** 24), 2 ** 24, size=count) // (1 << rng.integers(0, 25, size=count))
    b = np.clip(b, 0, 0x7F7FFFFF) | ((1 - (a >> 31 & 1)) << 31)
    pairs += _pairs(a, b)

    # 12-bit by 13-bit significands: 25-bit products are ties.
    sig_a = rng.integers(2 ** 11, 2 ** 12, size=count) | 1
    sig_b = rng.integers(2 ** 12, 2 ** 13, size=count) | 1
    pairs += _pairs(_pack(signs[:, 0], rng.integers(1, 255, size=count), (sig_a << 12) - 2 ** 23),
                    _pack(signs[:, 1], rng.integers(1, 255, size=count), (sig_b << 11) - 2 ** 23))

    # Products near 2^-126 and 2^128 (b about 1/a, scaled).
    a_values = (1.0 + rng.random(count // 2)).astype(np.float32)
    reciprocals = (1.0 / a_values.astype(np.float64)).astype(np.float32)
    for scale_a, scale_b in ((2.0 ** -60, 2.0 ** -66), (2.0 ** 64, 2.0 ** 64)):
        pairs += _pairs((a_values * np.float32(scale_a)).view(np.uint32), (reciprocals * np.float32(scale_b)).view(np.uint32))
    return pairs


def simulate(dut, input_ports, vectors) -> list[int]:
    """Apply one input vector per cycle to ``dut`` and collect ``dut.o`` ``dut.latency`` cycles later
    (a combinational ``dut``: each vector's output after it settles)."""
    outputs = []
    latency = dut.latency

    async def testbench(ctx):
        for cycle in range(len(vectors) + latency):
            if cycle < len(vectors):
                for port, value in zip(input_ports, vectors[cycle]):
                    ctx.set(port, value)
            if latency == 0:
                await ctx.delay(1e-9)
            if cycle >= latency:
                outputs.append(ctx.get(dut.o))
            if latency:
                await ctx.tick()

    simulator = Simulator(dut)
    if latency:
        simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return outputs


def depths(cuts: tuple) -> list:
    """Every pipeline depth of a unit with cut points ``cuts``: 0 (combinational) to all of them."""
    return [pytest.param(stages, id=f"stages{stages}") for stages in range(len(cuts) + 1)]


def assert_bit_exact(vectors, got, expected, what):
    mismatches = [(v, g, e) for v, g, e in zip(vectors, got, expected) if g != e]
    details = "\n".join(f"inputs={[hex(x) for x in v]} rtl={g:#010x} golden={e:#010x}" for v, g, e in mismatches[:8])
    assert not mismatches, f"{what}, seed={SEED}: {len(mismatches)} of {len(vectors)} differ:\n{details}"


@pytest.fixture(scope="module")
def operand_pairs():
    return binary_operand_pairs(np.random.default_rng(SEED), 700)


@pytest.mark.parametrize("block, golden, stages", [
    pytest.param(block, golden, depth.values[0], id=f"{unit}-{depth.id}")
    for unit, block, golden, cuts in (("multiplier", Float32Multiplier, fmul32, MULTIPLIER_CUTS),
                                      ("adder", Float32Adder, fadd32, ADDER_CUTS))
    for depth in depths(cuts)])
def test_binary_block_matches_golden(block, golden, stages, operand_pairs):
    dut = block(stages=stages)
    assert dut.latency == stages
    got = simulate(dut, [dut.a, dut.b], operand_pairs)
    a = from_bits(torch.tensor([p[0] for p in operand_pairs], dtype=torch.int64))
    b = from_bits(torch.tensor([p[1] for p in operand_pairs], dtype=torch.int64))
    expected = bits(golden(a, b)).tolist()
    assert_bit_exact(operand_pairs, got, expected, block.__name__)


def test_multiplier_with_exponent_offset_at_full_depth(operand_pairs):
    """``a * b * 2**exp_offset`` with one rounding, the offset also pushing products across the
    overflow and flush thresholds, through every register of the multiplier."""
    dut = Float32Multiplier(offset_bits=10, stages=len(MULTIPLIER_CUTS))
    offsets = np.random.default_rng(SEED).integers(-300, 300, size=len(operand_pairs)).tolist()
    vectors = [(a, b, k) for (a, b), k in zip(operand_pairs, offsets)]
    got = simulate(dut, [dut.a, dut.b, dut.exp_offset], vectors)
    a = from_bits(torch.tensor([v[0] for v in vectors], dtype=torch.int64))
    b = from_bits(torch.tensor([v[1] for v in vectors], dtype=torch.int64))
    expected = bits(fmul32(a, b, torch.tensor(offsets))).tolist()
    assert_bit_exact(vectors, got, expected, f"Float32Multiplier(offset_bits=10, stages={dut.latency})")


def _int_vectors(width: int, rng: random.Random, count: int) -> list[int]:
    low, high = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    edges = {0, 1, -1, 2, -2, low, high, low + 1, high - 1}
    for k in range(0, max(0, width - 25) + 1):
        for base in (2 ** 24, 2 ** 24 + 1, 2 ** 24 + 2, 2 ** 24 + 3, 2 ** 25 - 1, 2 ** 24 - 1):
            for offset in (-1, 0, 1):
                value = (base << k) + offset
                edges |= {value, -value}
    edges = sorted(v for v in edges if low <= v <= high)
    # Random signed values of random bit length n: uniform in -2^(n-1) .. 2^(n-1)-1.
    bit_lengths = [rng.randint(1, width) for _ in range(count)]
    randoms = [rng.getrandbits(n) - 2 ** (n - 1) for n in bit_lengths]
    return edges + randoms


@pytest.mark.parametrize("width, stages", [
    pytest.param(width, depth.values[0], id=f"{width}-{depth.id}")
    for width in (2, 20, 25, 33, 64) for depth in depths(int_to_float_cuts(width))])
def test_int_to_float_matches_golden(width, stages):
    values = _int_vectors(width, random.Random(SEED + width), 1200)
    dut = IntToFloat32(width, stages=stages)
    assert dut.latency == stages
    got = simulate(dut, [dut.i], [(v,) for v in values])
    expected = bits(int_to_fp32(torch.tensor(values, dtype=torch.int64))).tolist()
    assert_bit_exact([(v & (2 ** 64 - 1),) for v in values], got, expected, f"IntToFloat32({width})")


@pytest.mark.parametrize("exp_bits, man_bits", [(5, 10), (8, 7), (4, 3), (2, 1), (6, 9), (8, 23), (3, 20)],
                         ids=["fp16", "bf16", "e4m3", "e2m1", "e6m9", "fp32", "e3m20"])
def test_widen_matches_golden(exp_bits, man_bits):
    width = 1 + exp_bits + man_bits
    if (exp_bits, man_bits) in ((5, 10), (8, 7)) or width <= 12:
        codes = list(range(2 ** width))  # exhaustive
    else:
        rng = np.random.default_rng(SEED)
        bias_exponent_edges = [e << man_bits for e in (0, 1, 2 ** exp_bits - 2, 2 ** exp_bits - 1)]
        edges = [c | m | s for c in bias_exponent_edges for m in (0, 1, 2 ** man_bits - 1)
                 for s in (0, 1 << (width - 1))]
        codes = edges + [int(c) for c in rng.integers(0, 2 ** width, size=8192)]
    dut = WidenToFloat32(exp_bits, man_bits)
    got = simulate(dut, [dut.i], [(c,) for c in codes])
    expected = bits(widen_to_fp32(torch.tensor(codes), exp_bits, man_bits)).tolist()
    assert_bit_exact([(c,) for c in codes], got, expected, f"WidenToFloat32({exp_bits}, {man_bits})")


BLOCKS = [
    pytest.param(lambda: Float32Multiplier(), id="multiplier"),
    pytest.param(lambda: Float32Adder(), id="adder"),
    pytest.param(lambda: IntToFloat32(33), id="int33"),
    pytest.param(lambda: IntToFloat32(64), id="int64"),
    pytest.param(lambda: IntToFloat32(2), id="int2"),
    pytest.param(lambda: WidenToFloat32(5, 10), id="fp16"),
    pytest.param(lambda: WidenToFloat32(8, 7), id="bf16"),
]


@pytest.mark.parametrize("make_block", BLOCKS)
def test_block_converts_to_verilog_and_is_combinational(make_block):
    block = make_block()
    assert block.latency == 0
    text = verilog.convert(block, name="top")
    assert "module top" in text
    assert "always @(posedge" not in text


def test_constructors_reject_unsupported_parameters():
    with pytest.raises(ValueError):
        IntToFloat32(1)
    with pytest.raises(ValueError):
        IntToFloat32(65)
    with pytest.raises(ValueError):
        WidenToFloat32(9, 7)
    with pytest.raises(ValueError):
        WidenToFloat32(5, 24)
