"""The ``array`` scenario's wide token scales (:func:`verif.scenarios.spread_token_scales`), without a
simulator: exact powers of two, and on the default preset the worst case's scales reach the FP32
exponents whose bit 6 is 0 (what kills mpgemm mutant #153 of issue 16's campaign, a token-scale bit
flipped only then) while every result stays finite and within its error bound."""

import torch

from golden.mpgemm import bitexact_mpgemm, within_bound
from golden.operands import random_operands
from hw.config import from_preset
from verif.scenarios import spread_token_scales


def test_spread_token_scales_are_exact_powers_of_two_and_seeded():
    scales = torch.linspace(0.001, 0.05, 64, dtype=torch.float32)
    spread = spread_token_scales(scales, 64, seed=7)
    ratio = (spread.double() / scales.double()).log2()
    assert torch.equal(ratio, ratio.round()) and ratio.abs().max() <= 64 and ratio.unique().numel() > 32
    assert torch.equal(spread, spread_token_scales(scales, 64, seed=7))
    assert not torch.equal(spread, spread_token_scales(scales, 64, seed=8))


def test_default_preset_worst_case_reaches_large_and_small_exponents():
    config = from_preset("w4a8-g128-16x16")
    for seed in (3, 4):  # the worst case of make sim TEST=array SEED=1 and of the campaign's full stage (seed 2)
        x, act_scale, weights = random_operands(config, config.rows, config.cols, 2 * config.group_size, seed=seed,
                                                kind="worst")
        spread = spread_token_scales(act_scale, 64, seed)
        exponent_bit_6 = (spread.view(torch.int32) >> 29) & 1
        assert 0 < int(exponent_bit_6.sum()) < config.rows
        exact = bitexact_mpgemm(config, x, spread, weights)
        assert bool(torch.isfinite(exact).all())
        assert bool(within_bound(config, x, spread, weights, exact.double()).all())
