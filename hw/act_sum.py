"""Activation group-sum unit: A = sum of a token's activations over a quantization group."""

from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import MixPEConfig
from .layouts import pe_activation_layout, row_index_shape

__all__ = ["ActivationSum"]


class ActivationSum(wiring.Component):
    """Sums each row's activations over the group, once per token and shared by every column.

    It watches the unskewed K steps entering the array (``x``, ``valid``, ``group_last``). When a
    group's last step is presented at cycle t, the R sums are captured and then emitted one row
    per cycle: row r's sum is on ``asum`` with ``row == r`` and ``row_valid`` at ``t + 2 + r``,
    the same cycle PE(r, 0) drains its partial sum. Consecutive group ends must be at least R
    cycles apart.

    With floating-point activations it also ORs each row's ``x_invalid`` flags over the group and
    emits the result as ``invalid`` beside the row's sum.

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        Gives R, the activation and sum widths, and whether activations are floating point.

    Members
    -------
    x : ``In(ArrayLayout(signed(pe_act_bits), R))``
        The K step entering the array (unskewed).
    valid, group_last : ``In(1)``
        ``x`` is a K step; it is its group's last.
    x_invalid : ``In(R)``
        Floating-point activations only: per row, the element is invalid
        (:class:`~hw.fp_align.ActivationAligner`).
    row_valid : ``Out(1)``, row : ``Out(row_index_shape(config))``, asum : ``Out(signed(asum_bits))``
        One row's group sum per cycle, rows in order.
    invalid : ``Out(1)``
        Floating-point activations only: the row's group held an invalid element.

    Latency
    -------
    ``config.drain_offset`` (2) cycles from a group's last step to row 0's sum; row r adds r.
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        members = {
            "x": In(pe_activation_layout(config)),
            "valid": In(1),
            "group_last": In(1),
            "row_valid": Out(1),
            "row": Out(row_index_shape(config)),
            "asum": Out(signed(config.asum_bits)),
        }
        if config.fp_activation:
            members.update({"x_invalid": In(config.rows), "invalid": Out(1)})
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Cycles from a group's last step to row 0's sum on the output; row r adds r."""
        return self._config.drain_offset

    def elaborate(self, platform):
        config = self._config
        rows = config.rows
        m = Module()

        running = [Signal(signed(config.asum_bits), name=f"running_{r}") for r in range(rows)]
        captured = [Signal(signed(config.asum_bits), name=f"captured_{r}") for r in range(rows)]
        if config.fp_activation:
            running_invalid = [Signal(name=f"running_invalid_{r}") for r in range(rows)]
            captured_invalid = [Signal(name=f"captured_invalid_{r}") for r in range(rows)]
        emitting = Signal()
        next_row = Signal(range(rows + 1))

        # Emit captured[0], captured[1], ... on the cycles after a capture, shifting the captured
        # sums down by one row each cycle. A new capture may coincide with the last emission, so
        # the capture is written after (and overrides) the shift.
        m.d.sync += self.row_valid.eq(0)
        with m.If(emitting):
            m.d.sync += [
                self.row_valid.eq(1),
                self.row.eq(next_row),
                self.asum.eq(captured[0]),
                next_row.eq(next_row + 1),
            ]
            for r in range(rows - 1):
                m.d.sync += captured[r].eq(captured[r + 1])
            if config.fp_activation:
                m.d.sync += self.invalid.eq(captured_invalid[0])
                for r in range(rows - 1):
                    m.d.sync += captured_invalid[r].eq(captured_invalid[r + 1])
            with m.If(next_row == rows - 1):
                m.d.sync += emitting.eq(0)

        with m.If(self.valid):
            with m.If(self.group_last):
                m.d.sync += [emitting.eq(1), next_row.eq(0)]
                for r in range(rows):
                    m.d.sync += [captured[r].eq(running[r] + self.x[r]), running[r].eq(0)]
                    if config.fp_activation:
                        m.d.sync += [captured_invalid[r].eq(running_invalid[r] | self.x_invalid[r]),
                                     running_invalid[r].eq(0)]
            with m.Else():
                for r in range(rows):
                    m.d.sync += running[r].eq(running[r] + self.x[r])
                    if config.fp_activation:
                        m.d.sync += running_invalid[r].eq(running_invalid[r] | self.x_invalid[r])
        return m
