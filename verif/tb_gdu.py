"""cocotb testbench of one group-dequant unit (``gdu``).

Each case is a tile of G groups for R rows. Per group, rows 0..R-1 arrive on consecutive cycles
with their partial sum P and activation sum A; the FP16 scale and zero point are valid only on
row 0 (other rows carry random garbage, so the latch is exercised). After the last group the
accumulator bank is read back through ``read_addr`` and compared bit for bit with the golden
FP32 chain of :mod:`golden.fp32`. Cases: zeros, the largest |D| the widths allow (both signs),
sign changes that cancel to exactly zero, overflow to infinity by the token scale, and random.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from golden.fp32 import bits, fadd32, fmul32, fp16_to_fp32, from_bits, int_to_fp32
from hw.config import MixPEConfig
from hw.layouts import pack, row_info_layout

FP16_MAX = 0x7BFF          # 65504
FP16_ONE = 0x3C00


def _config() -> MixPEConfig:
    with open(os.environ["MIXPE_CONFIG"]) as handle:
        return MixPEConfig.from_dict(json.load(handle))


def golden_tile(psums, asums, scales, zeros, act_scales):
    """Expected raw FP32 per row: psums/asums [G][R] ints, scales/zeros [G] ints, act_scales [R] raw."""
    groups = len(psums)
    acc = None
    for j in range(groups):
        d = torch.tensor([p - zeros[j] * a for p, a in zip(psums[j], asums[j])], dtype=torch.int64)
        term = fmul32(int_to_fp32(d), fp16_to_fp32(torch.tensor([scales[j]] * len(d))))
        acc = term if j == 0 else fadd32(acc, term)
    final = fmul32(acc, from_bits(torch.tensor(act_scales, dtype=torch.int64)))
    return [int(v) & 0xFFFFFFFF for v in bits(final)]


def make_cases(config: MixPEConfig, rng: random.Random):
    rows, g, top = config.rows, config.group_size, config.code_max
    p_max = 128 * top * g            # |P| bound; |D| reaches it
    a_min, a_max = -128 * g, 127 * g
    one = 0x3F800000

    def case(name, groups, psum, asum, scale, zero, act_scale=one):
        return {"name": name,
                "psums": [[psum(j, r) for r in range(rows)] for j in range(groups)],
                "asums": [[asum(j, r) for r in range(rows)] for j in range(groups)],
                "scales": [scale(j) for j in range(groups)],
                "zeros": [zero(j) for j in range(groups)],
                "act_scales": [act_scale] * rows if isinstance(act_scale, int) else act_scale}

    return [
        case("zeros", 2, lambda j, r: 0, lambda j, r: 0, lambda j: FP16_ONE, lambda j: top),
        case("largest_negative_D", 3, lambda j, r: -p_max, lambda j, r: 0, lambda j: FP16_MAX, lambda j: 0),
        case("largest_positive_D", 3, lambda j, r: 0, lambda j, r: a_min, lambda j: FP16_MAX, lambda j: top),
        case("sign_changes_cancel", 4, lambda j, r: (1 if j % 2 else -1) * 1000 * (r + 1), lambda j, r: 0,
             lambda j: 0x2E66, lambda j: 0),
        case("overflow_to_inf", 2, lambda j, r: p_max, lambda j, r: 0, lambda j: FP16_MAX, lambda j: 0,
             act_scale=0x7E967699),  # 1e38
        case("single_group", 1, lambda j, r: rng.randrange(-p_max, p_max), lambda j, r: rng.randrange(a_min, a_max),
             lambda j: rng.randrange(0x0400, 0x7C00), lambda j: rng.randrange(top + 1)),
        case("random", 6, lambda j, r: rng.randrange(-p_max // 2, p_max // 2),
             lambda j, r: rng.randrange(a_min, a_max), lambda j: rng.randrange(0x0400, 0x7C00) | rng.choice([0, 0x8000]),
             lambda j: rng.randrange(top + 1),
             act_scale=[0x3C000000 + rng.randrange(1 << 23) for _ in range(rows)]),
    ]


@cocotb.test()
async def edge_cases(dut):
    config = _config()
    rng = random.Random(cocotb.RANDOM_SEED)
    rows = config.rows
    layout = row_info_layout(config)
    gap = max(0, 8 - rows)           # same-row beats at least 8 cycles apart, as group_interval guarantees
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.info.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await FallingEdge(dut.clk)

    failures = []
    for index, case in enumerate(make_cases(config, rng)):
        bank = index % 2
        groups = len(case["psums"])
        for j in range(groups):
            for r in range(rows):
                dut.psum.value = case["psums"][j][r] & ((1 << config.psum_bits) - 1)
                dut.info.value = pack(layout, {
                    "valid": 1, "row": r, "asum": case["asums"][j][r], "act_scale": case["act_scales"][r],
                    "first": int(j == 0), "last": int(j == groups - 1), "bank": bank, "parity": j % 2})
                if r == 0:
                    dut.scale.value, dut.zero.value = case["scales"][j], case["zeros"][j]
                else:
                    dut.scale.value, dut.zero.value = rng.randrange(1 << 16), rng.randrange(config.code_max + 1)
                await FallingEdge(dut.clk)
            dut.info.value = 0
            await ClockCycles(dut.clk, gap)
            await FallingEdge(dut.clk)
        await ClockCycles(dut.clk, config.gdu_latency)
        await FallingEdge(dut.clk)
        expected = golden_tile(case["psums"], case["asums"], case["scales"], case["zeros"], case["act_scales"])
        for r in range(rows):
            dut.read_addr.value = bank * rows + r
            await FallingEdge(dut.clk)
            got = dut.read_data.value.to_unsigned()
            if got != expected[r]:
                failures.append(f"{case['name']} row {r}: got {got:#010x} expected {expected[r]:#010x}")
        dut._log.info("case %s: %d groups x %d rows checked", case["name"], groups, rows)
    assert not failures, f"{len(failures)} mismatches (seed {cocotb.RANDOM_SEED}): {failures[:6]}"
