# amaranth: UnusedElaboratable=no
"""The baseline PEs of hw/baselines/ against bit-exact models (Amaranth simulator, random vectors).

A baseline that computes wrong numbers is no baseline: each PE is driven with random operand
streams, random ``valid`` gaps and random drain points, and every drained sum and every
registered pass-through output is compared with a model built from golden/fp32.py.
"""

# No `from __future__ import annotations`: Amaranth reads In/Out annotations as objects.

import random

import pytest
import torch
from amaranth.sim import Simulator

from golden.fp32 import bits, fadd32, fmul32, fp16_to_fp32, from_bits, int_to_fp32
from hw.baselines import BASELINES, DequantFloatPE, Float16PE, Int4x8MultiplierPE, Int8MultiplierPE
from hw.config import MixPEConfig

SEED = 20_241_126
CONFIGS = [MixPEConfig(rows=4, cols=4, weight_bits=4, group_size=16),
           MixPEConfig(rows=4, cols=4, weight_bits=3, group_size=8),
           MixPEConfig(rows=4, cols=4, weight_bits=8, group_size=32)]

FP16_SPECIALS = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF,
                 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x3555, 0x0200]


# ---- bit-exact models of one multiply-accumulate step (torch scalars in, Python values out) ----

def _int_product(x, w):
    return x * w


def _dequant_fp_product(x, q, zero, scale):
    """fp32(x) * (fp32(Q - z) * fp32(s)); the first product is exact, see DequantFloatPE."""
    weight = fmul32(int_to_fp32(torch.tensor([q - zero])), fp16_to_fp32(torch.tensor([scale])))
    return fmul32(int_to_fp32(torch.tensor([x])), weight)


def _fp16_product(x, w):
    return fmul32(fp16_to_fp32(torch.tensor([x])), fp16_to_fp32(torch.tensor([w])))


def _fp_add(acc_bits, product):
    return int(bits(fadd32(from_bits(torch.tensor([acc_bits])), product))[0])


class _Stimulus:
    """One random step: operand values, ``valid`` and ``group_last``."""

    def __init__(self, rng: random.Random, design: str, config: MixPEConfig, force_drain: bool):
        self.valid = int(rng.random() < 0.8 or force_drain)
        self.group_last = int(force_drain or rng.random() < 0.12)
        extreme = rng.random() < 0.2
        self.x = rng.choice([-128, 127, 0, -1]) if extreme else rng.randint(-128, 127)
        if design == "int8_mult":
            self.w = rng.choice([-128, 127, 0, -1]) if extreme else rng.randint(-128, 127)
        elif design == "fp16_fp16":
            self.x = rng.choice(FP16_SPECIALS) if rng.random() < 0.1 else rng.randrange(2 ** 16)
            self.w = rng.choice(FP16_SPECIALS) if rng.random() < 0.1 else rng.randrange(2 ** 16)
            if rng.random() < 0.7:  # keep most sums finite and well-conditioned: moderate exponents
                self.x = (self.x & 0x83FF) | (rng.randint(9, 21) << 10)
                self.w = (self.w & 0x83FF) | (rng.randint(9, 21) << 10)
        else:
            self.w = config.code_max if extreme else rng.randint(0, config.code_max)
        self.zero = rng.randint(0, config.code_max)
        self.scale = rng.choice(FP16_SPECIALS) if rng.random() < 0.05 else rng.randrange(2 ** 16)
        if design == "dequant_fp" and rng.random() < 0.8:
            self.scale = (self.scale & 0x83FF) | (rng.randint(1, 20) << 10)


def _expected_drains(design, config, steps):
    """Sums drained by the model, in order, as Python ints (integer sums or raw FP32 bits)."""
    drains = []
    acc = 0
    for s in steps:
        if not s.valid:
            continue
        if design == "dequant_fp":
            acc = _fp_add(acc, _dequant_fp_product(s.x, s.w, s.zero, s.scale))
        elif design == "fp16_fp16":
            acc = _fp_add(acc, _fp16_product(s.x, s.w))
        else:
            acc += _int_product(s.x, s.w)
        if s.group_last:
            drains.append(acc)
            acc = 0  # +0 (raw bits 0) for the FP accumulators
    return drains


def _run(design, config, steps):
    dut = BASELINES[design](config)
    inputs = ["x", "w", "valid", "group_last"] + (["scale", "zero"] if design == "dequant_fp" else [])
    drains, passthrough_errors = [], []

    async def testbench(ctx):
        for s in steps:
            for name in inputs:
                ctx.set(getattr(dut, name), getattr(s, name))
            await ctx.tick()
            # After the edge: registered copies of this step's inputs, and the drain of this step.
            for name in inputs:
                got = ctx.get(getattr(dut, f"{name}_out"))
                if got != getattr(s, name):
                    passthrough_errors.append((name, got, getattr(s, name)))
            if ctx.get(dut.psum_valid):
                drains.append(ctx.get(dut.psum))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return drains, passthrough_errors


# int8_mult and fp16_fp16 have no configurable width: one configuration is enough for them.
CASES = [(design, config) for design in sorted(BASELINES) for config in CONFIGS
         if design in ("dequant_fp", "int4x8_mult") or config is CONFIGS[0]]


@pytest.mark.parametrize("design, config", CASES,
                         ids=[f"{d}-w{c.weight_bits}-g{c.group_size}" for d, c in CASES])
def test_baseline_pe_matches_model(design, config):
    rng = random.Random(f"{SEED}-{design}-{config.hash}")
    count = 400
    steps = []
    run_length = 0
    for index in range(count):
        # Integer baselines drain at least once per group (their accumulator is sized for g steps).
        force = run_length >= config.group_size - 1 or index == count - 1
        step = _Stimulus(rng, design, config, force_drain=force)
        steps.append(step)
        run_length = 0 if (step.valid and step.group_last) else run_length + step.valid
    # Worst case for the integer accumulators: a whole group of the largest-magnitude products.
    if design in ("int8_mult", "int4x8_mult"):
        for index in range(config.group_size):
            step = _Stimulus(rng, design, config, force_drain=index == config.group_size - 1)
            step.valid, step.x = 1, -128
            step.w = -128 if design == "int8_mult" else config.code_max
            steps.append(step)

    got, passthrough_errors = _run(design, config, steps)
    expected = _expected_drains(design, config, steps)
    assert not passthrough_errors, f"{design}: pass-through registers differ: {passthrough_errors[:5]}"
    assert len(got) == len(expected), f"{design}: {len(got)} drains, model {len(expected)}"
    if design in ("dequant_fp", "fp16_fp16"):
        mismatches = [(i, hex(g), hex(e)) for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    else:
        width = BASELINES[design](config).psum.shape().width
        mismatches = [(i, g, e) for i, (g, e) in enumerate(zip(got, expected))
                      if g != e or not -(2 ** (width - 1)) <= e < 2 ** (width - 1)]
    assert not mismatches, f"{design} seed={SEED}: {len(mismatches)} of {len(got)} drains differ: {mismatches[:6]}"
    assert len(got) >= 20


def test_int_products_are_exhaustively_right():
    """Every operand pair of the integer baselines' single product (one-step groups)."""
    config = MixPEConfig(rows=2, cols=2, weight_bits=4, group_size=8)
    for design, weights in (("int4x8_mult", range(16)), ("int8_mult", range(-128, 128, 5))):
        steps = []
        for x in range(-128, 128):
            for w in weights:
                s = _Stimulus(random.Random(0), design, config, force_drain=True)
                s.x, s.w, s.valid, s.group_last = x, w, 1, 1
                steps.append(s)
        got, _ = _run(design, config, steps)
        assert got == [s.x * s.w for s in steps], design


def test_dequant_weight_is_exact():
    """(Q - z) * s is never rounded in FP32 (at most b + 11 significant bits), as documented."""
    rng = random.Random(SEED)
    codes = torch.tensor([rng.randint(-255, 255) for _ in range(2000)])
    scales = torch.tensor([rng.randrange(2 ** 15) for _ in range(2000)])  # positive finite FP16
    scales = scales[scales < 0x7C00]
    codes = codes[:len(scales)]
    product = fmul32(int_to_fp32(codes), fp16_to_fp32(scales))
    exact = codes.to(torch.float64) * fp16_to_fp32(scales).to(torch.float64)
    assert torch.equal(product.to(torch.float64), exact)


def test_widths_follow_the_configuration():
    config = CONFIGS[0]
    pe = Int4x8MultiplierPE(config)
    assert (pe.w.shape().width, pe.psum.shape().width) == (config.weight_bits, config.psum_bits)
    pe = Int8MultiplierPE(config)
    assert (pe.w.shape().width, pe.psum.shape().width) == (8, 16 + config.group_log2)
    pe = DequantFloatPE(config)
    assert (pe.w.shape().width, pe.zero.shape().width, pe.scale.shape().width, pe.psum.shape().width) == (
        config.weight_bits, config.weight_bits, 16, 32)
    pe = Float16PE(config)
    assert (pe.x.shape().width, pe.w.shape().width, pe.psum.shape().width) == (16, 16, 32)
    fp = MixPEConfig(rows=2, cols=2, weight_bits=4, group_size=8, activation="fp16")
    pe = Int4x8MultiplierPE(fp)  # the aligned integer operand, not the raw FP16 code
    assert (pe.x.shape().width, pe.psum.shape().width) == (fp.pe_act_bits, fp.psum_bits) == (18, 25)
    pe = DequantFloatPE(fp)
    assert (pe.x.shape().width, pe.x.shape().signed) == (16, False)


@pytest.mark.parametrize("activation", ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2"])
def test_dequant_fp_takes_the_activation_format(activation):
    """dequant_fp with floating-point activations: fp32(x) is the exact value of the code
    (E4M3's top binade is normal, only S.1111.111 is NaN), then the same FP32 chain."""
    from golden.fp_activations import decode_activations
    config = MixPEConfig(rows=2, cols=2, weight_bits=4, group_size=8, activation=activation)
    fmt = config.act_format
    rng = random.Random(f"{SEED}-{activation}")
    top = (2 ** fmt.exp_bits - 1) << fmt.man_bits  # all-ones exponent field
    steps = []
    for index in range(300):
        s = _Stimulus(rng, "dequant_fp", config, force_drain=index == 299)
        s.x = rng.randrange(2 ** fmt.bits)
        if rng.random() < 0.15:  # the all-ones exponent binade (Inf/NaN, or E4M3 normals and NaN)
            s.x = (s.x & ~top) | top
        steps.append(s)
    got, passthrough_errors = _run("dequant_fp", config, steps)
    expected, acc = [], 0
    for s in steps:
        if s.valid:
            x = decode_activations(config, torch.tensor([s.x])).float()
            weight = fmul32(int_to_fp32(torch.tensor([s.w - s.zero])), fp16_to_fp32(torch.tensor([s.scale])))
            acc = _fp_add(acc, fmul32(x, weight))
            if s.group_last:
                expected.append(acc)
                acc = 0
    assert not passthrough_errors
    assert [hex(g) for g in got] == [hex(e) for e in expected]
    assert len(got) >= 20


def test_int8_mult_refuses_floating_point_activations():
    with pytest.raises(ValueError, match=r"activation='bf16'.*allowed activation: 'int8'"):
        Int8MultiplierPE(MixPEConfig(rows=2, cols=2, weight_bits=4, group_size=8, activation="bf16"))
