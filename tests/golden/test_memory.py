"""The bandwidth-aware cycle model (golden.memory): unlimited bandwidth is golden.cycles, the
throttled stream's closed forms, the peers' cycle formulas, and the memory system's numbers."""

from __future__ import annotations

import random

import pytest

from golden.cycles import predict_cycles
from golden.memory import (ArrayTiming, MemorySystem, Throttle, bitfusion_os_cycles, gemm_traffic, scalesim_os_cycles,
                           sram_pj_per_bit, stream_cycles, uniform_stream_cycles)
from hw.config import MixPEConfig, from_preset


def _random_configs(count: int, seed: int = 1):
    rng = random.Random(seed)
    for _ in range(count):
        rows, cols = rng.choice([4, 8, 16, 32]), rng.choice([4, 8, 16, 32])
        row_groups = rng.choice([d for d in (1, 2, 4) if rows % d == 0])
        config = MixPEConfig(rows=rows, cols=cols, group_size=rng.choice([8, 16, 32, 128]),
                             gdu_lanes=rng.randint(1, cols), row_groups=row_groups,
                             activation=rng.choice(["int8", "fp16"]))
        yield rng, config, [rng.randint(1, 5) for _ in range(rng.randint(1, 6))]


def test_unlimited_bandwidth_equals_predict_cycles():
    for rng, config, tiles in _random_configs(200):
        expected = predict_cycles(config, tiles)
        for throttle in (None, Throttle.constant(10 ** 6)):
            got = stream_cycles(config, tiles, beat_bits=config.row_groups * config.cols * config.weight_bits,
                                group_bits=40, throttle=throttle)
            assert (got.cycles, got.issue_cycles, got.tile_done) == \
                (expected.cycles, expected.issue_cycles, expected.tile_done), (config, tiles)


def _stepwise(timing: ArrayTiming, tiles, beat_bits, group_bits, throttle):
    """The same rules applied one K step at a time (no closed form inside a group)."""
    g, interval = timing.group_size, timing.group_interval
    t = 0
    first_prev = end_prev = -interval
    bank_free, reader_free, bits, done = [0, 0], 0, 0, []
    first_issue = None
    for index, groups in enumerate(tiles):
        for group in range(groups):
            bits += group_bits
            for j in range(g):
                bits += beat_bits
                t = max(t, throttle.ready_cycle(bits))
                if j == 0:
                    t = max(t, first_prev + interval, bank_free[index % 2] if group == 0 else 0)
                    first_prev = t
                if j == g - 1 and interval > g:
                    t = max(t, end_prev + interval)
                first_issue = t if first_issue is None else first_issue
                last = t
                t += 1
            end_prev = last
        first_row = max(last + timing.result_offset, reader_free)
        reader_free = bank_free[index % 2] = first_row + timing.rows
        done.append(first_row + timing.rows - 1)
    return done[-1] - first_issue + 1, tuple(done)


def test_throttled_groups_match_step_by_step_replay():
    for rng, config, tiles in _random_configs(150, seed=2):
        timing = ArrayTiming.of(config)
        beat_bits, group_bits = rng.randint(1, 256), rng.choice([0, 20, 300])
        for throttle in (Throttle.constant(rng.randint(1, 300)),
                         Throttle(tuple(rng.choice([0, 8, 64, 128]) for _ in range(rng.randint(2, 5))) + (1,))):
            got = stream_cycles(timing, tiles, beat_bits=beat_bits, group_bits=group_bits, throttle=throttle)
            assert (got.cycles, got.tile_done) == _stepwise(timing, tiles, beat_bits, group_bits, throttle)


def test_bandwidth_bound_stream_takes_bits_over_rate():
    """Far below the array's need, the stream lasts its bits over the rate plus the tail."""
    config = from_preset("w4a8-g128-16x16")
    beat = config.cols * config.weight_bits  # 64 bits per K step
    report = stream_cycles(config, [4] * 10, beat_bits=beat, throttle=Throttle.constant(16))
    total_bits = 10 * 4 * 128 * beat
    assert report.span_cycles - 1 - config.result_offset - (config.rows - 1) == total_bits // 16 - 1


def test_throttle_pattern_arrivals():
    throttle = Throttle((0, 64, 0, 32))
    assert [throttle.ready_cycle(b) for b in (1, 64, 65, 96, 97, 160)] == [1, 1, 3, 3, 5, 5]
    assert throttle.delivered(6) == 96 + 64
    with pytest.raises(ValueError):
        Throttle((0, 0))


def test_extrapolated_long_stream_is_within_a_few_cycles():
    config = from_preset("w4a8-g128-32x32")
    for rate in (100, 1000):  # bandwidth bound, compute bound
        kwargs = dict(beat_bits=128, group_bits=640, throttle=Throttle.constant(rate))
        approx = uniform_stream_cycles(config, 700, 32, **kwargs)
        exact = stream_cycles(config, [32] * 700, **kwargs)
        assert not approx.exact and abs(approx.cycles - exact.cycles) <= 4


def test_authors_simulator_compute_cycles():
    """Their assumptions: 4 MACs per PE (BitFusion fusion of 4-bit operands on an 8/4 PE) on 64x64,
    i.e. an effective 128 x 128 array, no dequant stall (R <= g). Our K steps equal their formula;
    the one-time fill and drain add < 0.05 % on a large GEMM."""
    batch, oc, ic = 2048, 4096, 4096
    theirs = bitfusion_os_cycles(batch, oc, ic, 64, 64, pmax=8, act_prec=4, weight_prec=4)
    timing = ArrayTiming(group_size=128, group_interval=128, result_offset=128 + 6, rows=128)
    tiles = (batch // 128) * (oc // 128)
    ours = uniform_stream_cycles(timing, tiles, ic // 128)
    assert ours.issue_cycles == theirs
    assert 0 < ours.cycles - theirs < 0.0005 * theirs


@pytest.mark.parametrize("m, n, k, rows, cols", [(64, 64, 128, 16, 16), (100, 70, 256, 32, 16), (8, 512, 512, 8, 32)])
def test_scalesim_output_stationary_by_per_tile_drains(m, n, k, rows, cols):
    """SCALE-Sim's OS count is our schedule with a drain between tiles on an ideal array whose
    last column's result leaves C - 1 cycles after the last step (no GDU)."""
    timing = ArrayTiming(group_size=k, group_interval=k, result_offset=cols - 1, rows=rows)
    tiles = -(-m // rows) * -(-n // cols)
    ours = stream_cycles(timing, [1] * tiles, drain_per_tile=True)
    assert ours.cycles == scalesim_os_cycles(m, n, k, rows, cols)
    overlapped = stream_cycles(timing, [1] * tiles)
    assert overlapped.cycles < ours.cycles


def test_sram_energy_and_traffic():
    assert sram_pj_per_bit(32 * 1024) == pytest.approx(20 / 64)
    assert sram_pj_per_bit(1024 * 1024) == pytest.approx(100 / 64)
    assert sram_pj_per_bit(32 * 1024) < sram_pj_per_bit(128 * 1024) < sram_pj_per_bit(1024 * 1024)
    memory = MemorySystem()
    small = gemm_traffic(memory, m=8, k=512, n=512, weight_bits=4, act_bits=8)
    assert small.weight_bits == 512 * 512 * 4 and small.activation_bits == 8 * 512 * 8
    big = gemm_traffic(memory, m=2048, k=4096, n=4096, weight_bits=4, act_bits=8)
    assert big.dram_bits > 4096 * 4096 * 4 + 2048 * 4096 * 8 + 2048 * 4096 * 16  # something is re-loaded
    assert memory.dram.bits_per_core_cycle(250.0) == 2048
