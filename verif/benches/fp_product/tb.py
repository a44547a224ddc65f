"""cocotb testbench of the floating-point product path (:class:`.harness.FPProductPath`).

The job (prepared by :func:`.host.job`) lists steps
``[code, e_max, aligned, invalid]`` computed by the golden model: every code of the format
against its own exponent (exact products), then codes against larger shared exponents
(rounded alignment) and smaller ones (flagged invalid). Each cycle's products must equal
``aligned * q`` for every weight code q, and the flag must match.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge

from verif.cocotb_util import clock_and_reset, read_job

MAX_REPORTED = 5


@cocotb.test()
async def products(dut):
    job = read_job()
    steps, codes = job["steps"], job["weight_codes"]
    await clock_and_reset(dut, 2, valid=0)
    await FallingEdge(dut.clk)
    wrong, first_wrong = [], None
    width = len(dut.product) // codes
    for step, (code, e_max, aligned, invalid) in enumerate(steps):
        dut.x.value = code
        dut.e_max.value = e_max
        dut.valid.value = 1
        # The rising edge in between registers the step's products; the inputs still hold.
        await FallingEdge(dut.clk)
        if int(dut.invalid.value) != invalid:
            wrong.append(f"code {code:#x} e_max {e_max}: invalid={int(dut.invalid.value)}, expected {invalid}")
        assert int(dut.product_valid.value) == 1, "product_valid must follow every valid step"
        raw = int(dut.product.value)
        for q in range(codes):
            got = (raw >> (q * width)) & ((1 << width) - 1)
            got -= (got >> (width - 1)) << width
            if got != aligned * q:
                wrong.append(f"code {code:#x} e_max {e_max} x weight {q}: got {got}, expected {aligned * q}")
                break
        if wrong and first_wrong is None:
            first_wrong = step
        if len(wrong) > MAX_REPORTED:
            break
    # Where the first mismatch lies tells which part of the job catches a mutant (+mutsel=<i>).
    part = None if first_wrong is None else "every-distance" if first_wrong >= job["code_steps"] else "every-code"
    assert not wrong, (f"{len(wrong)}+ mismatches, the first at step {first_wrong} ({part} part, "
                       f"mutsel={cocotb.plusargs.get('mutsel', 0)}): " + "; ".join(wrong[:MAX_REPORTED]))
    dut._log.info("%d activation codes x %d weight codes exact", len(steps), codes)
