"""Parameter capture of the MixPE core: group parameters and descriptors from issue to drain."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import MixPEConfig
from .fp_common import delay
from .layouts import descriptor_layout, group_layout, row_index_shape, row_info_layout, row_param_shape, scale_shape, zero_shape

__all__ = ["ParameterCapture"]


class ParameterCapture(wiring.Component):
    """Holds each group's ``grp`` beat from its first step until its rows are dequantized.

    * The beat is captured when the group's first step issues (``issue & group_start``), with
      the tile's first-group flag and output bank.
    * When the group's last step issues (``group_end``, cycle t_L), its ``scale``/``zero``
      move into one of two ping-pong registers (the group's parity selects which), so that they
      outlive the sweep of the group's rows across the C columns while the next group is
      captured; this is what ``group_interval`` is sized for.
    * At t_L + 1 the group's per-row parameters and descriptor (first, last, bank, parity) move
      into the drain registers (through ``edge_stages`` more registers), which the row sums of the
      group (on the ``sum_*`` inputs from t_L + ``issue_to_drain``, as
      :class:`~hw.act_sum.ActivationSum` emits them) are combined with into the row sideband
      ``info``. The sideband moves one column right per cycle; column c also gets the
      ``scale``/``zero`` of the row band and parity of the row it carries.
    * K-quants (``scale_mode="kquant"``): the groups of a tile are counted off in super-blocks of
      ``superblock_groups``; the descriptor marks a group's place in its super-block
      (``sub_first``/``sub_last``) and sets ``first`` on every group of the tile's first
      super-block (whose sums the GDU accumulates onto -0).

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        Gives R, C, ``row_groups`` and the field shapes (:mod:`hw.layouts`).

    Members
    -------
    grp : ``In(group_layout(config))``
        The offered group's parameters.
    group_start, issue, group_end, tile_start, bank : ``In(1)``
        From :class:`~hw.issue.IssueScheduler`: the next step starts a group, a step issues, the
        issuing step ends its group, the starting group is its tile's first, the tile's bank.
    sum_valid : ``In(1)``, sum_row : ``In(row_index_shape(config))``, asum : ``In(signed(asum_bits))``
        One row's activation group sum per cycle (:class:`~hw.act_sum.ActivationSum`).
    sum_invalid : ``In(1)``
        Floating-point activations only: the row's group held an Inf, a NaN or an element above
        the shared exponent.
    e_max : ``Out(ArrayLayout(row_param_shape(config), R))``
        Floating-point activations only: per row the shared exponent of the group that the next
        step to issue belongs to (from ``grp`` on a group's first step, held afterwards).
    info : ``Out(ArrayLayout(row_info_layout(config), C))``
        Row sideband per column (:func:`~hw.layouts.row_info_layout`).
    scale : ``Out(ArrayLayout(scale_shape(config), C))``, zero : ``Out(ArrayLayout(zero_shape(config), C))``
        Per column the scale (FP16, or K-quants' d and sub-scale) and the zero parameter of the row band and group of the row on
        ``info``.

    Latency
    -------
    0 cycles from a row's sum to its sideband on column 0; column c adds c cycles. A group whose
    last step issues at t_L has its descriptor in place for rows arriving from
    t_L + ``issue_to_drain`` on.
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        cols = config.cols
        members = {
            "grp": In(group_layout(config)),
            "group_start": In(1),
            "issue": In(1),
            "group_end": In(1),
            "tile_start": In(1),
            "bank": In(1),
            "sum_valid": In(1),
            "sum_row": In(row_index_shape(config)),
            "asum": In(signed(config.asum_bits)),
            "info": Out(data.ArrayLayout(row_info_layout(config), config.lanes)),
            "scale": Out(data.ArrayLayout(scale_shape(config), config.lanes)),
            "zero": Out(data.ArrayLayout(zero_shape(config), config.lanes)),
        }
        if config.columns_per_lane > 1:
            members["column"] = Out(data.ArrayLayout(range(config.columns_per_lane), config.lanes))
        if config.fp_activation:
            members.update({"sum_invalid": In(1),
                            "e_max": Out(data.ArrayLayout(row_param_shape(config), config.rows))})
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Cycles from a row's sum on ``sum_*`` to its sideband on lane 0's ``info`` (1 when the
        lanes serve several columns: the sequencer starts after row 0)."""
        return 0 if self._config.lanes == self._config.cols else 1

    def elaborate(self, platform):
        config = self._config
        rows, cols = config.rows, config.cols
        m = Module()

        # Parameters of the group being issued, captured with its first step.
        pending = Signal(group_layout(config))
        pending_first = Signal()
        pending_bank = Signal()
        with m.If(self.issue & self.group_start):
            m.d.sync += [pending.eq(self.grp), pending_first.eq(self.tile_start), pending_bank.eq(self.bank)]
        if config.fp_activation:
            m.d.comb += self.e_max.eq(Mux(self.group_start, self.grp.row_param, pending.row_param))
        if config.kquant:
            pending_first, sub_first, sub_last = self._superblock_position(m)

        # Ping-pong dequant parameters, written when a group ends.
        param_layout = data.StructLayout({
            "scale": data.ArrayLayout(scale_shape(config), config.row_groups * cols),
            "zero": data.ArrayLayout(zero_shape(config), config.row_groups * cols),
        })
        params = [Signal(param_layout, name=f"params_{parity}") for parity in range(2)]
        parity = Signal()
        with m.If(self.group_end):
            for index in range(2):
                with m.If(parity == index):
                    m.d.sync += [params[index].scale.eq(pending.scale), params[index].zero.eq(pending.zero)]
            m.d.sync += parity.eq(~parity)

        # The row sideband of a group is read while the activation-sum unit emits its rows, from
        # t_L + d to t_L + d - 1 + R (d = ``issue_to_drain``), and the next group may end as
        # early as t_L + R: so the descriptor is taken one cycle after the group ends (``pending``
        # still holds it then, since a new group's parameters land at the end of that cycle at the
        # earliest) and delayed by the registers between the issue and the array (``edge_stages``).
        descriptor = Signal(descriptor_layout(config))
        group_ended = Signal()
        m.d.sync += group_ended.eq(self.group_end)
        with m.If(group_ended):
            m.d.sync += [
                descriptor.row_params.eq(pending.row_param),
                descriptor.first.eq(pending_first),
                descriptor.last.eq(pending.last),
                descriptor.bank.eq(pending_bank),
                descriptor.parity.eq(~parity),
            ]
            if config.kquant:
                m.d.sync += [descriptor.sub_first.eq(sub_first), descriptor.sub_last.eq(sub_last)]
        drain = delay(m, descriptor, config.edge_stages, "descriptor")

        if config.lanes == cols:
            self._column_sideband(m, drain, params)
        else:
            self._lane_sideband(m, drain, params)
        return m

    def _superblock_position(self, m: Module) -> tuple:
        """K-quants: (the pending group is in its tile's first super-block, it is its super-block's
        first group, its last), counted as groups are captured (a tile is whole super-blocks)."""
        per_super = self._config.superblock_groups
        position = Signal(range(max(per_super, 2)))          # of the pending group in its super-block
        first_super = Signal()
        ends_super = position == per_super - 1
        with m.If(self.issue & self.group_start):
            m.d.sync += [position.eq(Mux(self.tile_start | ends_super, 0, position + 1)),
                         first_super.eq(self.tile_start | (first_super & ~ends_super))]
        return first_super, position == 0, ends_super

    def _first_row_info(self, m: Module, drain, name: str) -> Signal:
        """The row sideband of the row on the ``sum_*`` inputs, with the group's descriptor."""
        info = Signal(row_info_layout(self._config), name=name)
        m.d.comb += [
            info.valid.eq(self.sum_valid),
            info.row.eq(self.sum_row),
            info.asum.eq(self.asum),
            info.row_param.eq(drain.row_params[self.sum_row]),
            info.first.eq(drain.first),
            info.last.eq(drain.last),
            info.bank.eq(drain.bank),
            info.parity.eq(drain.parity),
        ]
        if self._config.fp_activation:
            m.d.comb += info.invalid.eq(self.sum_invalid)
        if self._config.kquant:
            m.d.comb += [info.sub_first.eq(drain.sub_first), info.sub_last.eq(drain.sub_last)]
        return info

    def _column_sideband(self, m: Module, drain, params) -> None:
        """One lane per column: the row sideband moves along the bottom of the array, column c
        sees row r at t_L + issue_to_drain + r + c."""
        config = self._config
        row_info = [self._first_row_info(m, drain, "row_info_0")]
        for c in range(1, config.cols):
            row_info.append(Signal(row_info_layout(config), name=f"row_info_{c}"))
            m.d.sync += row_info[c].eq(row_info[c - 1])
        for c in range(config.cols):
            self._lane_outputs(m, c, row_info[c], [c], 0, params)

    def _lane_sideband(self, m: Module, drain, params) -> None:
        """Fewer lanes than columns: each group's row sums and descriptor are kept per group
        parity, and a sequencer started by the group's row 0 (at T = t_L + issue_to_drain) walks
        them column index by column index: index i, row r at T + 1 + i * lane_period + r for
        lane 0, and the sideband moves on to lane l, l cycles later."""
        config = self._config
        rows, lanes, per_lane = config.rows, config.lanes, config.columns_per_lane
        period = config.lane_period(lanes)
        sums_layout = data.StructLayout({"asum": data.ArrayLayout(signed(config.asum_bits), rows),
                                         **({"invalid": data.ArrayLayout(1, rows)} if config.fp_activation else {})})
        sums = [Signal(sums_layout, name=f"sums_{parity}") for parity in range(2)]
        descriptors = [Signal(drain.shape(), name=f"descriptor_{parity}") for parity in range(2)]
        for parity in range(2):
            with m.If(drain.parity == parity):
                m.d.sync += descriptors[parity].eq(drain)
                with m.If(self.sum_valid):
                    m.d.sync += sums[parity].asum[self.sum_row].eq(self.asum)
                    if config.fp_activation:
                        m.d.sync += sums[parity].invalid[self.sum_row].eq(self.sum_invalid)

        active = Signal()
        phase = Signal(range(period))
        index = Signal(range(per_lane))
        parity = Signal()
        with m.If(self.sum_valid & (self.sum_row == 0)):
            m.d.sync += [active.eq(1), phase.eq(0), index.eq(0), parity.eq(drain.parity)]
        with m.Elif(active):
            with m.If(phase == period - 1):
                m.d.sync += [phase.eq(0), index.eq(index + 1)]
                with m.If(index == per_lane - 1):
                    m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += phase.eq(phase + 1)

        row = phase[:len(self.sum_row)]
        walked = Signal(row_info_layout(config), name="walked_info")
        sums_now = sums_layout(Mux(parity, sums[1].as_value(), sums[0].as_value()))
        descriptor = drain.shape()(Mux(parity, descriptors[1].as_value(), descriptors[0].as_value()))
        m.d.comb += [
            walked.valid.eq(active & (phase < rows)),
            walked.row.eq(row),
            walked.asum.eq(sums_now.asum[row]),
            walked.row_param.eq(descriptor.row_params[row]),
            walked.first.eq(descriptor.first),
            walked.last.eq(descriptor.last),
            walked.bank.eq(descriptor.bank),
            walked.parity.eq(parity),
        ]
        if config.fp_activation:
            m.d.comb += walked.invalid.eq(sums_now.invalid[row])
        if config.kquant:
            m.d.comb += [walked.sub_first.eq(descriptor.sub_first), walked.sub_last.eq(descriptor.sub_last)]
        info, column = walked, index
        for lane in range(lanes):
            if lane:
                info = delay(m, info, 1, f"lane_info_{lane}", reset=True)
                column = delay(m, column, 1, f"lane_column_{lane}")
            columns = list(range(lane, config.cols, lanes))
            if len(columns) < per_lane:  # this lane has no column at the last index
                lane_info = Signal(info.shape(), name=f"lane_{lane}_info")
                m.d.comb += [lane_info.eq(info), lane_info.valid.eq(info.valid & (column != per_lane - 1))]
            else:
                lane_info = info
            m.d.comb += self.column[lane].eq(column)
            self._lane_outputs(m, lane, lane_info, columns, column, params)

    def _lane_outputs(self, m: Module, lane: int, info, columns: list, column, params) -> None:
        """Drive lane ``lane``'s outputs: ``info``, and the scale and zero of the band of the row
        it carries and of its column ``columns[column]``, from the ping-pong parameters."""
        config = self._config
        cols = config.cols

        def param(field, parity):
            per_band = []
            for band in range(config.row_groups):
                candidates = [params[parity][field][band * cols + c] for c in columns]
                selected = candidates[0]
                for position in range(1, len(candidates)):
                    selected = Mux(column == position, candidates[position], selected)
                per_band.append(selected)
            return _select_band(config, info.row, per_band)
        m.d.comb += [
            self.info[lane].eq(info),
            self.scale[lane].eq(Mux(info.parity, param("scale", 1), param("scale", 0))),
            self.zero[lane].eq(Mux(info.parity, param("zero", 1), param("zero", 0))),
        ]


def _select_band(config: MixPEConfig, row, per_band: list):
    """``per_band[row // band_rows]``: the value of the row band holding ``row``."""
    selected = per_band[0]
    for band in range(1, config.row_groups):
        selected = Mux(row >= band * config.band_rows, per_band[band], selected)
    return selected
