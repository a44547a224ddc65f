"""cocotb testbench of the FP32 units (``fp32_units``, :class:`verif.benches.fp32.harness.FP32Units`).

Every unit gets one operand set per cycle from its list in the job (:mod:`.host`), all units at
once; each result must equal the golden raw FP32 bits ``latency`` cycles later. A unit whose list
is shorter holds its last operands while the others finish.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge

from verif.cocotb_util import clock_and_reset, read_job, write_summary

#: Mismatches listed per unit in the failure message.
SHOWN = 4


@cocotb.test()
async def directed_and_random_operands(dut):
    job = read_job()
    units, latency = job["units"], job["latency"]
    cycles = max(len(unit["vectors"]) for unit in units.values())
    inputs = {name: [getattr(dut, f"{name}_{port}") for port in unit["ports"]] for name, unit in units.items()}
    outputs = {name: getattr(dut, f"{name}_o") for name in units}
    await clock_and_reset(dut, 2)
    await FallingEdge(dut.clk)
    mismatches = {name: [] for name in units}
    for cycle in range(cycles + latency):
        for name, unit in units.items():
            if cycle < len(unit["vectors"]):
                for port, value in zip(inputs[name], unit["vectors"][cycle]):
                    port.value = value
        await FallingEdge(dut.clk)
        checked = cycle + 1 - latency  # the operands driven `latency` rising edges ago
        if checked < 0:
            continue
        for name, unit in units.items():
            if checked < len(unit["expected"]):
                got = outputs[name].value.to_unsigned()
                if got != unit["expected"][checked]:
                    mismatches[name].append((checked, got))
    write_summary({name: len(found) for name, found in mismatches.items()})
    report = [f"{name}: {len(found)} of {len(units[name]['vectors'])} differ, e.g. "
              + ", ".join(f"inputs {[hex(v) for v in units[name]['vectors'][i]]} got {got:#010x} "
                          f"expected {units[name]['expected'][i]:#010x}" for i, got in found[:SHOWN])
              for name, found in mismatches.items() if found]
    assert not report, "; ".join(report)
    dut._log.info("%s: %d operand sets checked bit for bit", ", ".join(units), sum(len(u["vectors"]) for u in units.values()))
