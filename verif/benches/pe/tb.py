"""cocotb testbench of one processing element (``pe``).

* ``exhaustive_products``: every INT8 activation x every weight code, one single-step group per
  cycle, so each cycle's drain must equal ``x * code`` (the shift & add product).
* ``group_accumulation``: random groups of g steps including the overflow worst case
  (x = -128 with the largest code for a whole group), checked against the integer sum, with the
  next group's first step issued on the cycle after the previous group's last (double buffer).
"""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import FallingEdge

from hw.config import MixPEConfig
from verif.cocotb_util import clock_and_reset, read_job


def _config() -> MixPEConfig:
    return MixPEConfig.from_dict(read_job()["config"])


async def _reset(dut):
    await clock_and_reset(dut, 2, valid=0, group_last=0)
    await FallingEdge(dut.clk)


async def _run_steps(dut, steps):
    """Drive (x, code, group_last) one per cycle; after each rising edge read the drain register,
    which holds the sum of a group whose last step was sampled at that edge."""
    drained = []
    for x, code, last in steps:
        dut.x.value = x & 0xFF
        dut.w.value = code
        dut.valid.value = 1
        dut.group_last.value = last
        await FallingEdge(dut.clk)
        if dut.psum_valid.value == 1:
            drained.append(dut.psum.value.to_signed())
    return drained


@cocotb.test()
async def exhaustive_products(dut):
    config = _config()
    await _reset(dut)
    pairs = [(x, code) for x in range(-128, 128) for code in range(config.code_max + 1)]
    drained = await _run_steps(dut, ((x, code, 1) for x, code in pairs))
    assert len(drained) == len(pairs), f"{len(drained)} drains for {len(pairs)} single-step groups"
    wrong = [(x, code, got) for (x, code), got in zip(pairs, drained) if got != x * code]
    assert not wrong, f"{len(wrong)} wrong products, first (x, code, got): {wrong[:5]}"
    dut._log.info("all %d INT8 x %d-bit products exact", len(pairs), config.weight_bits)


@cocotb.test()
async def group_accumulation(dut):
    config = _config()
    rng = random.Random(cocotb.RANDOM_SEED)
    g = config.group_size
    groups = [[(-128, config.code_max)] * g, [(127, config.code_max)] * g]
    groups += [[(rng.randrange(-128, 128), rng.randrange(config.code_max + 1)) for _ in range(g)] for _ in range(6)]
    await _reset(dut)
    steps = [(x, code, int(i == g - 1)) for group in groups for i, (x, code) in enumerate(group)]
    drained = await _run_steps(dut, steps)
    expected = [sum(x * code for x, code in group) for group in groups]
    assert drained == expected, f"group sums {drained} != {expected} (seed {cocotb.RANDOM_SEED})"
    limit = 2 ** (config.psum_bits - 1)
    assert -limit <= min(expected) and max(expected) < limit
