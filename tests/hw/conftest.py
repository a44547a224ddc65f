"""Fixture of the Amaranth-simulator tests of :mod:`hw` blocks."""

import pytest
from amaranth.sim import Simulator


@pytest.fixture
def simulate():
    """``simulate(dut, testbench)``: run the async ``testbench(ctx)`` against ``dut`` on one clock."""
    def run(dut, testbench):
        simulator = Simulator(dut)
        simulator.add_clock(1e-8)
        simulator.add_testbench(testbench)
        simulator.run()
    return run
