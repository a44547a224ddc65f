"""The R x C output-stationary PE array with its input skew network and per-column drain."""

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import MixPEConfig
from .layouts import pe_activation_layout, row_index_shape, weight_layout
from .pe import ProcessingElement

__all__ = ["PEArray"]


class PEArray(wiring.Component):
    """Tokens on rows, output channels on columns, K streaming through in time.

    One K step enters per cycle, unskewed: ``x`` (one activation per row), ``w`` (one code per
    row band and column, element ``band * C + c``), ``valid`` and ``group_last``. The array
    registers it and delays row r by r cycles and column c by c cycles, so PE(r, c) sees step k at
    ``t + 1 + r + c`` for a step presented at cycle t. Activations and flags move right one PE per
    cycle. Codes move down inside a row band; the first row r0 of each band takes its band's codes
    from ``w``, delayed by ``1 + r0 + c`` cycles (``row_groups * C`` skew chains instead of C).

    When a group completes, PE(r, c) holds its partial sum in its drain register at
    ``t_last + 2 + r + c``. Column c's ``drain[c]`` is the one-hot OR of the drain registers of
    its rows, so it carries rows 0, 1, ..., R-1 on consecutive cycles; this requires consecutive
    group ends to be at least R cycles apart (the issue stage guarantees it).

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        Gives R, C, ``row_groups`` and the PE widths.

    Members
    -------
    x : ``In(ArrayLayout(signed(pe_act_bits), R))``
        One K step of activations, element r for row r.
    w : ``In(ArrayLayout(unsigned(weight_bits), row_groups * C))``
        One K step of codes, element ``band * C + c``.
    valid, group_last : ``In(1)``
        A K step is presented; it is its group's last.
    drain : ``Out(ArrayLayout(signed(psum_bits), C))``
        Per column the partial sum of the row draining this cycle.
    drain_valid : ``Out(C)``
        Per column: ``drain`` holds a sum.
    drain_row : ``In(ArrayLayout(row_index_shape(config), C))``, drain_enable : ``In(C)``
        Only with fewer GDU lanes than columns (``config.lanes < C``): column c's ``drain``
        carries the drain register of row ``drain_row[c]`` while ``drain_enable[c]`` (a PE holds
        its group's sum until the next group's drain), instead of each row's on its drain cycle.

    Latency
    -------
    ``config.drain_offset`` (2) cycles from a group's last step to PE(0, 0)'s drain; PE(r, c)
    drains ``r + c`` cycles later.
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        super().__init__({
            "x": In(pe_activation_layout(config)),
            "w": In(weight_layout(config)),
            "valid": In(1),
            "group_last": In(1),
            "drain": Out(data.ArrayLayout(signed(config.psum_bits), config.cols)),
            "drain_valid": Out(config.cols),
            **({"drain_row": In(data.ArrayLayout(row_index_shape(config), config.cols)),
                "drain_enable": In(config.cols)} if config.lanes < config.cols else {}),
        })

    @property
    def latency(self) -> int:
        """Cycles from a group's last step at the inputs to PE(0, 0)'s drain; PE(r, c) adds r + c."""
        return self._config.drain_offset

    def elaborate(self, platform):
        config = self._config
        rows, cols = config.rows, config.cols
        m = Module()

        pes = [[ProcessingElement(config) for _ in range(cols)] for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]

        # Skew network: row r is delayed by 1 + r cycles, column c by 1 + c cycles.
        for r in range(rows):
            x, valid, group_last = self.x[r], self.valid, self.group_last
            for stage in range(1 + r):
                x_next = Signal.like(x, name=f"skew_x_{r}_{stage}")
                valid_next = Signal(name=f"skew_valid_{r}_{stage}")
                last_next = Signal(name=f"skew_last_{r}_{stage}")
                m.d.sync += [x_next.eq(x), valid_next.eq(valid), last_next.eq(group_last)]
                x, valid, group_last = x_next, valid_next, last_next
            m.d.comb += [pes[r][0].x.eq(x), pes[r][0].valid.eq(valid), pes[r][0].group_last.eq(group_last)]
        # Codes: the first row r0 of band b takes element b * C + c delayed by 1 + r0 + c cycles
        # (band 0 keeps the plain array's signal names).
        for band in range(config.row_groups):
            first_row = band * config.band_rows
            prefix = "skew_w" if band == 0 else f"skew_w_band{band}"
            for c in range(cols):
                w = self.w[band * cols + c]
                for stage in range(1 + first_row + c):
                    w_next = Signal(unsigned(config.weight_bits), name=f"{prefix}_{c}_{stage}")
                    m.d.sync += w_next.eq(w)
                    w = w_next
                m.d.comb += pes[first_row][c].w.eq(w)

        for r in range(rows):
            for c in range(cols):
                pe = pes[r][c]
                if c + 1 < cols:
                    right = pes[r][c + 1]
                    m.d.comb += [right.x.eq(pe.x_out), right.valid.eq(pe.valid_out),
                                 right.group_last.eq(pe.group_last_out)]
                if (r + 1) % config.band_rows:
                    m.d.comb += pes[r + 1][c].w.eq(pe.w_out)

        for c in range(cols):
            drain = 0
            for r in range(rows):
                if config.lanes < cols:
                    selected = self.drain_enable[c] & (self.drain_row[c] == r)
                else:
                    selected = pes[r][c].psum_valid
                drain = drain | (pes[r][c].psum.as_unsigned() & selected.replicate(config.psum_bits))
            m.d.comb += [
                self.drain[c].eq(drain),
                self.drain_valid[c].eq(_any(pes[r][c].psum_valid for r in range(rows))),
            ]
        return m


def _any(bits):
    result = 0
    for bit in bits:
        result = result | bit
    return result
