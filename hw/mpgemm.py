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
    exponent for floating point), and ``last`` marking the tile's final group. A tile is any
    number of groups; K = groups x g. Row band b (rows ``b * R/row_groups`` onwards) is computed with its own codes
    and parameters; the K schedule is shared.
``res`` (out)
    R beats per tile, one output row each: C raw FP32 values, the row index and ``last``.

Timeline. A K step issues on a cycle where ``act``, ``wgt`` (and ``grp`` on a group's first
step) are all valid and the schedule allows it; it enters the array ``edge_stages`` cycles later
(0 with INT8; 1 with floating point, whose aligned activations are registered). For a group
whose last step issues at cycle t_L, PE(r, c) drains its partial sum at
``t_L + issue_to_drain + r + c`` (``issue_to_drain = edge_stages + drain_offset``) into column c's
GDU together with the row's activation sum, and the GDU's accumulator holds the dequantized value
``gdu_latency`` cycles later (:attr:`~hw.config.MixPEConfig.gdu_stage_cycles`: the GDU's FP32
units are pipelined ``gdu_unit_stages`` deep, as fast as a PE). Result row r of a tile whose last step issued at t_L is offered
at ``t_L + result_offset + r`` at the earliest (see :mod:`golden.cycles`).

Schedule rules (all derived from the configuration):

* a group's first step issues at least ``group_interval`` cycles after the previous group's
  first step (:meth:`~hw.config.MixPEConfig.interval_with_lanes`; with a GDU per column
  ``max(g, R, ceil((issue_to_drain + R - R/row_groups + C - 1) / 2))``): the rows drain R per
  group, a GDU lane dequantizes R rows of each of its columns, and the ping-pong parameter
  registers must outlive the sweep of the last band's first row across the columns;
* when that interval exceeds g, a group's last step also issues at least ``group_interval``
  cycles after the previous group's last step, since the drains follow the group ends: input
  stalls inside a group would otherwise bring two group ends closer. Without input stalls the
  steps of a group are consecutive and this rule never binds;
* a tile's first step issues only when its output bank (tiles alternate between two) has been
  fully read out, because drained sums cannot wait.

Blocks: :class:`~hw.issue.IssueScheduler` applies the schedule rules;
:class:`~hw.fp_align.ActivationAligner` (floating point) aligns the activations;
:class:`~hw.array.PEArray` and :class:`~hw.act_sum.ActivationSum` compute P and A per row and
group; :class:`~hw.param_capture.ParameterCapture` carries each group's parameters from its first
step to its drained rows (with fewer GDU lanes than columns, walking them over each lane's
columns); one :class:`~hw.gdu.GroupDequant` per lane (``config.lanes``; lane l takes columns l,
l + L, ..., selecting each drained row in the array) dequantizes and accumulates;
:class:`~hw.result_reader.ResultReader` reads the finished rows onto ``res``.
"""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .act_sum import ActivationSum
from .array import PEArray
from .config import MixPEConfig
from .fp_align import ActivationAligner
from .fp_common import delay
from .gdu import GroupDequant
from .issue import IssueScheduler
from .layouts import activation_layout, group_layout, result_layout, weight_layout
from .param_capture import ParameterCapture
from .result_reader import ResultReader

__all__ = ["MPGemm"]


class MPGemm(wiring.Component):
    """The MixPE mpGEMM core for one configuration (see the module docstring).

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        The core's configuration; every width and latency derives from it.

    Members
    -------
    act : ``In(stream.Signature(activation_layout(config)))``
        K steps of activations.
    wgt : ``In(stream.Signature(weight_layout(config)))``
        K steps of weight codes.
    grp : ``In(stream.Signature(group_layout(config)))``
        Group parameters, consumed with each group's first step.
    res : ``Out(stream.Signature(result_layout(config)))``
        Result rows, R per tile.

    Latency
    -------
    ``config.result_offset`` cycles from a tile's last K step issuing to its first result row
    being offered (``issue_to_drain + C - 1 + gdu_latency``), when the result stream is free.
    """

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
        m = Module()

        scheduler = m.submodules.scheduler = IssueScheduler(config)
        capture = m.submodules.capture = ParameterCapture(config)
        array = m.submodules.array = PEArray(config)
        act_sum = m.submodules.act_sum = ActivationSum(config)
        gdus = [GroupDequant(config) for _ in range(config.lanes)]
        for lane, gdu in enumerate(gdus):
            m.submodules[f"gdu_{lane}"] = gdu
        reader = m.submodules.reader = ResultReader(config)

        # Issue: a K step enters the array on the cycles the scheduler allows.
        m.d.comb += [
            scheduler.step_valid.eq(self.act.valid & self.wgt.valid),
            scheduler.grp_valid.eq(self.grp.valid),
            scheduler.grp_last.eq(self.grp.payload.last),
            scheduler.bank_released.eq(reader.bank_released),
            self.act.ready.eq(scheduler.issue),
            self.wgt.ready.eq(scheduler.issue),
            self.grp.ready.eq(scheduler.issue & scheduler.group_start),
            capture.grp.eq(self.grp.payload),
            capture.group_start.eq(scheduler.group_start),
            capture.issue.eq(scheduler.issue),
            capture.group_end.eq(scheduler.group_end),
            capture.tile_start.eq(scheduler.tile_start),
            capture.bank.eq(scheduler.bank),
        ]
        # Edge: floating-point activations are aligned, and the step is registered
        # (``edge_stages``) before the array and the activation-sum unit.
        edge = config.edge_stages
        if config.fp_activation:
            aligner = m.submodules.aligner = ActivationAligner(config)
            m.d.comb += [
                aligner.x.eq(self.act.payload),
                aligner.e_max.eq(capture.e_max),
                act_sum.x_invalid.eq(delay(m, aligner.invalid, edge, "edge_invalid")),
            ]
            pe_activations = aligner.aligned
        else:
            pe_activations = self.act.payload
        pe_activations = delay(m, pe_activations, edge, "edge_x")
        step_valid = delay(m, scheduler.issue, edge, "edge_valid", reset=True)
        group_last = delay(m, scheduler.group_end, edge, "edge_group_last")
        for unit in (array, act_sum):
            m.d.comb += [
                unit.x.eq(pe_activations),
                unit.valid.eq(step_valid),
                unit.group_last.eq(group_last),
            ]
        m.d.comb += array.w.eq(delay(m, self.wgt.payload, edge, "edge_w"))

        # Drain: the row sums and the captured parameters travel with the partial sums to the GDUs.
        m.d.comb += [
            capture.sum_valid.eq(act_sum.row_valid),
            capture.sum_row.eq(act_sum.row),
            capture.asum.eq(act_sum.asum),
        ]
        if config.fp_activation:
            m.d.comb += capture.sum_invalid.eq(act_sum.invalid)
        if config.lanes == config.cols:
            for c, gdu in enumerate(gdus):
                m.d.comb += [
                    gdu.psum.eq(array.drain[c]),
                    gdu.info.eq(capture.info[c]),
                    gdu.scale.eq(capture.scale[c]),
                    gdu.zero.eq(capture.zero[c]),
                    gdu.read_addr.eq(reader.read_addr),
                    reader.read_data[c].eq(gdu.read_data),
                ]
        else:
            self._connect_lanes(m, array, capture, gdus, reader)

        # Results: read a bank row by row once the last column has written it.
        last = gdus[(config.cols - 1) % config.lanes]
        written = last.result_written
        if config.columns_per_lane > 1:
            written &= last.result_column == (config.cols - 1) // config.lanes
        m.d.comb += [reader.written.eq(written), reader.written_bank.eq(last.result_bank)]
        wiring.connect(m, reader.res, wiring.flipped(self.res))
        return m

    def _connect_lanes(self, m: Module, array: PEArray, capture: ParameterCapture, gdus: list, reader: ResultReader):
        """Fewer GDU lanes than columns: lane l walks its columns l, l + L, ... (the capture's
        ``info``/``column``), selects the walked row's drain register in the walked column, and
        takes it, registered, with the sideband and the parameters."""
        config = self._config
        for lane, gdu in enumerate(gdus):
            columns = range(lane, config.cols, config.lanes)
            info, index = capture.info[lane], capture.column[lane]
            psum = 0
            for position, c in enumerate(columns):
                m.d.comb += [array.drain_enable[c].eq(info.valid & (index == position)), array.drain_row[c].eq(info.row)]
                psum = psum | array.drain[c]
                m.d.comb += reader.read_data[c].eq(gdu.read_data[position])
            m.d.comb += [
                gdu.psum.eq(delay(m, psum.as_signed(), 1, f"lane_{lane}_psum")),
                gdu.info.eq(delay(m, info, 1, f"lane_{lane}_info", reset=True)),
                gdu.column.eq(delay(m, index, 1, f"lane_{lane}_column")),
                gdu.scale.eq(delay(m, capture.scale[lane], 1, f"lane_{lane}_scale")),
                gdu.zero.eq(delay(m, capture.zero[lane], 1, f"lane_{lane}_zero")),
                gdu.read_addr.eq(reader.read_addr),
            ]
