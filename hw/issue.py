"""Issue scheduler of the MixPE core: on which cycles a K step enters the array."""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import MixPEConfig

__all__ = ["IssueScheduler"]


class IssueScheduler(wiring.Component):
    """Applies the schedule rules of :mod:`hw.mpgemm` (those that :mod:`golden.cycles` replays).

    A K step issues when it is offered (``step_valid``) and the rules allow it:

    * a group's first step needs its parameters (``grp_valid``) and issues at least
      ``group_interval`` cycles after the previous group's first step;
    * when ``group_interval`` exceeds g, a group's last step also issues at least
      ``group_interval`` cycles after the previous group's last step (binds only under input
      stalls inside a group);
    * a tile's first step issues only when its output bank (tiles alternate between two) is free:
      a bank is taken when its tile's first step issues and freed by ``bank_released``.

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        Gives g (``group_size``) and ``group_interval``.

    Members
    -------
    step_valid : ``In(1)``
        A K step (activations and weight codes) is offered.
    grp_valid : ``In(1)``
        A group's parameters are offered; needed with the group's first step.
    grp_last : ``In(1)``
        The offered group is its tile's last (sampled with the group's first step).
    bank_released : ``In(2)``
        One bit per output bank: the bank's last result row was read out this cycle; the bank
        is free from the next cycle on.
    issue : ``Out(1)``
        A K step issues this cycle.
    group_start : ``Out(1)``
        The next step to issue is a group's first (its ``grp`` beat is consumed with it).
    group_end : ``Out(1)``
        The step issuing this cycle is its group's last.
    tile_start : ``Out(1)``
        The group at ``group_start`` is its tile's first.
    bank : ``Out(1)``
        Output bank of the tile that the next step to issue belongs to.

    Latency
    -------
    0 cycles: every output is combinational in the inputs and the scheduler's state.
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        super().__init__({
            "step_valid": In(1),
            "grp_valid": In(1),
            "grp_last": In(1),
            "bank_released": In(2),
            "issue": Out(1),
            "group_start": Out(1),
            "group_end": Out(1),
            "tile_start": Out(1),
            "bank": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from a step offered (and allowed) to it issuing."""
        return 0

    def elaborate(self, platform):
        config = self._config
        group_size, interval = config.group_size, config.group_interval
        m = Module()

        step_in_group = Signal(range(group_size))
        # Registered rather than decoded from the step counter: it selects the shared exponents
        # of the floating-point aligner, on the core's edge path.
        at_group_start = Signal(init=1)
        since_group_start = Signal(range(interval + 1), init=interval)
        next_is_tile_first = Signal(init=1)
        next_tile_bank = Signal()
        tile_bank = Signal()
        bank_busy = Signal(2)

        group_start_allowed = ((since_group_start >= interval) & self.grp_valid &
                               ~(next_is_tile_first & bank_busy.bit_select(next_tile_bank, 1)))
        step_allowed = ~at_group_start | group_start_allowed
        if interval > group_size:
            since_group_end = Signal(range(interval + 1), init=interval)
            step_allowed &= (step_in_group != group_size - 1) | (since_group_end >= interval)
            with m.If(self.group_end):
                m.d.sync += since_group_end.eq(1)
            with m.Elif(since_group_end < interval):
                m.d.sync += since_group_end.eq(since_group_end + 1)
        m.d.comb += [
            self.issue.eq(self.step_valid & step_allowed),
            self.group_end.eq(self.issue & (step_in_group == group_size - 1)),
            self.group_start.eq(at_group_start),
            self.tile_start.eq(next_is_tile_first),
            self.bank.eq(Mux(next_is_tile_first, next_tile_bank, tile_bank)),
        ]
        with m.If(self.issue):
            m.d.sync += [step_in_group.eq(Mux(step_in_group == group_size - 1, 0, step_in_group + 1)),
                         at_group_start.eq(step_in_group == group_size - 1)]

        with m.If(self.issue & at_group_start):
            m.d.sync += [next_is_tile_first.eq(self.grp_last), since_group_start.eq(1)]
            with m.If(next_is_tile_first):
                m.d.sync += [
                    tile_bank.eq(next_tile_bank),
                    next_tile_bank.eq(~next_tile_bank),
                    bank_busy.bit_select(next_tile_bank, 1).eq(1),
                ]
        with m.Elif(since_group_start < interval):
            m.d.sync += since_group_start.eq(since_group_start + 1)
        for bank in range(2):
            with m.If(self.bank_released[bank]):
                m.d.sync += bank_busy[bank].eq(0)
        return m
