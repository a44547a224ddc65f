"""Group-dequant unit (GDU): applies zero point, scale and token scale once per group, per lane of columns."""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .config import MixPEConfig
from .fp_add import Float32Adder
from .fp_int_to_float import IntToFloat32
from .fp_mul import Float32Multiplier
from .fp_widen import WidenToFloat32
from .fp_common import CANONICAL_NAN, Cuts, add_in_halves, carry_save_layer, delay
from .fp_stages import gdu_cuts
from .layouts import FP32_BITS, row_index_shape, row_info_layout, scale_shape, zero_shape
from .scale_decode import scale_widener

__all__ = ["GroupDequant", "gdu_row_layout"]

#: -0.0: ``-0 + t == t`` for every term t the scale multiplier or term adder can produce (never a
#: subnormal: both flush), so a tile's first group adds its term to -0 instead of the accumulator.
NEGATIVE_ZERO = 0x80000000


def gdu_row_layout(config: MixPEConfig) -> data.StructLayout:
    """What travels with a row through the GDU after ``dsum``: its place, and the row parameter still
    needed (INT8: the token scale, for ``write``; floating point: the LSB exponent, for ``scale``)."""
    fields = {"row": row_index_shape(config), "first": 1, "last": 1, "bank": 1}
    if config.columns_per_lane > 1:
        fields["column"] = range(config.columns_per_lane)
    if config.fp_activation:
        fields.update(lsb_exponent=signed(config.lsb_exponent_bits), invalid=1)
    else:
        fields["token_scale"] = FP32_BITS
    if config.kquant:
        fields.update(sub_first=1, sub_last=1)
    return data.StructLayout(fields)


class GroupDequant(wiring.Component):
    """Dequantizes the partial sums of a lane's columns into FP32 output accumulators.

    For each drained partial sum P of row r and group j (one per cycle, rows in order), stage by
    stage (:attr:`~hw.config.MixPEConfig.gdu_stage_cycles` gives their cycles):

    ============  =========================================================================
    dsum          D = P - z * A                   exact integer, ``dsum_bits`` signed
    to_float      f = fp32(D)                     round to nearest even; s widened to FP32
    scale         t = f * fp32(s)                 s is the column's FP16 scale of group j
    accumulate    acc = t (first group) or acc[r] + t
    write         acc[r] := acc, or acc * s_x[r] on the tile's last group (the result)
    ============  =========================================================================

    With ``zero_mode="float_offset"`` (llama.cpp Q4_1) the ``zero`` port carries a raw FP16
    offset m instead of a zero point: ``dsum`` passes P through, ``to_float`` converts P and A,
    ``scale`` computes ``t = fp32(P) * fp32(d)`` and ``o = fp32(A) * fp32(m)``, and a ``term``
    stage adds them (``t + o``) before ``accumulate``.

    With ``scale_mode="kquant"`` (llama.cpp K-quants) ``scale`` carries the super-block's FP16
    ``d`` and the group's integer sub-scale ``sc``, and with float offsets ``zero`` the
    super-block's FP16 offset scale ``o`` and the group's min ``m``. Two integer stages follow
    ``dsum``: ``sub_scale`` forms ``sc * D`` (and ``m * A``) in carry-save form (shift & add of
    the sub-scale's bits, reduced to two rows), ``sub_accumulate`` adds them to the
    row's integer super-block sums S (and M) in a 1 x R x ``columns_per_lane`` memory (restarting
    on a super-block's first group, OR-ing the ``invalid`` flags of floating-point activations);
    only a super-block's last group goes on, with S and M in place of D and A and d and o as the
    scale and offset, to ``to_float`` and the FP32 stages. The sums are read in ``sub_scale`` and
    written from ``sub_accumulate``'s output registers the cycle after (at most 4 cycles after the
    read); a row's next group reads them ``group_interval`` (at least 8) cycles after its previous
    read, so the read-modify-write needs no forwarding.

    Floating-point activations (block floating point): the row sideband's ``row_param`` is the
    group's shared exponent instead of a token scale. The products of ``scale`` take the exponent
    offset ``k = row_param + config.lsb_exponent_offset`` (the LSB weight of the aligned integers),
    i.e. ``t = round(fp32(D) * fp32(s) * 2**k)`` with one rounding; a row whose group was
    ``invalid`` (Inf, NaN, or an element above the shared exponent) gets the canonical NaN as its
    term, so its result is NaN; ``write`` has no token scale and only writes back.

    FP32 arithmetic follows :mod:`golden.fp32` (IEEE binary32, RNE, subnormals flushed); the FP32
    units are pipelined ``config.gdu_unit_stages`` deep (:mod:`hw.fp_stages`). One GDU is a *lane*
    serving ``config.columns_per_lane`` columns (one with a GDU per column), whose rows arrive
    with their ``column`` index. The accumulators live in a 2 x R memory whose words hold a row
    of every column of the lane (2 x R x ``columns_per_lane`` FP32 values): one bank per tile in
    flight, read by the result stage through ``read_addr``/``read_data`` (address
    ``bank * R + row``). A row's next group reads its
    accumulator ``group_interval`` or more cycles after the previous read; when the sum of the
    previous read is still in the write stage (the token multiplier) then, it is forwarded to the
    read (``accumulate_cycles`` is below ``group_interval``, so the sum has reached the write stage).

    ``scale``/``zero`` must hold the group's parameters of a row band on the cycle
    the band's first row (``r % band_rows == 0``; row 0 with one row group) arrives; they are
    latched for the band's other rows. The write of a last-group row pulses ``result_written``.

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        Gives R, the sum widths, ``zero_mode``, ``row_groups``, the activation format and
        ``gdu_unit_stages``.

    Members
    -------
    psum : ``In(signed(psum_bits))``
        The column's drained partial sum P of the row on ``info``.
    info : ``In(row_info_layout(config))``
        Row sideband (:func:`~hw.layouts.row_info_layout`): valid, row, A, ``row_param``
        (FP32 token scale, or the shared exponent), first/last group, bank, parity.
    scale : ``In(scale_shape(config))``
        Raw FP16 group scale of the row's band, or K-quants' d and sub-scale
        (:func:`~hw.layouts.scale_shape`; read on the band's first row).
    zero : ``In(zero_shape(config))``
        Integer zero point, or the raw FP16 offset with ``zero_mode="float_offset"``
        (:func:`~hw.layouts.zero_shape`; read on the band's first row).
    column : ``In(range(columns_per_lane))``
        Only when the lane serves several columns: the index, among the lane's columns, of the
        column whose row is on ``info``.
    read_addr : ``In(range(2 * R))``
        Accumulator address ``bank * R + row`` to read.
    read_data : ``Out(32)``, or ``Out(ArrayLayout(32, columns_per_lane))``
        Raw FP32 word(s) at ``read_addr`` (combinational read), one per column of the lane.
    result_written : ``Out(1)``, result_bank : ``Out(1)``, result_column : ``Out(range(columns_per_lane))``
        A last-group row is written this cycle, into this bank (and column of the lane).

    Latency
    -------
    ``config.gdu_latency`` cycles (5, or 6 with float offsets, with combinational FP32 units)
    from a partial sum at the input to its accumulator write being readable; ``result_written``
    pulses one cycle earlier, on the write. One partial sum per cycle.
    """

    def __init__(self, config: MixPEConfig):
        self._config = config
        rows, columns = config.rows, config.columns_per_lane
        members = {
            "psum": In(signed(config.psum_bits)),
            "info": In(row_info_layout(config)),
            "scale": In(scale_shape(config)),
            "zero": In(zero_shape(config)),
            "read_addr": In(range(2 * rows)),
            "read_data": Out(FP32_BITS if columns == 1 else data.ArrayLayout(unsigned(FP32_BITS), columns)),
            "result_written": Out(1),
            "result_bank": Out(1),
        }
        if columns > 1:
            members.update({"column": In(range(columns)), "result_column": Out(range(columns))})
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Cycles from a partial sum on ``psum`` to its accumulator word being readable."""
        return self._config.gdu_latency

    def elaborate(self, platform):
        config = self._config
        rows, stages = config.rows, config.gdu_unit_stages
        cycles = config.gdu_stage_cycles
        m = Module()
        info = self.info

        # dsum: integer zero-point correction, or (float offsets) P passed through; the
        # parameters are latched on the first row of each row band.
        scale_held = Signal.like(self.scale)
        zero_held = Signal.like(self.zero)
        band_first_rows = [info.row == band * config.band_rows for band in range(config.row_groups)]
        is_band_first = band_first_rows[0]
        for is_first in band_first_rows[1:]:
            is_band_first = is_band_first | is_first
        scale_now = Mux(is_band_first, self.scale, scale_held)
        zero_now = Mux(is_band_first, self.zero, zero_held)
        with m.If(info.valid & is_band_first):
            m.d.sync += [scale_held.eq(self.scale), zero_held.eq(self.zero)]

        row_now = Signal(gdu_row_layout(config))
        m.d.comb += [row_now.row.eq(info.row), row_now.first.eq(info.first), row_now.last.eq(info.last),
                     row_now.bank.eq(info.bank)]
        if config.columns_per_lane > 1:
            m.d.comb += row_now.column.eq(self.column)
        if config.fp_activation:
            m.d.comb += [row_now.lsb_exponent.eq(info.row_param + config.lsb_exponent_offset),
                         row_now.invalid.eq(info.invalid)]
        else:
            m.d.comb += row_now.token_scale.eq(info.row_param)
        if config.kquant:
            m.d.comb += [row_now.sub_first.eq(info.sub_first), row_now.sub_last.eq(info.sub_last)]
        valid = delay(m, info.valid, cycles["dsum"], "dsum_valid", reset=True)
        if config.float_offset:
            row, dsum, scale, asum, offset = (delay(m, value, 1, f"dsum_{name}") for name, value in (
                ("row", row_now), ("value", self.psum), ("scale", scale_now), ("asum", info.asum), ("offset", zero_now)))
        else:
            cuts = Cuts(m, gdu_cuts(dsum_bits=config.dsum_bits, float_offset=False)[:stages],
                        gdu_cuts(dsum_bits=64, float_offset=False))
            x, y, row, scale = cuts("dsum_rows", *self._dsum_rows(m, zero_now), row_now, scale_now)
            dsum, (row, scale) = add_in_halves(m, cuts, "dsum_low", x, y, 0, row, scale)
            row, dsum, scale = (delay(m, value, 1, f"dsum_{name}") for name, value in (
                ("row", row), ("value", dsum.as_signed()), ("scale", scale)))
        if config.kquant:
            valid, row, dsum, scale, asum, offset = self._superblock_sums(
                m, valid, row, dsum, scale, *((asum, offset) if config.float_offset else (None, None)))

        # to_float: D (or P and A) to FP32, the FP16 parameters widened beside the last step.
        def to_float(value, width, name):
            converter = m.submodules[name] = IntToFloat32(width, stages=stages)
            m.d.comb += converter.i.eq(value)
            return delay(m, converter.o, cycles["to_float"] - converter.latency, f"{name}_out")

        def widened(raw, name, unit=None):
            widen = m.submodules[name] = unit or WidenToFloat32(5, 10)
            m.d.comb += widen.i.eq(delay(m, raw, cycles["to_float"] - 1, f"{name}_in"))
            return delay(m, widen.o, 1, f"{name}_out")

        value = to_float(dsum, config.sub_sum_bits, "to_float")
        scale = widened(scale, "widen", scale_widener(config))    # FP16, E8M0 or E4M3 (hw.scale_decode)
        if config.float_offset:
            asum = to_float(asum, config.min_sum_bits, "asum_to_float")
            offset = widened(offset, "widen_offset")
        valid = delay(m, valid, cycles["to_float"], "to_float_valid", reset=True)
        row = delay(m, row, cycles["to_float"], "to_float_row")

        # scale: multiply by the group scale (and A by the offset); floating-point activations
        # also scale by 2**k.
        def scaled(a, b, name):
            multiplier = m.submodules[name] = Float32Multiplier(config.lsb_exponent_bits, stages=stages)
            m.d.comb += [multiplier.a.eq(a), multiplier.b.eq(b)]
            if config.fp_activation:
                m.d.comb += multiplier.exp_offset.eq(row.lsb_exponent)
            return delay(m, multiplier.o, 1, f"{name}_out")

        term = scaled(value, scale, "scale_mul")
        if config.float_offset:
            offset_term = scaled(asum, offset, "offset_mul")
        valid = delay(m, valid, cycles["scale"], "scale_valid", reset=True)
        row = delay(m, row, cycles["scale"], "scale_row")

        # term (float offsets only): fp32(P)*d + fp32(A)*m.
        if config.float_offset:
            term_add = m.submodules.term_add = Float32Adder(stages=stages)
            m.d.comb += [term_add.a.eq(term), term_add.b.eq(offset_term)]
            term = delay(m, term_add.o, 1, "term_out")
            valid = delay(m, valid, cycles["term"], "term_valid", reset=True)
            row = delay(m, row, cycles["term"], "term_row")
        if config.fp_activation:
            term = Mux(row.invalid, CANONICAL_NAN, term)

        # accumulate: acc[bank, row] (or the sum still in the write stage, or -0 on the tile's
        # first group) + term.
        # One memory row holds a row's words of every column of the lane.
        columns = config.columns_per_lane
        word_shape = unsigned(FP32_BITS) if columns == 1 else data.ArrayLayout(unsigned(FP32_BITS), columns)
        acc_memory = m.submodules.acc_memory = memory.Memory(shape=word_shape, depth=2 * rows, init=[])
        acc_read = acc_memory.read_port(domain="comb")
        result_read = acc_memory.read_port(domain="comb")
        acc_write = acc_memory.write_port(granularity=None if columns == 1 else 1)
        accumulate = m.submodules.accumulate = Float32Adder(stages=stages)
        read_cycles = cycles["accumulate"] - 1 - accumulate.latency
        address = Signal.like(acc_read.addr)
        m.d.comb += [address.eq(row.bank * rows + row.row), acc_read.addr.eq(address)]
        # The write stage: the sum (s4) moves through the token multiplier for `write_cycles` - 1
        # cycles and is written at the end of the last.
        write_cycles = cycles["write"]
        sum_valid = delay(m, valid, cycles["accumulate"], "accumulate_valid", reset=True)
        sum_row = delay(m, row, cycles["accumulate"], "accumulate_row")
        sum_value = Signal(FP32_BITS)
        in_flight = [(sum_valid, sum_row, sum_value)]
        for position in range(1, write_cycles):
            flight_valid, flight_row, flight_sum = in_flight[-1]
            in_flight.append((delay(m, flight_valid, 1, f"write_valid{position}", reset=True),
                              delay(m, flight_row, 1, f"write_row{position}"), delay(m, flight_sum, 1, f"write_sum{position}")))
        accumulator = acc_read.data if columns == 1 else acc_read.data[row.column]
        for flight_valid, flight_row, flight_sum in in_flight[self._forwarded_from():]:
            match = flight_valid & ~flight_row.last & (flight_row.bank == row.bank) & (flight_row.row == row.row)
            if columns > 1:
                match &= flight_row.column == row.column
            accumulator = Mux(match, flight_sum, accumulator)
        operand = delay(m, Mux(row.first, NEGATIVE_ZERO, accumulator), read_cycles, "accumulator")
        addend = delay(m, term, read_cycles, "addend")
        m.d.comb += [accumulate.a.eq(operand), accumulate.b.eq(addend)]
        m.d.sync += sum_value.eq(accumulate.o)

        # write: token scale on the last group (INT8 activations), then write back.
        write_valid, write_row, write_sum = in_flight[-1]
        if config.fp_activation:
            result = write_sum
        else:
            token_mul = m.submodules.token_mul = Float32Multiplier(stages=stages)
            m.d.comb += [token_mul.a.eq(sum_value), token_mul.b.eq(sum_row.token_scale)]
            result = Mux(write_row.last, token_mul.o, write_sum)
        write_data, write_enable = result, write_valid
        if columns > 1:  # the word of the row's column
            write_data, write_enable = Cat(*[result] * columns), write_valid << write_row.column
            m.d.comb += self.result_column.eq(write_row.column)
        m.d.comb += [
            acc_write.addr.eq(write_row.bank * rows + write_row.row),
            acc_write.data.eq(write_data),
            acc_write.en.eq(write_enable),
            self.result_written.eq(write_valid & write_row.last),
            self.result_bank.eq(write_row.bank),
            result_read.addr.eq(self.read_addr),
            self.read_data.eq(result_read.data),
        ]
        return m

    def _superblock_sums(self, m: Module, valid, row, dsum, scale, asum, offset) -> tuple:
        """K-quants: the ``sub_scale`` and ``sub_accumulate`` stages (see the class docstring).
        Takes the ``dsum`` stage's outputs (``scale``: d and sc; ``offset``: o and m, or None);
        returns (valid, row, S, d, M, o) of super-blocks' last groups, M and o None without offsets."""
        config = self._config
        offsets = config.float_offset
        row_shape = row.shape()
        scale = data.View(scale_shape(config), scale)           # Mux and delay drop the layouts
        offset = data.View(zero_shape(config), offset) if offsets else None
        # sub_scale: the products, exact in their sums' widths (|sc * D| <= the bound of S), and
        # the read of the row's sums (word column * R + row), registered beside them.
        fields = {"s": signed(config.sub_sum_bits)}
        if offsets:
            fields["m"] = signed(config.min_sum_bits)
        if config.fp_activation:
            fields["invalid"] = 1
        sums_memory = m.submodules.sub_sums = memory.Memory(
            shape=data.StructLayout(fields), depth=config.rows * config.columns_per_lane, init=[])
        read, write = sums_memory.read_port(domain="comb"), sums_memory.write_port()

        def address(of_row):
            return of_row.row if config.columns_per_lane == 1 else of_row.column * config.rows + of_row.row

        m.d.comb += read.addr.eq(address(row))
        held = delay(m, read.data, 1, "sub_scale_held")
        product = [delay(m, value, 1, f"sub_scale_product{index}")
                   for index, value in enumerate(self._product_rows(m, scale.sub_scale, dsum, config.sub_sum_bits, "sc"))]
        min_product = [delay(m, value, 1, f"sub_min_product{index}")
                       for index, value in enumerate(self._product_rows(m, offset.min, asum, config.min_sum_bits, "m"))] \
            if offsets else None
        d = delay(m, scale.d, 1, "sub_scale_d")
        o = delay(m, offset.offset, 1, "sub_scale_o") if offsets else None
        row = delay(m, row, 1, "sub_scale_row")
        valid = delay(m, valid, 1, "sub_scale_valid", reset=True)

        # sub_accumulate: the row's sums plus the products (carry chains split in halves when the
        # stage has two cycles), registered and written back from the registers the cycle after.
        cuts = Cuts(m, ("sums_low",) if config.gdu_stage_cycles["sub_accumulate"] > 1 else (), ("sums_low",))
        merged = Signal(row_shape)
        m.d.comb += merged.eq(row)
        if config.fp_activation:
            m.d.comb += merged.invalid.eq(row.invalid | (~row.sub_first & held.invalid))

        def added(held_sum, addend_rows, *side):
            """held (or 0) + the product's two carry-save rows: one full-adder layer, then the add."""
            width = len(held_sum)
            first = Signal(width)
            m.d.comb += first.eq(Mux(row.sub_first, 0, held_sum))
            x, y = carry_save_layer(m, [first, *addend_rows], width, "sums_rows")
            total, side = add_in_halves(m, cuts, "sums_low", x, y, 0, *side)
            return total.as_signed(), side

        s_sum, (merged, d, o_or_zero) = added(held.s, product, merged, d, o if offsets else 0)
        m_sum = added(held.m, min_product)[0] if offsets else None
        valid = delay(m, valid, cuts.latency, "sub_sums_valid", reset=True)
        out_valid = delay(m, valid, 1, "sub_accumulate_all_valid", reset=True)
        out_row = delay(m, merged, 1, "sub_accumulate_row")
        out_s = delay(m, s_sum, 1, "sub_accumulate_s")
        out_m = delay(m, m_sum, 1, "sub_accumulate_m") if offsets else None
        m.d.comb += [write.addr.eq(address(out_row)), write.data.s.eq(out_s), write.en.eq(out_valid)]
        if offsets:
            m.d.comb += write.data.m.eq(out_m)
        if config.fp_activation:
            m.d.comb += write.data.invalid.eq(out_row.invalid)
        return (out_valid & out_row.sub_last, out_row, out_s, delay(m, d, 1, "sub_accumulate_d"), out_m,
                delay(m, o_or_zero, 1, "sub_accumulate_o") if offsets else None)

    @staticmethod
    def _product_rows(m: Module, factor, value, width: int, name: str) -> tuple:
        """``factor * value`` modulo 2**width as two carry-save rows: ``value << i`` for every set
        bit i of the (unsigned, or two's complement) factor, the sign bit's row negated
        (-x = ~x + 1), reduced by full adders; the product itself fits ``width`` bits signed."""
        bits = len(factor)
        rows = [Mux(factor[i], value << i, 0) for i in range(bits - 1)]
        if factor.shape().signed:
            rows += [Mux(factor[bits - 1], ~(value << (bits - 1)), 0), factor[bits - 1]]
        else:
            rows.append(Mux(factor[bits - 1], value << (bits - 1), 0))
        return _two_rows(m, rows, width, f"{name}_product")

    def _dsum_rows(self, m: Module, zero) -> tuple:
        """D = P - z * A as two ``dsum_bits`` rows in carry-save form: P, ~(A << i) for every set
        bit i of z, and the number of those bits (-x = ~x + 1), reduced by full adders. Codes with
        their own sign (``config.signed_codes``) have z = 0: D = P, the zero port unused."""
        config = self._config
        width = config.dsum_bits
        bits = range(0 if config.signed_codes else config.weight_bits)
        values = [self.psum, *(Mux(zero[bit], ~(self.info.asum << bit), 0) for bit in bits), sum(zero[bit] for bit in bits)]
        return _two_rows(m, values, width, "dsum")

    def _forwarded_from(self) -> int:
        """The first position of the write stage a row's next read can find its sum in: a sum
        enters the write stage ``accumulate_cycles`` after its read, and the next read of the row
        comes ``group_interval`` or more cycles after that read."""
        config = self._config
        # Internal consistency: the cut points of hw.fp_stages keep accumulate_cycles below g.
        assert config.accumulate_cycles <= config.group_interval, "a row's sum would be read before it is summed"
        return config.group_interval - config.accumulate_cycles


def _two_rows(m: Module, values: list, width: int, name: str) -> tuple:
    """``values`` as ``width``-bit rows (``<name>_row<i>``) reduced by layers of full adders
    (``<name>_layer<l>``) to two rows of the same sum modulo 2**width."""
    rows = []
    for index, value in enumerate(values):
        row = Signal(width, name=f"{name}_row{index}")
        m.d.comb += row.eq(value)
        rows.append(row)
    layer = 0
    while len(rows) > 2:
        rows = carry_save_layer(m, rows, width, f"{name}_layer{layer}")
        layer += 1
    return tuple(rows)
