"""The result reader (Amaranth simulator): rows in order, one cycle after their write at the
earliest, under back-pressure, with each bank released on its last row."""

import random

import pytest

from hw.config import MixPEConfig
from hw.result_reader import ResultReader

CONFIGS = [
    MixPEConfig(rows=4, cols=3, group_size=8, name="w4a8-g8-4x3"),
    MixPEConfig(rows=1, cols=2, group_size=8, name="w4a8-g8-1x2"),
]


@pytest.mark.parametrize("ready_probability", [1.0, 0.6])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.name)
def test_rows_in_order_after_their_write(config, ready_probability, simulate):
    rng = random.Random(f"{config.name}-{ready_probability}")
    rows, cols, tiles = config.rows, config.cols, 8
    # Tile i writes its rows into bank i % 2, one row per cycle, once its bank was released.
    values = [[[rng.getrandbits(32) for _ in range(cols)] for _ in range(rows)] for _ in range(tiles)]
    dut = ResultReader(config)
    received, releases = [], []

    async def testbench(ctx):
        assert dut.latency == 1
        memory = {}
        written_at = {}
        writer_tile, writer_row, bank_free = 0, 0, [True, True]
        for cycle in range(tiles * rows * 8):
            write = writer_tile < tiles and bank_free[writer_tile % 2] and rng.random() < 0.7
            ctx.set(dut.written, write)
            ctx.set(dut.written_bank, writer_tile % 2)
            address = ctx.get(dut.read_addr)
            ctx.set(dut.read_data, memory.get(address, [0] * cols))
            ready = rng.random() < ready_probability
            ctx.set(dut.res.ready, ready)
            valid = ctx.get(dut.res.valid)
            tile, row = divmod(len(received), rows)
            if valid:
                assert address == (tile % 2) * rows + row
                assert written_at[(tile, row)] + dut.latency <= cycle, f"cycle {cycle}: row offered before its write"
            elif (tile, row) in written_at:
                assert written_at[(tile, row)] + dut.latency > cycle, f"cycle {cycle}: written row not offered"
            released = ctx.get(dut.bank_released)
            if valid and ready:
                assert ctx.get(dut.res.payload.row) == row
                assert ctx.get(dut.res.payload.last) == (row == rows - 1)
                assert ctx.get(dut.res.payload.data) == values[tile][row]
                received.append((tile, row))
                assert released == (1 << (tile % 2) if row == rows - 1 else 0)
            else:
                assert released == 0
            if released:
                releases.append(cycle)
            await ctx.tick()
            # The GDU's write lands at this edge; the bank is free again after its release.
            if write:
                memory[(writer_tile % 2) * rows + writer_row] = values[writer_tile][writer_row]
                written_at[(writer_tile, writer_row)] = cycle
                writer_row += 1
                if writer_row == rows:
                    bank_free[writer_tile % 2] = False
                    writer_tile, writer_row = writer_tile + 1, 0
            for bank in range(2):
                if released >> bank & 1:
                    bank_free[bank] = True

    simulate(dut, testbench)
    assert received == [(tile, row) for tile in range(tiles) for row in range(rows)]
    assert len(releases) == tiles
