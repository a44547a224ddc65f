"""Top level MixPE core: an R x C mixed-precision GEMM tile engine with ready/valid streams.

Streams (payload layouts in :mod:`hw.layouts`):

``act`` (in)
    One K step of activations per beat: R INT8 values or raw floating-point codes (token rows).
    Floating-point codes are aligned on the way into the array (:class:`~hw.fp_align.ActivationAligner`)
    against the row's shared exponent of the group, which arrives on ``grp``.
``wgt`` (in)
    One K step of weight codes per beat: C unsigned codes (output columns) per row band,
    ``row_groups * C`` in all (element ``band * C + c``).
``grp`` (in)
    One beat per quantization group, consumed together with the group's first K step: FP16
    scales and ``zero`` (zero points, or with ``zero_mode="float_offset"`` FP16 offsets) per row
    band and column, per row ``row_param`` (the FP32 token scale for INT8, or the group's shared
    exponent for floating point), and ``last`` marking the tile's final group. A tile is any number of groups;
    K = groups x g. Row band b (rows ``b * R/row_groups`` onwards) is computed with its own codes
    and parameters; the K schedule is shared.
``res`` (out)
    R beats per tile, one output row each: C raw FP32 values, the row index and ``last``.

Timeline. A K step issues on a cycle where ``act``, ``wgt`` (and ``grp`` on a group's first
step) are all valid and the schedule allows it. For a group whose last step issues at cycle
t_L, PE(r, c) drains its partial sum at ``t_L + 2 + r + c`` into column c's GDU together with
the row's activation sum, and the GDU's accumulator holds the dequantized value
``gdu_latency`` cycles later. Result row r of a tile whose last step issued at t_L is offered
at ``t_L + result_offset + r`` at the earliest (see :mod:`golden.cycles`).

Schedule rules (all derived from the configuration):

* a group's first step issues at least ``group_interval`` cycles after the previous group's
  first step (:attr:`~hw.config.MixPEConfig.group_interval`,
  ``max(g, R, ceil((R - R/row_groups + C + 1) / 2))``): the GDUs drain R rows per group and the
  ping-pong parameter registers must outlive the sweep of the last band's first row across the
  C columns;
* when that interval exceeds g, a group's last step also issues at least ``group_interval``
  cycles after the previous group's last step, since the drains follow the group ends: input
  stalls inside a group would otherwise bring two group ends closer. Without input stalls the
  steps of a group are consecutive and this rule never binds;
* a tile's first step issues only when its output bank (tiles alternate between two) has been
  fully read out, because drained sums cannot wait.
"""

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .act_sum import ActivationSum
from .array import PEArray
from .config import MixPEConfig
from .fp_align import ActivationAligner
from .gdu import GroupDequant
from .layouts import (FP16_BITS, activation_layout, group_layout, result_layout, row_info_layout,
                      row_param_shape, weight_layout, zero_shape)

__all__ = ["MPGemm"]


class MPGemm(wiring.Component):
    """The MixPE mpGEMM core for one configuration (see the module docstring)."""

    def __init__(self, config: MixPEConfig):
        self._config = config
        super().__init__({
            "act": In(stream.Signature(activation_layout(config))),
            "wgt": In(stream.Signature(weight_layout(config))),
            "grp": In(stream.Signature(group_layout(config))),
            "res": Out(stream.Signature(result_layout(config))),
        })

    @property
    def config(self) -> MixPEConfig:
        return self._config

    @property
    def latency(self) -> int:
        """Cycles from a tile's last K step issuing to its first result row being offered."""
        return self._config.result_offset

    def elaborate(self, platform):
        config = self._config
        rows, cols, group_size = config.rows, config.cols, config.group_size
        interval = config.group_interval
        m = Module()

        array = m.submodules.array = PEArray(config)
        act_sum = m.submodules.act_sum = ActivationSum(config)
        gdus = [GroupDequant(config) for _ in range(cols)]
        for c, gdu in enumerate(gdus):
            m.submodules[f"gdu_{c}"] = gdu

        # ---- issue stage -------------------------------------------------------------------
        step_in_group = Signal(range(group_size))
        since_group_start = Signal(range(interval + 1), init=interval)
        next_is_tile_first = Signal(init=1)
        next_tile_bank = Signal()
        tile_bank = Signal()
        bank_busy = Signal(2)

        at_group_start = step_in_group == 0
        group_start_allowed = ((since_group_start >= interval) & self.grp.valid &
                               ~(next_is_tile_first & bank_busy.bit_select(next_tile_bank, 1)))
        step_allowed = ~at_group_start | group_start_allowed
        issue = Signal()
        group_ends = Signal()
        if interval > group_size:
            since_group_end = Signal(range(interval + 1), init=interval)
            step_allowed &= (step_in_group != group_size - 1) | (since_group_end >= interval)
            with m.If(group_ends):
                m.d.sync += since_group_end.eq(1)
            with m.Elif(since_group_end < interval):
                m.d.sync += since_group_end.eq(since_group_end + 1)
        m.d.comb += [
            issue.eq(self.act.valid & self.wgt.valid & step_allowed),
            group_ends.eq(issue & (step_in_group == group_size - 1)),
            self.act.ready.eq(issue),
            self.wgt.ready.eq(issue),
            self.grp.ready.eq(issue & at_group_start),
        ]
        with m.If(issue):
            m.d.sync += step_in_group.eq(Mux(step_in_group == group_size - 1, 0, step_in_group + 1))

        # Parameters of the group being issued, captured with its first step.
        pending = Signal(group_layout(config))
        pending_first = Signal()
        pending_bank = Signal()
        with m.If(issue & at_group_start):
            m.d.sync += [
                pending.eq(self.grp.payload),
                pending_first.eq(next_is_tile_first),
                next_is_tile_first.eq(self.grp.payload.last),
                since_group_start.eq(1),
            ]
            with m.If(next_is_tile_first):
                m.d.sync += [
                    pending_bank.eq(next_tile_bank),
                    tile_bank.eq(next_tile_bank),
                    next_tile_bank.eq(~next_tile_bank),
                    bank_busy.bit_select(next_tile_bank, 1).eq(1),
                ]
            with m.Else():
                m.d.sync += pending_bank.eq(tile_bank)
        with m.Elif(since_group_start < interval):
            m.d.sync += since_group_start.eq(since_group_start + 1)

        if config.fp_activation:
            # The group's shared exponents come with its first step and are held in ``pending``.
            aligner = m.submodules.aligner = ActivationAligner(config)
            m.d.comb += [
                aligner.x.eq(self.act.payload),
                aligner.e_max.eq(Mux(at_group_start, self.grp.payload.row_param, pending.row_param)),
                act_sum.x_invalid.eq(aligner.invalid),
            ]
            pe_activations = aligner.aligned
        else:
            pe_activations = self.act.payload
        m.d.comb += [
            array.x.eq(pe_activations),
            array.w.eq(self.wgt.payload),
            array.valid.eq(issue),
            array.group_last.eq(group_ends),
            act_sum.x.eq(pe_activations),
            act_sum.valid.eq(issue),
            act_sum.group_last.eq(group_ends),
        ]

        # ---- drain side: per-group descriptors and ping-pong dequant parameters -------------
        param_layout = data.StructLayout({
            "scale": data.ArrayLayout(unsigned(FP16_BITS), config.row_groups * cols),
            "zero": data.ArrayLayout(zero_shape(config), config.row_groups * cols),
        })
        params = [Signal(param_layout, name=f"params_{parity}") for parity in range(2)]
        drain_row_params = Signal(data.ArrayLayout(row_param_shape(config), rows))
        drain_first = Signal()
        drain_last = Signal()
        drain_bank = Signal()
        drain_parity = Signal()
        parity = Signal()
        with m.If(group_ends):
            for index in range(2):
                with m.If(parity == index):
                    m.d.sync += [params[index].scale.eq(pending.scale),
                                 params[index].zero.eq(pending.zero)]
            m.d.sync += parity.eq(~parity)
        # The row sideband of a group is read while the activation-sum unit emits its rows, from
        # t_L + 2 to t_L + 1 + R, and the next group may end as early as t_L + R: so the
        # descriptor is taken one cycle after the group ends (``pending`` still holds it then,
        # since a new group's parameters land at the end of that cycle at the earliest).
        group_ended = Signal()
        m.d.sync += group_ended.eq(group_ends)
        with m.If(group_ended):
            m.d.sync += [
                drain_row_params.eq(pending.row_param),
                drain_first.eq(pending_first),
                drain_last.eq(pending.last),
                drain_bank.eq(pending_bank),
                drain_parity.eq(~parity),
            ]

        # Row sideband along the bottom of the array: column c sees row r at t_L + 2 + r + c.
        row_info = [Signal(row_info_layout(config), name=f"row_info_{c}") for c in range(cols)]
        m.d.comb += [
            row_info[0].valid.eq(act_sum.row_valid),
            row_info[0].row.eq(act_sum.row),
            row_info[0].asum.eq(act_sum.asum),
            row_info[0].row_param.eq(drain_row_params[act_sum.row]),
            row_info[0].first.eq(drain_first),
            row_info[0].last.eq(drain_last),
            row_info[0].bank.eq(drain_bank),
            row_info[0].parity.eq(drain_parity),
        ]
        if config.fp_activation:
            m.d.comb += row_info[0].invalid.eq(act_sum.invalid)
        for c in range(1, cols):
            m.d.sync += row_info[c].eq(row_info[c - 1])

        # Column c's GDU gets the parameters of the band of the row it is dequantizing (it latches
        # them on the band's first row).
        for c, gdu in enumerate(gdus):
            parity_c, row_c = row_info[c].parity, row_info[c].row

            def band_param(field, parity):
                return _select_band(config, row_c, [params[parity][field][band * cols + c]
                                                    for band in range(config.row_groups)])
            m.d.comb += [
                gdu.psum.eq(array.drain[c]),
                gdu.info.eq(row_info[c]),
                gdu.scale.eq(Mux(parity_c, band_param("scale", 1), band_param("scale", 0))),
                gdu.zero.eq(Mux(parity_c, band_param("zero", 1), band_param("zero", 0))),
            ]

        # ---- result stage: read a bank row by row once the last column has written it ------
        rows_ready = [Signal(range(rows + 1), name=f"rows_ready_{bank}") for bank in range(2)]
        read_bank = Signal()
        read_row = Signal(range(rows))
        last_gdu = gdus[-1]
        for bank in range(2):
            with m.If(last_gdu.result_written & (last_gdu.result_bank == bank)):
                m.d.sync += rows_ready[bank].eq(rows_ready[bank] + 1)

        ready_now = Mux(read_bank, rows_ready[1], rows_ready[0])
        for c, gdu in enumerate(gdus):
            m.d.comb += [
                gdu.read_addr.eq(read_bank * rows + read_row),
                self.res.payload.data[c].eq(gdu.read_data),
            ]
        m.d.comb += [
            self.res.valid.eq(ready_now > read_row),
            self.res.payload.row.eq(read_row),
            self.res.payload.last.eq(read_row == rows - 1),
        ]
        with m.If(self.res.valid & self.res.ready):
            with m.If(read_row == rows - 1):
                m.d.sync += [
                    read_row.eq(0),
                    read_bank.eq(~read_bank),
                    bank_busy.bit_select(read_bank, 1).eq(0),
                ]
                for bank in range(2):
                    with m.If(read_bank == bank):
                        m.d.sync += rows_ready[bank].eq(0)
            with m.Else():
                m.d.sync += read_row.eq(read_row + 1)
        return m


def _select_band(config: MixPEConfig, row, per_band: list):
    """``per_band[row // band_rows]``: the value of the row band holding ``row``."""
    selected = per_band[0]
    for band in range(1, config.row_groups):
        selected = Mux(row >= band * config.band_rows, per_band[band], selected)
    return selected
