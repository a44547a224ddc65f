"""cocotb testbench of one processing element (``pe``).

* ``exhaustive_products``: every activation x every weight code, one single-step group per cycle,
  so each cycle's drain must equal ``x * v(code)`` (the code, or its FP4 or power-of-two value:
  :mod:`hw.codes`). "Every activation" is every INT8 value; a wider ``x`` (the aligned significand
  of a floating-point activation) gets :data:`WIDE_ACTIVATIONS` values instead
  (:func:`product_activations`).
* ``group_accumulation``: random groups of g steps including the overflow worst case
  (the most negative x with the code of the largest |value| for a whole group), checked against the integer sum, with the
  next group's first step issued on the cycle after the previous group's last (double buffer).
* ``bubbles_and_forwarding``: random steps with random ``valid`` (bubbles inside and between
  groups, ``group_last`` also on bubbles): a bubble neither accumulates nor drains, and every
  cycle the neighbour copies (``x_out``, ``w_out``, ``valid_out``, ``group_last_out``) equal the
  previous cycle's inputs.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import FallingEdge

from hw.codes import pe_value
from hw.config import MixPEConfig
from verif.cocotb_util import clock_and_reset, read_job


#: Activations of the product test when ``x`` is wider than INT8: the directed values of
#: :func:`product_activations`, then seeded random ones up to this many (as many as INT8 has).
WIDE_ACTIVATIONS = 256


def product_activations(bits: int, rng: random.Random) -> list[int]:
    """The activations ``exhaustive_products`` multiplies by every code: all of a ``bits``-bit
    signed ``x`` up to 8 bits; wider, the extremes and per bit k of both signs 2^k, 2^(k+1) - 1 and
    2^k with random bits below (a carry out of, and into, every position of the shift & add sum),
    then seeded random values up to :data:`WIDE_ACTIVATIONS`."""
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if bits <= 8:
        return list(range(low, high + 1))
    values = {0, 1, -1, low, low + 1, high, high - 1}
    for k in range(bits - 1):
        for magnitude in (1 << k, (1 << (k + 1)) - 1, 1 << k | rng.getrandbits(k) if k else 1):
            values |= {magnitude, -magnitude}
    return sorted(values) + [rng.randint(low, high) for _ in range(WIDE_ACTIVATIONS - len(values))]


def _config() -> MixPEConfig:
    return MixPEConfig.from_dict(read_job()["config"])


def _activation_range(config: MixPEConfig) -> tuple[int, int]:
    """The lowest and highest ``x`` (signed ``pe_act_bits``)."""
    return -(1 << (config.pe_act_bits - 1)), (1 << (config.pe_act_bits - 1)) - 1


def _value(config: MixPEConfig, code: int) -> int:
    """What the PE multiplies by: the code, or its FP4 / power-of-two value (:mod:`hw.codes`)."""
    return pe_value(config.weight_format, config.weight_bits, code)


async def _reset(dut):
    await clock_and_reset(dut, 2, valid=0, group_last=0)
    await FallingEdge(dut.clk)


async def _run_steps(dut, steps):
    """Drive (x, code, group_last) one per cycle; after each rising edge read the drain register,
    which holds the sum of a group whose last step was sampled at that edge."""
    drained = []
    mask = (1 << len(dut.x)) - 1
    for x, code, last in steps:
        dut.x.value = x & mask
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
    activations = product_activations(config.pe_act_bits, random.Random(cocotb.RANDOM_SEED))
    pairs = [(x, code) for x in activations for code in range(config.code_max + 1)]
    drained = await _run_steps(dut, ((x, code, 1) for x, code in pairs))
    assert len(drained) == len(pairs), f"{len(drained)} drains for {len(pairs)} single-step groups"
    wrong = [(x, code, got) for (x, code), got in zip(pairs, drained) if got != x * _value(config, code)]
    assert not wrong, f"{len(wrong)} wrong products, first (x, code, got): {wrong[:5]}"
    dut._log.info("%d activations (%d-bit) x %d-bit codes: all products exact", len(activations),
                  config.pe_act_bits, config.weight_bits)


@cocotb.test()
async def group_accumulation(dut):
    config = _config()
    rng = random.Random(cocotb.RANDOM_SEED)
    g, low, high = config.group_size, *_activation_range(config)
    extreme = max(range(config.code_max + 1), key=lambda code: abs(_value(config, code)))
    groups = [[(low, extreme)] * g, [(high, extreme)] * g]
    groups += [[(rng.randrange(low, high + 1), rng.randrange(config.code_max + 1)) for _ in range(g)] for _ in range(6)]
    await _reset(dut)
    steps = [(x, code, int(i == g - 1)) for group in groups for i, (x, code) in enumerate(group)]
    drained = await _run_steps(dut, steps)
    expected = [sum(x * _value(config, code) for x, code in group) for group in groups]
    assert drained == expected, f"group sums {drained} != {expected} (seed {cocotb.RANDOM_SEED})"
    limit = 2 ** (config.psum_bits - 1)
    assert -limit <= min(expected) and max(expected) < limit


@cocotb.test()
async def bubbles_and_forwarding(dut):
    config = _config()
    rng = random.Random(cocotb.RANDOM_SEED)
    low, high = _activation_range(config)
    await _reset(dut)
    accumulator, drains, expected, wrong = 0, [], [], []
    for cycle in range(400):
        x, code = rng.randrange(low, high + 1), rng.randrange(config.code_max + 1)
        valid, last = int(rng.random() < 0.7), int(rng.random() < 0.3)
        dut.x.value, dut.w.value = x & ((1 << len(dut.x)) - 1), code
        dut.valid.value, dut.group_last.value = valid, last
        if valid:
            accumulator += x * _value(config, code)
            if last:
                expected.append(accumulator)
                accumulator = 0
        await FallingEdge(dut.clk)
        copies = (dut.x_out.value.to_signed(), dut.w_out.value.to_unsigned(), int(dut.valid_out.value),
                  int(dut.group_last_out.value))
        if copies != (x, code, valid, last):
            wrong.append((cycle, copies, (x, code, valid, last)))
        if dut.psum_valid.value == 1:
            drains.append(dut.psum.value.to_signed())
    assert not wrong, f"{len(wrong)} cycles with wrong neighbour copies, first (cycle, got, expected): {wrong[:3]}"
    assert drains == expected, f"group sums with bubbles {drains[:8]} != {expected[:8]} (seed {cocotb.RANDOM_SEED})"
