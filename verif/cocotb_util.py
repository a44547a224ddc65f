"""The cocotb side shared by every bench: clock and reset, the job file in, the summary file out.

Runs inside the simulator, so it stays free of torch (whose import is slow there). The host side
(:func:`verif.sims.run_bench`) writes a bench's job as JSON to the file named by ``MIXPE_JOB`` and
reads what the bench reports from the file named by ``MIXPE_SUMMARY``.
"""

from __future__ import annotations

import json
import os

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

__all__ = ["JOB_ENV", "SUMMARY_ENV", "CLOCK_PERIOD_NS", "clock_and_reset", "read_job", "write_summary"]

#: Environment variable naming the job file (JSON) of a run.
JOB_ENV = "MIXPE_JOB"
#: Environment variable naming the summary file (JSON) a bench writes.
SUMMARY_ENV = "MIXPE_SUMMARY"
#: Clock period of every bench (ns).
CLOCK_PERIOD_NS = 10


async def clock_and_reset(dut, cycles: int, **idle: int) -> None:
    """Start the clock on ``dut.clk``, hold ``dut.rst`` high for ``cycles`` rising edges with the
    inputs ``idle`` (port name = value) driven, and release it right after the last of them."""
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    for port, value in idle.items():
        getattr(dut, port).value = value
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0


def read_job() -> dict:
    """The job of this run (the JSON file named by ``MIXPE_JOB``)."""
    with open(os.environ[JOB_ENV]) as handle:
        return json.load(handle)


def write_summary(summary: dict) -> None:
    """Report ``summary`` to the host (the JSON file named by ``MIXPE_SUMMARY``)."""
    with open(os.environ[SUMMARY_ENV], "w") as handle:
        json.dump(summary, handle, indent=2)
