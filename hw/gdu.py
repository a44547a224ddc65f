"""Group-dequant unit (GDU): applies zero point, scale and token scale once per group, per column."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .config import MixPEConfig
from .fp_add import Float32Adder
from .fp_int_to_float import IntToFloat32
from .fp_mul import Float32Multiplier
from .fp_widen import WidenToFloat32
from .fp_common import CANONICAL_NAN
from .layouts import FP16_BITS, FP32_BITS, row_info_layout, zero_shape

__all__ = ["GroupDequant"]


class GroupDequant(wiring.Component):
    """Dequantizes one column's partial sums into FP32 output accumulators.

    For each drained partial sum P of row r and group j (one per cycle, rows in order):

    ========  =============================================================================
    stage 0   D = P - z * A                   exact integer, ``dsum_bits`` signed
    stage 1   f = fp32(D)                     round to nearest even
    stage 2   t = f * fp32(s)                 s is the column's FP16 scale of group j
    stage 3   acc = t (first group) or acc[r] + t
    stage 4   acc[r] := acc, or acc * s_x[r] on the tile's last group (the result)
    ========  =============================================================================

    With ``zero_mode="float_offset"`` (llama.cpp Q4_1) the ``zero`` port carries a raw FP16
    offset m instead of a zero point, and one stage is added (latency 6)::

        stage 0   P passed through (no integer correction)
        stage 1   fp32(P), fp32(A)
        stage 2   t = fp32(P) * fp32(d), o = fp32(A) * fp32(m)
        stage 2b  term = t + o
        stage 3/4 as above with term in place of t

    Floating-point activations (block floating point): the row sideband's ``row_param`` is the
    group's shared exponent instead of a token scale. The products of stage 2 take the exponent
    offset ``k = row_param + config.lsb_exponent_offset`` (the LSB weight of the aligned integers), i.e.
    ``t = round(fp32(D) * fp32(s) * 2**k)`` with one rounding; a row whose group was ``invalid``
    (Inf, NaN, or an element above the shared exponent) gets the canonical NaN as its term, so
    its result is NaN; stage 4 has no token scale and only writes back.

    FP32 arithmetic follows :mod:`golden.fp32` (IEEE binary32, RNE, subnormals flushed). The
    accumulators live in a 2 x R memory: one bank per tile in flight, read by the result stage
    through ``read_addr``/``read_data`` (address ``bank * R + row``).

    ``scale``/``zero`` must hold the group's parameters of a row band on the cycle
    the band's first row (``r % band_rows == 0``; row 0 with one row group) arrives; they are
    latched for the band's other rows. The write of a last-group row pulses ``result_written``.

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        Gives R, the sum widths, ``zero_mode``, ``row_groups`` and the activation format.

    Members
    -------
    psum : ``In(signed(psum_bits))``
        The column's drained partial sum P of the row on ``info``.
    info : ``In(row_info_layout(config))``
        Row sideband (:func:`~hw.layouts.row_info_layout`): valid, row, A, ``row_param``
        (FP32 token scale, or the shared exponent), first/last group, bank, parity.
    scale : ``In(16)``
        Raw FP16 group scale of the row's band (read on the band's first row).
    zero : ``In(zero_shape(config))``
        Integer zero point, or the raw FP16 offset with ``zero_mode="float_offset"``
        (:func:`~hw.layouts.zero_shape`; read on the band's first row).
    read_addr : ``In(range(2 * R))``
        Accumulator address ``bank * R + row`` to read.
    read_data : ``Out(32)``
        Raw FP32 word at ``read_addr`` (combinational read).
    result_written : ``Out(1)``, result_bank : ``Out(1)``
        A last-group row is written this cycle, into this bank.

    Latency
    -------
    ``config.gdu_latency`` cycles (5, or 6 with float offsets) from a partial sum at the input
    to its accumulator write being readable; ``result_written`` pulses one cycle earlier, on
    the write.
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        rows = config.rows
        super().__init__({
            "psum": In(signed(config.psum_bits)),
            "info": In(row_info_layout(config)),
            "scale": In(FP16_BITS),
            "zero": In(zero_shape(config)),
            "read_addr": In(range(2 * rows)),
            "read_data": Out(FP32_BITS),
            "result_written": Out(1),
            "result_bank": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from a partial sum on ``psum`` to its accumulator word being readable."""
        return self._config.gdu_latency

    def elaborate(self, platform):
        config = self._config
        rows = config.rows
        m = Module()
        info = self.info

        # Stage 0: integer zero-point correction, or (float offsets) P passed through; the
        # parameters are latched on the first row of each row band.
        scale_held = Signal(FP16_BITS)
        zero_held = Signal.like(self.zero)
        band_first_rows = [info.row == band * config.band_rows for band in range(config.row_groups)]
        is_band_first = band_first_rows[0]
        for is_first in band_first_rows[1:]:
            is_band_first = is_band_first | is_first
        scale_now = Mux(is_band_first, self.scale, scale_held)
        zero_now = Mux(is_band_first, self.zero, zero_held)
        with m.If(info.valid & is_band_first):
            m.d.sync += [scale_held.eq(self.scale), zero_held.eq(self.zero)]

        s1 = Signal(row_info_layout(config), name="s1_info")
        s1_dsum = Signal(signed(config.dsum_bits))
        s1_scale = Signal(FP16_BITS)
        dsum = self.psum if config.float_offset else self.psum - zero_now * info.asum
        m.d.sync += [s1.eq(info), s1_dsum.eq(dsum), s1_scale.eq(scale_now)]
        if config.float_offset:
            s1_offset = Signal(FP16_BITS)
            m.d.sync += s1_offset.eq(zero_now)

        # Stage 1: integer to FP32 (D, or P and A).
        to_float = m.submodules.to_float = IntToFloat32(config.dsum_bits)
        s2 = Signal.like(s1, name="s2_info")
        s2_value = Signal(FP32_BITS)
        s2_scale = Signal(FP16_BITS)
        m.d.comb += to_float.i.eq(s1_dsum)
        m.d.sync += [s2.eq(s1), s2_value.eq(to_float.o), s2_scale.eq(s1_scale)]
        if config.float_offset:
            asum_to_float = m.submodules.asum_to_float = IntToFloat32(config.asum_bits)
            s2_asum = Signal(FP32_BITS)
            s2_offset = Signal(FP16_BITS)
            m.d.comb += asum_to_float.i.eq(s1.asum)
            m.d.sync += [s2_asum.eq(asum_to_float.o), s2_offset.eq(s1_offset)]

        # Stage 2: multiply by the group scale (and the offset by A); floating-point activations
        # also scale by 2**k, and an invalid row's term becomes NaN.
        offset_bits = config.lsb_exponent_bits
        widen = m.submodules.widen = WidenToFloat32(5, 10)
        scale_mul = m.submodules.scale_mul = Float32Multiplier(offset_bits)
        s3 = Signal.like(s1, name="s3_info")
        s3_value = Signal(FP32_BITS)
        m.d.comb += [widen.i.eq(s2_scale), scale_mul.a.eq(s2_value), scale_mul.b.eq(widen.o)]
        if config.fp_activation:
            lsb_exponent = Signal(signed(offset_bits))
            m.d.comb += [lsb_exponent.eq(s2.row_param + config.lsb_exponent_offset),
                         scale_mul.exp_offset.eq(lsb_exponent)]
        if config.float_offset:
            widen_offset = m.submodules.widen_offset = WidenToFloat32(5, 10)
            offset_mul = m.submodules.offset_mul = Float32Multiplier(offset_bits)
            s2b = Signal.like(s1, name="s2b_info")
            s2b_scaled = Signal(FP32_BITS)
            s2b_offset = Signal(FP32_BITS)
            m.d.comb += [widen_offset.i.eq(s2_offset), offset_mul.a.eq(s2_asum), offset_mul.b.eq(widen_offset.o)]
            if config.fp_activation:
                m.d.comb += offset_mul.exp_offset.eq(lsb_exponent)
            m.d.sync += [s2b.eq(s2), s2b_scaled.eq(scale_mul.o), s2b_offset.eq(offset_mul.o)]

            # Stage 2b (float offsets only): the group's term fp32(P)*d + fp32(A)*m.
            term_add = m.submodules.term_add = Float32Adder()
            m.d.comb += [term_add.a.eq(s2b_scaled), term_add.b.eq(s2b_offset)]
            m.d.sync += [s3.eq(s2b), s3_value.eq(term_add.o)]
        else:
            m.d.sync += [s3.eq(s2), s3_value.eq(scale_mul.o)]
        term = Mux(s3.invalid, CANONICAL_NAN, s3_value) if config.fp_activation else s3_value

        # Stage 3: accumulate across groups.
        acc_memory = m.submodules.acc_memory = memory.Memory(shape=unsigned(FP32_BITS), depth=2 * rows, init=[])
        acc_read = acc_memory.read_port(domain="comb")
        result_read = acc_memory.read_port(domain="comb")
        acc_write = acc_memory.write_port()
        accumulate = m.submodules.accumulate = Float32Adder()
        s4 = Signal.like(s1, name="s4_info")
        s4_value = Signal(FP32_BITS)
        m.d.comb += [
            acc_read.addr.eq(s3.bank * rows + s3.row),
            accumulate.a.eq(acc_read.data),
            accumulate.b.eq(term),
        ]
        m.d.sync += [s4.eq(s3), s4_value.eq(Mux(s3.first, term, accumulate.o))]

        # Stage 4: token scale on the last group (INT8 activations), then write back.
        if config.fp_activation:
            result = s4_value
        else:
            token_mul = m.submodules.token_mul = Float32Multiplier()
            m.d.comb += [token_mul.a.eq(s4_value), token_mul.b.eq(s4.row_param)]
            result = Mux(s4.last, token_mul.o, s4_value)
        m.d.comb += [
            acc_write.addr.eq(s4.bank * rows + s4.row),
            acc_write.data.eq(result),
            acc_write.en.eq(s4.valid),
            self.result_written.eq(s4.valid & s4.last),
            self.result_bank.eq(s4.bank),
            result_read.addr.eq(self.read_addr),
            self.read_data.eq(result_read.data),
        ]
        return m
