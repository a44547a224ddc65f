"""Directed stimuli for the coverage bins (verif/coverage.py) that the scenario tests do not reach:
the largest finite value and -0 of each 16- and 8-bit floating-point format, FP32 overflow in the
GDU, and ``grp`` beats arriving after a group's first step is due. They run on the builds of
tests/verif/test_fp_benches.py (same configurations and xdist groups) and check from the run's
summary that they hit their bins."""

import pytest
import torch

from golden.mpgemm import bitexact_mpgemm
from golden.operands import QuantizedWeights
from hw.config import MixPEConfig, from_preset
from sw.packer import pack_gemm, pad_operands
from verif.benches.mpgemm.host import tiles_job
from verif.sims import run_bench

pytestmark = pytest.mark.rtl


def run_job(config: MixPEConfig, x, act_scale, weights, seed: int, **job_options) -> dict:
    """Run the GEMM on the mpgemm bench with extra job keys; returns the summary (bit-exact checked)."""
    tiles = pack_gemm(config, x, act_scale, weights)
    y = bitexact_mpgemm(config, *pad_operands(config, x, act_scale, weights))
    expected = [y[t.row0:t.row0 + config.rows, t.col0:t.col0 + config.cols] for t in tiles]
    job, _ = tiles_job(config, tiles, expected, stall_in=0.0, stall_out=0.0, check_cycles=False, useful_macs=None)
    job.update(job_options)
    result, summary = run_bench("mpgemm", config, job, seed=seed)
    assert result.passed and summary["mismatch_count"] == 0, summary.get("mismatches")
    return summary


def extreme_operands(config: MixPEConfig, groups: int, seed: int):
    """Raw activation codes: row 0 the largest finite value, row 1 -0, the rest random finite
    codes; channel 0 has the largest codes and scale (so bf16's row 0 overflows FP32)."""
    fmt = config.act_format
    k = groups * config.group_size
    generator = torch.Generator().manual_seed(seed)
    top_mantissa = (1 << fmt.man_bits) - (2 if fmt.specials == "fn" else 1)
    finite = torch.randint(0, fmt.max_exponent_field << fmt.man_bits, (config.rows, k), generator=generator)
    x = finite | (torch.randint(0, 2, (config.rows, k), generator=generator) << (fmt.bits - 1))
    x[0] = (fmt.max_exponent_field << fmt.man_bits) | top_mantissa
    x[1] = 1 << (fmt.bits - 1)
    codes = torch.randint(0, config.code_max + 1, (config.cols, k), generator=generator)
    codes[0] = config.code_max
    scales = torch.full((config.cols, groups), 0.01, dtype=torch.float16)
    scales[0] = 65504.0
    weights = QuantizedWeights(codes=codes, scales=scales, zeros=torch.zeros((config.cols, groups), dtype=torch.int64))
    return x.to(torch.int64), None, weights


@pytest.mark.parametrize("preset, hits, options", [
    pytest.param("w4bf16-g8-3x2", {"result.inf", "gdu.overflow", "stall.grp.bubble.group_first"},
                 {"stall_streams": {"grp": 0.9}}, marks=pytest.mark.xdist_group("w4bf16-g8-3x2")),
    pytest.param("w4e4m3-g16-3x2", set(), {}, marks=pytest.mark.xdist_group("w4e4m3-g16-3x2")),
    pytest.param("w4e5m2-g8-3x2", set(), {}, marks=pytest.mark.xdist_group("w4e5m2-g8-3x2")),
])
def test_largest_finite_and_negative_zero_activations(preset, hits, options):
    config = from_preset(preset)
    summary = run_job(config, *extreme_operands(config, groups=8, seed=55), seed=55, **options)
    name = config.act_format.name
    assert not ({f"act.{name}.max_finite", f"act.{name}.neg_zero"} | hits) & set(summary["coverage"]["missed"]), \
        summary["coverage"]
