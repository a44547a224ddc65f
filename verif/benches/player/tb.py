"""cocotb test of the memory-fed wrapper ``mpgemm_player`` (``mpgemm_player.sv`` next to this file).

cocotb drives the clock and reset and waits for ``done``; the wrapper feeds the core from memory
and compares every result beat with the golden beats. Used by ``make bench`` to measure the
testbench speed next to the stream-driver testbench and the free-running C++ harness.
"""

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

from verif.cocotb_util import CLOCK_PERIOD_NS, clock_and_reset, read_job, write_summary


@cocotb.test()
async def memory_fed_mpgemm(dut):
    await clock_and_reset(dut, 4)
    timeout_cycles = read_job()["timeout_cycles"]
    await with_timeout(RisingEdge(dut.done), timeout_cycles * CLOCK_PERIOD_NS, "ns")
    await ClockCycles(dut.clk, 1)
    summary = {"cycles": dut.cycles.value.to_unsigned(), "mismatches": dut.mismatches.value.to_unsigned(),
               "first_mismatch": dut.first_mismatch.value.to_unsigned()}
    write_summary(summary)
    assert summary["mismatches"] == 0, (f"{summary['mismatches']} result beats differ from the golden model, "
                                        f"first at beat {summary['first_mismatch']}")
