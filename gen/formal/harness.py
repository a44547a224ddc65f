"""Formal harnesses: each wraps one block with free inputs and drives one output ``ok``, high while
every property holds in the current cycle; :mod:`gen.formal` proves ``ok`` stays 1 with Yosys.

Free inputs are the harness's ports: Yosys' ``sat`` gives them any value in every time step, so
a proof covers every handshake pattern and every operand sequence. Registers start from their
reset values (Amaranth's ``init``, which Yosys reads from the RTLIL) with ``rst`` held low.
"""

from __future__ import annotations

from amaranth import Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned

from hw.config import MixPEConfig
from hw.fp_align import ActivationAligner
from hw.mpgemm import MPGemm
from hw.pe import ProcessingElement

__all__ = ["StreamHarness", "PEHarness", "AlignerHarness"]


class StreamHarness(Elaboratable):
    """The ``mpgemm`` core under any handshake pattern, with a counter abstraction of its streams.

    The payloads are zero except ``grp.last`` (free): the properties are about beats, not values.
    ``ok`` checks, every cycle:

    * ``lockstep``: ``act`` and ``wgt`` transfer together (no step loses its weights);
    * ``grp``: a ``grp`` beat transfers exactly with each group's first step (counted K steps
      modulo g), so no group parameter is lost, repeated or taken out of order;
    * ``order``: result rows come out in order, row field = transferred rows modulo R and ``last``
      on row R - 1 (no row lost, duplicated or reordered);
    * ``no_extra``: a row is offered only for a tile whose last step has issued (transferred rows
      < R x ended tiles);
    * ``hold``: a result row offered and not taken stays offered with the same payload (the
      stream rule for a source);
    * ``latency``: while rows are owed and ``res.ready`` is high, a row transfers after at most
      ``latency_bound`` ready cycles without one, counted from the cycle after a tile's last step
      issued or after the last transfer (default ``result_offset - 1``: a tile's first row is
      offered ``result_offset`` cycles after its last step issued).

    ``covered`` rises once two tiles' rows have transferred: reaching it shows the bound is deep
    enough for the properties to have been exercised on whole tiles.
    """

    def __init__(self, config: MixPEConfig, counter_bits: int = 8, latency_bound: int | None = None):
        self.config = config
        self.counter_bits = counter_bits
        self.latency_bound = config.result_offset - 1 if latency_bound is None else latency_bound
        self.covered = Signal()
        self.act_valid, self.wgt_valid, self.grp_valid = Signal(), Signal(), Signal()
        self.grp_last, self.res_ready = Signal(), Signal()
        self.ok = Signal()
        self.checks: dict[str, Signal] = {}

    @property
    def ports(self) -> list[Signal]:
        return [self.act_valid, self.wgt_valid, self.grp_valid, self.grp_last, self.res_ready, self.ok, self.covered]

    def elaborate(self, platform):
        config = self.config
        rows, group = config.rows, config.group_size
        m = Module()
        core = m.submodules.core = MPGemm(config)
        m.d.comb += [
            core.act.valid.eq(self.act_valid), core.wgt.valid.eq(self.wgt_valid), core.grp.valid.eq(self.grp_valid),
            core.grp.payload.last.eq(self.grp_last), core.res.ready.eq(self.res_ready),
        ]
        act_xfer = core.act.valid & core.act.ready
        wgt_xfer = core.wgt.valid & core.wgt.ready
        grp_xfer = core.grp.valid & core.grp.ready
        res_xfer = core.res.valid & core.res.ready

        step_in_group = Signal(range(group))
        tile_last_group = Signal()             # the group being issued is its tile's last
        tiles_ended = Signal(self.counter_bits)
        rows_out = Signal(self.counter_bits + rows.bit_length())
        row_expected = Signal(range(rows))
        waited = Signal(range(self.latency_bound + 2))
        held = Signal()
        held_payload = Signal.like(core.res.payload.as_value())

        last_of_group = act_xfer & (step_in_group == group - 1)
        with m.If(act_xfer):
            m.d.sync += step_in_group.eq(Mux(step_in_group == group - 1, 0, step_in_group + 1))
        with m.If(grp_xfer):
            m.d.sync += tile_last_group.eq(core.grp.payload.last)
        ends_tile = last_of_group & Mux(step_in_group == 0, core.grp.payload.last, tile_last_group)
        with m.If(ends_tile):
            m.d.sync += tiles_ended.eq(tiles_ended + 1)
        with m.If(res_xfer):
            m.d.sync += [rows_out.eq(rows_out + 1), row_expected.eq(Mux(row_expected == rows - 1, 0, row_expected + 1))]
        owed = rows_out < tiles_ended * rows
        with m.If(res_xfer | ~owed):
            m.d.sync += waited.eq(0)
        with m.Elif(core.res.ready & (waited <= self.latency_bound)):
            m.d.sync += waited.eq(waited + 1)
        m.d.sync += [held.eq(core.res.valid & ~core.res.ready), held_payload.eq(core.res.payload.as_value())]

        self.checks = {
            "lockstep": Signal(name="lockstep"), "grp": Signal(name="grp_with_first_step"),
            "order": Signal(name="order"), "no_extra": Signal(name="no_extra"), "hold": Signal(name="hold"),
            "latency": Signal(name="latency"),
        }
        m.d.comb += [
            self.checks["lockstep"].eq(act_xfer == wgt_xfer),
            self.checks["grp"].eq(grp_xfer == (act_xfer & (step_in_group == 0))),
            self.checks["order"].eq(~res_xfer | ((core.res.payload.row == row_expected) &
                                                 (core.res.payload.last == (row_expected == rows - 1)))),
            self.checks["no_extra"].eq(~core.res.valid | owed),
            self.checks["hold"].eq(~held | (core.res.valid & (core.res.payload.as_value() == held_payload))),
            self.checks["latency"].eq(waited <= self.latency_bound),
            self.ok.eq(Cat(*self.checks.values()).all()),
            self.covered.eq(rows_out >= 2 * rows),
        ]
        return m


class PEHarness(Elaboratable):
    """One PE against a reference accumulator that multiplies with ``*``: after any sequence of
    steps (``valid`` and ``group_last`` free), the drain register ``psum`` equals the reference's
    (sums modulo ``2**psum_bits``), and ``psum_valid`` rises exactly after a group's last step."""

    def __init__(self, config: MixPEConfig):
        self.config = config
        self.x = Signal(signed(config.pe_act_bits))
        self.w = Signal(unsigned(config.weight_bits))
        self.valid, self.group_last = Signal(), Signal()
        self.ok = Signal()

    @property
    def ports(self) -> list[Signal]:
        return [self.x, self.w, self.valid, self.group_last, self.ok]

    def elaborate(self, platform):
        config = self.config
        m = Module()
        pe = m.submodules.pe = ProcessingElement(config)
        m.d.comb += [pe.x.eq(self.x), pe.w.eq(self.w), pe.valid.eq(self.valid), pe.group_last.eq(self.group_last)]
        sum_shape = signed(config.psum_bits)
        reference = Signal(sum_shape, name="reference")
        drained = Signal(sum_shape, name="drained")
        drained_valid = Signal(name="drained_valid")
        total = (reference + self.x * self.w)[:config.psum_bits].as_signed()
        with m.If(self.valid):
            with m.If(self.group_last):
                m.d.sync += [drained.eq(total), reference.eq(0)]
            with m.Else():
                m.d.sync += reference.eq(total)
        m.d.sync += drained_valid.eq(self.valid & self.group_last)
        m.d.comb += self.ok.eq((pe.psum == drained) & (pe.psum_valid == drained_valid))
        return m


class AlignerHarness(Elaboratable):
    """The floating-point aligner (one row) against a reference written from its contract
    (:class:`~hw.fp_align.ActivationAligner`): with ``s = e_max - max(e, 1)`` and the significand
    ``sig`` (hidden bit for normals), the magnitude is ``floor(sig * 2**G / 2**s)`` plus the first
    bit shifted out (round to nearest, ties away from zero), with no saturation of the shift; Inf,
    NaN and ``s < 0`` give ``invalid`` and 0. ``ok`` also checks the rounding error: twice
    ``|magnitude * 2**s - sig * 2**G|`` is at most ``2**s``."""

    def __init__(self, config: MixPEConfig):
        if config.rows != 1:
            raise ValueError(f"rows={config.rows}: the aligner harness checks one row")
        self.config = config
        self.code = Signal(config.act_bits)
        self.e_max = Signal(config.act_exp_bits)
        self.ok = Signal()

    @property
    def ports(self) -> list[Signal]:
        return [self.code, self.e_max, self.ok]

    def elaborate(self, platform):
        config = self.config
        fmt = config.act_format
        man_bits, exp_bits, guard = fmt.man_bits, fmt.exp_bits, config.guard
        m = Module()
        aligner = m.submodules.aligner = ActivationAligner(config)
        m.d.comb += [aligner.x[0].eq(self.code), aligner.e_max[0].eq(self.e_max)]

        exponent, mantissa = self.code[man_bits:man_bits + exp_bits], self.code[:man_bits]
        ones = (1 << exp_bits) - 1
        special = ((exponent == ones) & (mantissa == (1 << man_bits) - 1)) if fmt.specials == "fn" else exponent == ones
        e_eff = Mux(exponent == 0, 1, exponent)
        significand = Mux(exponent == 0, mantissa, mantissa | (1 << man_bits))
        shift = Signal(range(-(1 << exp_bits), 1 << exp_bits))
        m.d.comb += shift.eq(self.e_max - e_eff)
        scaled = Signal(man_bits + 1 + guard)
        m.d.comb += scaled.eq(significand << guard)
        amount = shift.as_unsigned()[:exp_bits]
        floor = scaled >> amount
        round_bit = Mux(amount == 0, 0, (scaled >> (amount - 1).as_unsigned()[:exp_bits])[0])
        magnitude = Signal(man_bits + guard + 1)
        m.d.comb += magnitude.eq(floor + round_bit)
        invalid = special | (shift < 0)
        expected = Mux(invalid, 0, Mux(self.code[-1], -magnitude, magnitude))

        # Rounding error within half an LSB of the aligned value, for shifts the significand spans.
        width = man_bits + guard + 2 + (1 << exp_bits)
        back = Signal(width)
        m.d.comb += back.eq(magnitude << amount)
        error = Mux(back >= scaled, back - scaled, scaled - back)
        bounded = invalid | ((error << 1) <= (Const(1, width) << amount))
        m.d.comb += self.ok.eq((aligner.aligned[0] == expected) & (aligner.invalid[0] == invalid) & bounded)
        return m
