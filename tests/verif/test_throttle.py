"""The RTL under a throttled weight stream: weight codes arrive through a link of a periodic
bits-per-cycle pattern (verif.streams.periodic_throttle) and the measured cycles equal the
bandwidth-aware model's (golden.memory.stream_cycles) exactly, results bit-exact."""

from __future__ import annotations

import pytest

from golden.memory import Throttle, stream_cycles
from golden.mpgemm import bitexact_mpgemm
from golden.operands import random_operands
from hw.config import MixPEConfig
from sw.packer import pack_gemm, pad_operands
from verif.benches.mpgemm.host import tiles_job
from verif.sims import run_bench

pytestmark = pytest.mark.rtl

#: The one-lane core of tests/verif/test_lane_benches.py (same name and xdist group: its build is
#: shared): g = 8, group interval 16, so the last-step rule binds under throttling.
SMALL = MixPEConfig(rows=4, cols=4, group_size=8, gdu_lanes=1, name="w4a8-g8-4x4-L1")


def throttled_run(config: MixPEConfig, m: int, n: int, k: int, pattern: tuple[int, ...], seed: int):
    """(measured cycles, the model's cycles, mismatches) of a GEMM whose weight beats are throttled."""
    x, act_scale, weights = random_operands(config, m, n, k, seed=seed)
    tiles = pack_gemm(config, x, act_scale, weights)
    y_padded = bitexact_mpgemm(config, *pad_operands(config, x, act_scale, weights))
    expected = [y_padded[t.row0:t.row0 + config.rows, t.col0:t.col0 + config.cols] for t in tiles]
    beat_bits = config.row_groups * config.cols * config.weight_bits
    model = stream_cycles(config, [t.groups for t in tiles], beat_bits=beat_bits, throttle=Throttle(pattern))
    job, _ = tiles_job(config, tiles, expected, stall_in=0.0, stall_out=0.0, check_cycles=True, useful_macs=None)
    job["wgt_throttle"] = {"pattern": list(pattern), "beat_bits": beat_bits}
    job["expected_cycles"] = model.cycles
    job["timeout_cycles"] = model.span_cycles * 2 + 1000
    result, summary = run_bench("mpgemm", config, job, seed=seed)
    return summary.get("cycles"), model.cycles, summary.get("mismatch_count"), result.passed


@pytest.mark.xdist_group(SMALL.name)
def test_periodic_throttle_cycles_equal_the_model():
    """16 bits per K step through a link of 0, 8, 0, 4 bits per cycle (3 bits a cycle on average):
    a step every 5.3 cycles, the schedule's group-interval and bank rules on top."""
    measured, model, mismatches, passed = throttled_run(SMALL, 6, 7, 3 * SMALL.group_size, (0, 8, 0, 4), seed=5)
    assert (measured, mismatches, passed) == (model, 0, True)
    unthrottled = stream_cycles(SMALL, [3] * 4)
    assert model > 2 * unthrottled.cycles


@pytest.mark.slow
@pytest.mark.xdist_group(SMALL.name)
@pytest.mark.parametrize("pattern", [(16,), (15,), (9,), (1,), (0, 0, 33), (20, 0, 0, 0, 0, 0, 0, 0, 12)])
def test_throttle_sweep(pattern):
    measured, model, mismatches, passed = throttled_run(SMALL, 9, 10, 4 * SMALL.group_size, pattern, seed=7)
    assert (measured, mismatches, passed) == (model, 0, True)


@pytest.mark.slow
def test_throttle_with_dequant_stalls_and_bands():
    """Group interval above g (the last-step rule binds under stalls inside a group) and two row bands."""
    config = MixPEConfig(rows=8, cols=3, group_size=8, gdu_lanes=1, row_groups=2, name="w4a8-g8-8x3-L1-rg2")
    assert config.group_interval > config.group_size
    for pattern in ((10,), (3, 30, 0)):
        measured, model, mismatches, passed = throttled_run(config, 9, 7, 3 * config.group_size, pattern, seed=9)
        assert (measured, mismatches, passed) == (model, 0, True)
