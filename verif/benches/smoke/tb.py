"""cocotb testbench for the toolchain smoke test (tests/verif/test_runner.py).

DUT ``smoke``: a stream register slice ``o.payload = i.payload + 1`` (16 bits), ports ``clk``, ``rst``,
``i__payload/valid/ready``, ``o__payload/valid/ready``. Random stalls on both sides; checks that every
payload comes out once, incremented, in order.

Environment: ``SMOKE_TRANSFERS`` (default 200), ``SMOKE_STALL`` (stall probability, default 0.3),
``SMOKE_INCREMENT`` (the increment the model expects, default 1; anything else must fail).
"""

from __future__ import annotations

import os
import random

import cocotb
from cocotb.triggers import ClockCycles, Timer

from verif.cocotb_util import clock_and_reset
from verif.streams import StreamSink, StreamSource, random_stalls

WIDTH = 16


@cocotb.test()
async def stream_increment_in_order(dut):
    count = int(os.environ.get("SMOKE_TRANSFERS", "200"))
    stall = float(os.environ.get("SMOKE_STALL", "0.3"))
    increment = int(os.environ.get("SMOKE_INCREMENT", "1"))
    rng = random.Random(cocotb.RANDOM_SEED)

    source = StreamSource(dut, "i", dut.clk, idle=random_stalls(rng, stall))
    received: list[int] = []
    sink = StreamSink(dut, "o", dut.clk, pause=random_stalls(rng, stall),
                      callback=lambda payload, cycle: received.append(payload))
    await clock_and_reset(dut, 4)
    await ClockCycles(dut.clk, 1)

    sent = [rng.randrange(1 << WIDTH) for _ in range(count)]
    source.send_many(sent)
    await source.wait_idle()

    # Drain: at most a few cycles per outstanding item, given the stall probability.
    for _ in range(100 + 20 * count):
        if len(received) >= count:
            break
        await ClockCycles(dut.clk, 1)
    await Timer(1, unit="ns")

    expected = [(x + increment) & ((1 << WIDTH) - 1) for x in sent]
    assert source.transfers == count, f"source transferred {source.transfers}/{count}"
    assert len(received) == count, f"received {len(received)}/{count} payloads"
    mismatches = [(n, e, r) for n, (e, r) in enumerate(zip(expected, received)) if e != r]
    assert not mismatches, f"{len(mismatches)} mismatches, first (index, expected, got): {mismatches[:5]}"
    assert sink.transfers == count
    dut._log.info("smoke: %d transfers in order with stall probability %.2f", count, stall)
