"""cocotb testbench of one group-dequant unit (``gdu``).

Each case is a tile of G groups for R rows, in column i mod ``columns_per_lane`` of the lane for
case i. Per group, rows 0..R-1 arrive on consecutive cycles with their partial sum P and
activation sum A, a row's groups ``group_interval`` cycles apart (with g = 8 and few rows, the sum
of a row's previous group is still in the write stage then); the FP16 scale and zero point are
valid only on row 0 (other rows carry random garbage, so the latch is exercised). After the last group the
accumulator bank is read back through ``read_addr`` and compared bit for bit with the golden
FP32 chain of :mod:`golden.fp32` (cases and expected values from :mod:`.host`, in the job), and
every cycle ``result_written`` must pulse exactly for the rows of a case's last group, with the
case's bank and column on ``result_bank`` and ``result_column``. While rows arrive, ``read_addr``
reads random rows (the result port is independent of the accumulation). Every cycle without a
row (between groups, one bubble inside each group at a position drawn per case, while the last
rows drain) drives random values on every input but ``valid``: nothing but a valid row may change
the accumulators or the latched scale and zero point. A case's bank is drawn apart from its
column, so each column's words are accumulated in both banks. A case's first group reads no
word, so a write into another column's word is overwritten before anyone reads it; with several
columns a lane, two tiles therefore run last, back to back (banks 0 and 1), on every column at
once as the core feeds a lane (per group, column after column), and both banks are read back.
Cases: zeros, the largest |D| the widths allow (both signs), sign changes that cancel to exactly zero, overflow to infinity by the token scale, and random;
in ``zero_mode="float_offset"`` the port ``zero`` carries a raw FP16 offset, with the largest
terms of both signs and an offset product that cancels the scaled one exactly. With floating-point
activations the sums are those of aligned significands, and each row carries its group's shared
exponent and invalid flag (:func:`.host.add_fp_rows`) instead of a token scale, and a last case
puts valid rows at the exponent field's ends, 0 and 2**E - 1.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import FallingEdge

from hw.config import MixPEConfig
from hw.layouts import pack, row_info_layout
from verif.cocotb_util import clock_and_reset, read_job


@cocotb.test()
async def edge_cases(dut):
    job = read_job()
    config = MixPEConfig.from_dict(job["config"])
    rng = random.Random(cocotb.RANDOM_SEED)
    rows = config.rows
    layout = row_info_layout(config)
    garbage = (1 << 16) if config.float_offset else config.code_max + 1
    gap = config.group_interval - rows  # a row's groups group_interval cycles apart, as in the core
    await clock_and_reset(dut, 2, info=0)
    await FallingEdge(dut.clk)
    columns = config.columns_per_lane

    async def idle(cycles: int):
        """``cycles`` cycles without a row: every input random but ``info.valid`` (bit 0)."""
        for _ in range(cycles):
            dut.info.value = rng.randrange(1 << layout.size) & ~1
            dut.psum.value = rng.randrange(1 << config.psum_bits)
            dut.scale.value, dut.zero.value = rng.randrange(1 << 16), rng.randrange(garbage)
            if columns > 1:
                dut.column.value = rng.randrange(columns)
            await FallingEdge(dut.clk)

    failures = []
    written = []

    async def watch_writes():
        while True:
            await FallingEdge(dut.clk)
            if dut.result_written.value == 1:
                written.append((int(dut.result_bank.value), int(dut.result_column.value) if columns > 1 else 0))

    async def row(case: dict, bank: int, column: int, j: int, r: int):
        """Row r of group j of ``case`` in ``column`` of ``bank``, for one cycle; the group's scale and
        zero point only on a band's first row (garbage on the others)."""
        groups = len(case["psums"])
        if columns > 1:
            dut.column.value = column
        dut.psum.value = case["psums"][j][r] & ((1 << config.psum_bits) - 1)
        dut.read_addr.value = rng.randrange(2 * rows)  # the result port reads any row meanwhile
        fields = {"valid": 1, "row": r, "asum": case["asums"][j][r], "first": int(j == 0),
                  "last": int(j == groups - 1), "bank": bank, "parity": j % 2}
        if config.fp_activation:     # the row's shared exponent of group j instead of its token scale
            fields.update(row_param=case["exponents"][j][r], invalid=case["invalid"][j][r])
        else:
            fields["row_param"] = case["act_scales"][r]
        dut.info.value = pack(layout, fields)
        if r % config.band_rows == 0:
            dut.scale.value, dut.zero.value = case["scales"][j], case["zeros"][j]
        else:
            dut.scale.value, dut.zero.value = rng.randrange(1 << 16), rng.randrange(garbage)
        await FallingEdge(dut.clk)

    async def check(bank: int, cases: dict):
        """Read bank ``bank`` back row by row: column c's words must hold ``cases[c]``'s results."""
        for r in range(rows):
            dut.read_addr.value = bank * rows + r
            await FallingEdge(dut.clk)
            for column, case in cases.items():
                got = dut.read_data.value.to_unsigned() >> (32 * column) & 0xFFFFFFFF
                if got != case["expected"][r]:
                    failures.append(f"{case['name']} row {r}: got {got:#010x} expected {case['expected'][r]:#010x}")
        for case in cases.values():
            dut._log.info("case %s: %d groups x %d rows checked", case["name"], len(case["psums"]), rows)

    cocotb.start_soon(watch_writes())
    expected_writes = []
    for index, case in enumerate(job["cases"]):
        bank, column = index // columns % 2, index % columns
        groups = len(case["psums"])
        # A bubble before the same row of every group, in place of one cycle of the gap: a row's
        # groups stay group_interval cycles apart (the forwarding's closest case).
        bubble_before = rng.randrange(1, rows) if rows > 1 and gap > 0 else None
        for j in range(groups):
            for r in range(rows):
                if r == bubble_before:
                    await idle(1)
                await row(case, bank, column, j, r)
            await idle(gap - (bubble_before is not None))
        await idle(config.gdu_latency)
        await check(bank, {column: case})
        expected_writes += [(bank, column)] * rows
    # Every column of the lane in the same tile, the tiles back to back in both banks, then read back.
    for tile in job["lane_tiles"]:
        groups, bank = len(tile["columns"][0]["psums"]), tile["bank"]
        for beat in tile["beats"]:
            if beat is None:
                await idle(1)
                continue
            j, column, r = beat
            await row(tile["columns"][column], bank, column, j, r)
            expected_writes += [(bank, column)] * (j == groups - 1)
    await idle(config.gdu_latency)
    for tile in job["lane_tiles"]:
        await check(tile["bank"], dict(enumerate(tile["columns"])))
    assert not failures, f"{len(failures)} mismatches (seed {cocotb.RANDOM_SEED}): {failures[:6]}"
    assert written == expected_writes, f"result_written pulses (bank, column) {written[:8]}... != {expected_writes[:8]}..."
