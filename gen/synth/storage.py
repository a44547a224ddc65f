"""A GDU lane's accumulator memory on its own (block ``acc_memory``): what an SRAM or register-file
macro would replace, synthesized in the same flow as the GDU that holds it."""

from __future__ import annotations

from amaranth import Module, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.config import MixPEConfig
from hw.layouts import FP32_BITS

__all__ = ["AccumulatorMemory", "storage_bits"]


def storage_bits(config: MixPEConfig) -> dict[str, int]:
    """Accumulator storage of the GDU lanes: ``per_lane`` = 2 banks x R rows x ``columns_per_lane``
    x 32 bits, ``total`` over the lanes, ``per_output`` = total / (R x C) (64 when C is a multiple
    of the lanes: two banks of one FP32 word per output element)."""
    per_lane = 2 * config.rows * config.columns_per_lane * FP32_BITS
    total = per_lane * config.lanes
    return {"per_lane": per_lane, "total": total, "per_output": total / (config.rows * config.cols)}


class AccumulatorMemory(wiring.Component):
    """The memory of :class:`hw.gdu.GroupDequant` with its ports and nothing else: 2 x R words of
    ``columns_per_lane`` FP32 values, two asynchronous read ports (the accumulate read and the
    result reader) and one write port with a 32-bit enable per column (one enable with one column).

    Members
    -------
    acc_addr, result_addr : ``In(range(2R))``; acc_data, result_data : ``Out(word)``
        The two read ports (combinational reads).
    write_addr : ``In(range(2R))``, write_data : ``In(word)``, write_enable : ``In(columns_per_lane)``
        The write port (written on the clock edge).
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        columns = config.columns_per_lane
        self._word = unsigned(FP32_BITS) if columns == 1 else data.ArrayLayout(unsigned(FP32_BITS), columns)
        depth = 2 * config.rows
        super().__init__({
            "acc_addr": In(range(depth)), "acc_data": Out(self._word),
            "result_addr": In(range(depth)), "result_data": Out(self._word),
            "write_addr": In(range(depth)), "write_data": In(self._word), "write_enable": In(columns),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        store = m.submodules.acc_memory = memory.Memory(shape=self._word, depth=2 * config.rows, init=[])
        acc_read = store.read_port(domain="comb")
        result_read = store.read_port(domain="comb")
        write = store.write_port(granularity=None if config.columns_per_lane == 1 else 1)
        m.d.comb += [
            acc_read.addr.eq(self.acc_addr), self.acc_data.eq(acc_read.data),
            result_read.addr.eq(self.result_addr), self.result_data.eq(result_read.data),
            write.addr.eq(self.write_addr), write.data.eq(self.write_data), write.en.eq(self.write_enable),
        ]
        return m
