"""cocotb testbench of the ``mpgemm`` core: stream drivers, result monitor and scoreboard.

The job (prepared by :func:`.host.tiles_job`) holds the packed beats of every tile with its
origin (row0, col0), the bit-exact golden result rows and the stall probabilities. Sources feed
``act``, ``wgt`` and ``grp`` with random idle cycles; the sink applies random back-pressure on
``res`` and the scoreboard checks every result beat against the golden model the cycle it
appears. The summary (cycles from the first issued K step to the last result, mismatches) goes
back to the host (:func:`verif.cocotb_util.write_summary`).
"""

from __future__ import annotations

import random
import struct

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from hw.config import MixPEConfig
from hw.layouts import result_layout, unpack
from verif.cocotb_util import CLOCK_PERIOD_NS, clock_and_reset, read_job, write_summary
from verif.coverage_monitor import CoverageMonitor
from verif.streams import StreamSink, StreamSource, periodic_throttle, random_stalls

MAX_REPORTED_MISMATCHES = 10


def _fp32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]


class Scoreboard:
    """Compares each result beat with the expected beat of the same index, in order.

    A mismatch names the output element as origin + (row, column) of its tile, and with row
    groups the row band it belongs to (banded tiles have origin (0, 0))."""

    def __init__(self, config: MixPEConfig, expected: list[int], tile_origins: list[tuple[int, int]]):
        self._layout = result_layout(config)
        self._config = config
        self._expected = expected
        self._origins = tile_origins
        self.received = 0
        self.mismatches: list[str] = []
        self.mismatch_count = 0
        self.last_cycle: int | None = None

    def check(self, payload: int, cycle: int) -> None:
        index = self.received
        self.received += 1
        self.last_cycle = cycle
        if index >= len(self._expected):
            self._report(f"unexpected extra result beat #{index} at cycle {cycle}")
            return
        if payload == self._expected[index]:
            return
        got, want = unpack(self._layout, payload), unpack(self._layout, self._expected[index])
        tile, row = divmod(index, self._config.rows)
        origin = self._origins[tile]
        details = [f"{field}: got {got[field]} expected {want[field]}" for field in ("row", "last")
                   if got[field] != want[field]]
        for column, (g, w) in enumerate(zip(got["data"], want["data"])):
            if g != w:
                details.append(f"y[{origin[0] + want['row']}, {origin[1] + column}] got {g & 0xFFFFFFFF:#010x} "
                               f"({_fp32(g):.9g}) expected {w & 0xFFFFFFFF:#010x} ({_fp32(w):.9g})")
        band = f", band {row // self._config.band_rows}" if self._config.row_groups > 1 else ""
        self._report(f"result beat #{index} (tile {tile}, row {row}{band}) at cycle {cycle}: " + "; ".join(details[:4]))

    def _report(self, message: str) -> None:
        self.mismatch_count += 1
        if len(self.mismatches) < MAX_REPORTED_MISMATCHES:
            self.mismatches.append(message)


async def _first_transfer_cycle(dut, period_steps: int) -> int:
    from cocotb.simtime import get_sim_time
    while True:
        await ReadOnly()
        transfer = dut.act__valid.value == 1 and dut.act__ready.value == 1
        await RisingEdge(dut.clk)
        if transfer:
            return get_sim_time("step") // period_steps


@cocotb.test()
async def mpgemm(dut):
    job = read_job()
    config = MixPEConfig.from_dict(job["config"])
    rng = random.Random(cocotb.RANDOM_SEED)

    # "stall_streams" (optional): a stall probability per input stream in place of stall_in.
    idle = {name: random_stalls(rng, job.get("stall_streams", {}).get(name, job["stall_in"]))
            for name in ("act", "wgt", "grp")}
    if job.get("wgt_throttle"):  # weight codes through a link of a periodic bits-per-cycle pattern
        idle["wgt"] = periodic_throttle(job["wgt_throttle"]["pattern"], job["wgt_throttle"]["beat_bits"],
                                        CLOCK_PERIOD_NS * 1000)
    sources = {name: StreamSource(dut, name, dut.clk, idle=idle[name]) for name in ("act", "wgt", "grp")}
    scoreboard = Scoreboard(config, job["expected"], job["tile_origins"])
    sink = StreamSink(dut, "res", dut.clk, pause=random_stalls(rng, job["stall_out"]), callback=scoreboard.check)
    await clock_and_reset(dut, 3)
    await ClockCycles(dut.clk, 1)

    first_issue = cocotb.start_soon(_first_transfer_cycle(dut, CLOCK_PERIOD_NS * 1000))
    monitor = CoverageMonitor(dut, config, steps=sum(len(tile["act"]) for tile in job["tiles"]),
                              groups=sum(len(tile["grp"]) for tile in job["tiles"]))
    for tile in job["tiles"]:
        sources["act"].send_many(tile["act"])
        sources["wgt"].send_many(tile["wgt"])
        sources["grp"].send_many(tile["grp"])
    expected_beats = len(job["expected"])
    timeout = job["timeout_cycles"]
    # A mutant (gen.mutate's +mutsel plusarg) is killed by its first wrong beat, or timed out once no
    # beat came for a tile's share of the timeout (4x a tile's time with its stalls): the rest of
    # the run would only add mismatches.
    mutant = "mutsel" in cocotb.plusargs
    idle_limit = timeout // len(job["tiles"])
    waited = idle = 0
    stopped_at_mismatch = False
    while scoreboard.received < expected_beats and waited < timeout:
        if mutant and scoreboard.mismatch_count:
            stopped_at_mismatch = True
            break
        if mutant and idle >= idle_limit:
            break
        received = scoreboard.received
        await ClockCycles(dut.clk, 64)
        waited += 64
        idle = idle + 64 if scoreboard.received == received else 0
    await ClockCycles(dut.clk, 8)  # catch spurious extra beats

    coverage = monitor.finish(dut._log)
    first = first_issue.result() if first_issue.done() else None
    cycles = None if first is None or scoreboard.last_cycle is None else scoreboard.last_cycle - first + 1
    summary = {
        "received": scoreboard.received,
        "expected": expected_beats,
        "mismatch_count": scoreboard.mismatch_count,
        "mismatches": scoreboard.mismatches,
        "cycles": cycles,
        "first_issue_cycle": first,
        "sink_transfers": sink.transfers,
        "timed_out": scoreboard.received < expected_beats and not stopped_at_mismatch,
        "coverage": {"hit": len(coverage.hit_bins), "defined": len(coverage.hits), "missed": coverage.missed_bins},
    }
    write_summary(summary)
    for message in scoreboard.mismatches:
        dut._log.error(message)
    assert not summary["timed_out"], f"timed out after {timeout} cycles with {scoreboard.received}/{expected_beats} result beats"
    assert scoreboard.mismatch_count == 0, f"{scoreboard.mismatch_count} result beats differ from the golden model"
    expected_cycles = job.get("expected_cycles")
    if expected_cycles is not None:
        assert cycles == expected_cycles, f"cycle count {cycles} != cycle model {expected_cycles}"
