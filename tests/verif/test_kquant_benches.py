"""K-quant cores (scale_mode="kquant") on the RTL: bit-exact against golden.kquant and cycle-exact
against the cycle model, with all-zero, maximal and (Q6_K) signed sub-scales, on GDU lanes.

The default tier runs one tiny Q4_K core (INT8, 1 x 2, combinational FP32 units: the cheapest
build); the sweep over the K-quant types, pipelined GDUs, floating-point activations, lanes and
stalls is slow."""

import dataclasses

import pytest
import torch

from golden.kquant import random_kquant_operands
from golden.mpgemm import bitexact_mpgemm, within_bound
from hw.config import MixPEConfig
from verif.sims import run_mpgemm

pytestmark = pytest.mark.rtl

#: Q4_K on a 2 x 2 core: 8 groups of 32 per super-block, one lane per column.
Q4_K = MixPEConfig(rows=2, cols=2, group_size=32, zero_mode="float_offset", scale_mode="kquant", name="q4k-2x2")
#: The default tier's core: Q4_K on 1 x 2 with the combinational GDU (gdu_stages=0).
TINY = Q4_K.replace(rows=1, gdu_stages=0, name="q4k-1x2-s0")
#: Q6_K (signed int8 sub-scales, z = 32) with FP16 activations on one lane for 3 columns.
Q6_K_FP16 = MixPEConfig(rows=3, cols=3, weight_bits=6, weight_encoding="signed", group_size=16, scale_mode="kquant",
                        activation="fp16", gdu_lanes=1, name="q6k-fp16-3x3-L1")
#: Q5_K with BF16 activations and two lanes for 4 columns; Q2_K and Q3_K (sub-blocks of 16).
Q5_K_BF16 = MixPEConfig(rows=4, cols=4, weight_bits=5, group_size=32, zero_mode="float_offset", scale_mode="kquant",
                        activation="bf16", gdu_lanes=2, name="q5k-bf16-4x4-L2")
Q2_K = MixPEConfig(rows=4, cols=2, weight_bits=2, group_size=16, zero_mode="float_offset", scale_mode="kquant",
                   name="q2k-4x2")
Q3_K = MixPEConfig(rows=2, cols=4, weight_bits=3, weight_encoding="signed", group_size=16, scale_mode="kquant",
                   gdu_stages=0, name="q3k-2x4-s0")


def kquant_case(config: MixPEConfig, m: int, n: int, k: int, seed: int, kind: str = "uniform",
                stall: float = 0.0, operands=None) -> None:
    x, act_scale, weights = operands or random_kquant_operands(config, m, n, k, seed=seed, kind=kind)
    exact = bitexact_mpgemm(config, x, act_scale, weights)
    assert bool(within_bound(config, x, act_scale, weights, exact).all())
    summary = run_mpgemm(config, x, act_scale, weights, seed=seed, stall_in=stall, stall_out=stall)
    assert summary.passed, (kind, summary.mismatches[:3])
    if not stall:
        assert summary.cycles == summary.predicted.cycles, (summary.cycles, summary.predicted.cycles)


def test_q4_k_small_core_zero_and_maximal_sub_scales():
    """Two super-blocks, two row tiles; even channels all-zero sub-scales and mins, odd ones
    maximal, channel 3 with FP16-subnormal d and o."""
    kquant_case(TINY, 2, 4, 512, seed=61, kind="zeros")


@pytest.mark.slow
@pytest.mark.xdist_group(Q4_K.name)
@pytest.mark.parametrize("kind", ["uniform", "worst", "signs", "zeros"])
def test_q4_k_kinds(kind):
    kquant_case(Q4_K, 3, 5, 768, seed=62, kind=kind)


@pytest.mark.slow
@pytest.mark.parametrize("config", [Q6_K_FP16, Q5_K_BF16, Q2_K, Q3_K], ids=lambda c: c.name)
@pytest.mark.parametrize("kind", ["uniform", "worst", "zeros"])
def test_kquant_types_activations_and_lanes(config, kind):
    kquant_case(config, config.rows + 1, config.cols + 1, 512, seed=63, kind=kind)


@pytest.mark.slow
@pytest.mark.parametrize("config", [Q6_K_FP16, Q5_K_BF16], ids=lambda c: c.name)
def test_kquant_specials_and_stalls(config):
    kquant_case(config, 2 * config.rows, config.cols, 512, seed=64, kind="specials")
    kquant_case(config, config.rows, config.cols + 2, 768, seed=65, stall=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("config", [Q4_K, Q6_K_FP16], ids=lambda c: c.name)
def test_every_sub_scale_value_at_the_largest_sums(config):
    """Exhaustive over the finite sub-scale (and min) values: every value of the signed 8-bit
    (Q6_K) or unsigned 6-bit (Q4_K) range on one group each, all at the largest |D| and |A|."""
    values = 2 ** config.sub_scale_bits
    low = -values // 2 if config.sub_scale_signed else 0
    k = 1024
    n = values * config.group_size // k
    x, act_scale, weights = random_kquant_operands(config, config.rows, n, k, seed=66, kind="worst")
    sweep = torch.arange(low, low + values).view(n, -1)
    fields = {"sub_scales": sweep}
    if config.float_offset:
        fields["mins"] = sweep.flip(-1)
    weights = dataclasses.replace(weights, **fields)
    kquant_case(config, config.rows, n, k, seed=66, operands=(x, act_scale, weights))
