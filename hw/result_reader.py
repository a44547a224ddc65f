"""Result reader of the MixPE core: offers a tile's rows once the last column has written them."""

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import MixPEConfig
from .layouts import FP32_BITS, result_layout

__all__ = ["ResultReader"]


class ResultReader(wiring.Component):
    """Reads the GDUs' output banks row by row onto the ``res`` stream.

    The GDUs write a tile's result rows in order, column C-1 last; each write of column C-1
    (``written``, ``written_bank``) makes one more row of that bank readable. The reader offers
    the rows of one bank in order, then switches to the other bank (tiles alternate banks), and
    frees a bank (``bank_released``) on the handshake of its last row.

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        Gives R and C.

    Members
    -------
    written : ``In(1)``, written_bank : ``In(1)``
        Column C-1's GDU writes a result row (a tile's last group) into this bank.
    read_addr : ``Out(range(2 * R))``
        Accumulator address of the row being offered, ``bank * R + row``, to every GDU.
    read_data : ``In(ArrayLayout(unsigned(32), C))``
        Per column the raw FP32 word at ``read_addr`` (combinational read).
    res : ``Out(stream.Signature(result_layout(config)))``
        The result rows: C raw FP32 values, the row index and ``last`` on row R-1.
    bank_released : ``Out(2)``
        One bit per bank, set on the cycle the bank's last row is accepted.

    Latency
    -------
    1 cycle from ``written`` to the row being offered (when the reader has reached it).
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        super().__init__({
            "written": In(1),
            "written_bank": In(1),
            "read_addr": Out(range(2 * config.rows)),
            "read_data": In(data.ArrayLayout(unsigned(FP32_BITS), config.cols)),
            "res": Out(stream.Signature(result_layout(config))),
            "bank_released": Out(2),
        })

    @property
    def latency(self) -> int:
        """Cycles from a row's ``written`` pulse to the row on ``res`` (if the reader is at it)."""
        return 1

    def elaborate(self, platform):
        rows = self._config.rows
        m = Module()

        rows_ready = [Signal(range(rows + 1), name=f"rows_ready_{bank}") for bank in range(2)]
        read_bank = Signal()
        read_row = Signal(range(rows))
        for bank in range(2):
            with m.If(self.written & (self.written_bank == bank)):
                m.d.sync += rows_ready[bank].eq(rows_ready[bank] + 1)

        ready_now = Mux(read_bank, rows_ready[1], rows_ready[0])
        read_last_row = self.res.valid & self.res.ready & (read_row == rows - 1)
        m.d.comb += [
            self.read_addr.eq(read_bank * rows + read_row),
            self.res.payload.data.eq(self.read_data),
            self.res.valid.eq(ready_now > read_row),
            self.res.payload.row.eq(read_row),
            self.res.payload.last.eq(read_row == rows - 1),
            self.bank_released.bit_select(read_bank, 1).eq(read_last_row),
        ]
        with m.If(self.res.valid & self.res.ready):
            with m.If(read_row == rows - 1):
                m.d.sync += [read_row.eq(0), read_bank.eq(~read_bank)]
                for bank in range(2):
                    with m.If(read_bank == bank):
                        m.d.sync += rows_ready[bank].eq(0)
            with m.Else():
                m.d.sync += read_row.eq(read_row + 1)
        return m
