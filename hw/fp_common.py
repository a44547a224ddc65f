"""Shared building blocks of the FP32 units (``fp_int_to_float``, ``fp_widen``, ``fp_mul``, ``fp_add``).

Plain functions that add combinational logic to a :class:`~amaranth.hdl.Module` and return the
signals they drive, :class:`Cuts`, the optional pipeline registers of a unit (:mod:`hw.fp_stages`
says which), and :func:`delay`, a register chain (also used by the GDU and the core's edge). The numerics contract they implement (see ``golden/fp32.py``):

* IEEE 754 binary32, round-to-nearest-even.
* Subnormal inputs count as zero of the same sign (DAZ): :class:`DecodedFloat` exposes
  ``is_zero_or_subnormal`` and a ``significand`` that is 0 for them.
* :func:`round_and_pack_float32` rounds to 24 significant bits with an unbounded exponent, then
  gives infinity if the rounded magnitude is >= 2^128 and a signed zero if it is < 2^-126
  (FTZ after rounding). Every NaN result is the canonical quiet NaN ``0x7FC00000``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed

from .config import ConfigError

__all__ = [
    "delay",
    "Cuts",
    "check_stages",
    "add_in_halves",
    "carry_save_layer",
    "FLOAT32_EXP_BITS",
    "FLOAT32_MAN_BITS",
    "FLOAT32_BIAS",
    "FLOAT32_MAX_BIASED_EXPONENT",
    "FLOAT32_SIGNIFICAND_BITS",
    "CANONICAL_NAN",
    "DecodedFloat",
    "decode_float",
    "decode_float32",
    "count_leading_zeros",
    "normalize",
    "pack_float32",
    "infinity_float32",
    "zero_float32",
    "round_and_pack_float32",
]

FLOAT32_EXP_BITS = 8
FLOAT32_MAN_BITS = 23
FLOAT32_BIAS = 127
FLOAT32_MAX_BIASED_EXPONENT = 255  # all ones: infinity / NaN
FLOAT32_SIGNIFICAND_BITS = FLOAT32_MAN_BITS + 1
CANONICAL_NAN = 0x7FC00000


def delay(m: Module, value, cycles: int, name: str, *, reset: bool = False):
    """``value`` (a value or a view) ``cycles`` cycles later through a chain of registers: reset
    to 0 with ``reset`` (flags whose stale value would do harm, such as a valid), else without
    reset (datapath)."""
    for stage in range(cycles):
        register = Signal(value.shape(), name=f"{name}_{stage}", reset_less=not reset)
        m.d.sync += register.eq(value)
        value = register
    return value


def check_stages(stages) -> int:
    """``stages`` of an FP32 unit, or :class:`~hw.config.ConfigError` unless a non-negative integer."""
    if not isinstance(stages, int) or isinstance(stages, bool) or stages < 0:
        raise ConfigError(f"stages={stages!r}: must be a non-negative integer (0: combinational)")
    return stages


class Cuts:
    """The pipeline registers of one unit: calling it at a cut point registers the values that
    cross the point when the point is among ``enabled`` (:func:`~hw.fp_stages.unit_cuts`), and
    passes them through unchanged otherwise. ``known`` lists every cut point the unit names."""

    def __init__(self, m: Module, enabled: tuple[str, ...], known: tuple[str, ...]):
        unknown = set(enabled) - set(known)
        if unknown:
            raise ValueError(f"cut points {sorted(unknown)} are not among {known}")
        self._m = m
        self._known = known
        self.enabled = frozenset(enabled)

    @property
    def latency(self) -> int:
        return len(self.enabled)

    def __call__(self, name: str, *values):
        """``values`` (one or more) after cut point ``name``: registered copies (no reset: pure
        datapath) or the values themselves; one value, or a tuple of them."""
        if name not in self._known:
            raise ValueError(f"cut={name!r}: the unit's cut points are {self._known}")
        if name not in self.enabled:
            return values[0] if len(values) == 1 else values
        registered = []
        for index, value in enumerate(values):
            if not hasattr(value, "shape"):  # a constant; views keep their layout
                value = Value.cast(value)
            register = Signal(value.shape(), name=f"{name}_{index}", reset_less=True)
            self._m.d.sync += register.eq(value)
            registered.append(register)
        return registered[0] if len(registered) == 1 else tuple(registered)


def add_in_halves(m: Module, cuts: Cuts, name: str, x: Value, y: Value, carry_in: Value, *side: Value):
    """``x + y + carry_in`` modulo 2^len(x) with the carry chain split in two halves at cut point
    ``name``, which the ``side`` values cross too; returns (the sum, the side values after the cut)."""
    width = len(x)
    split = width // 2
    low = Signal(split + 1, name=f"{name}_sum")
    m.d.comb += low.eq(x[:split] + y[:split] + carry_in)
    low_bits, carry, x_high, y_high, *side = cuts(name, low[:split], low[split], x[split:], y[split:], *side)
    total = Signal(width, name=f"{name}_total")
    m.d.comb += total.eq(Cat(low_bits, x_high + y_high + carry))
    return total, side


def carry_save_layer(m: Module, rows: list[Value], width: int, name: str) -> list[Value]:
    """One layer of full adders over ``width``-bit rows (modulo 2^width): every three rows become
    a sum row and a carry row; leftover rows pass. The rows' sum is unchanged."""
    reduced = []
    for index in range(0, len(rows) - 2, 3):
        x, y, z = rows[index:index + 3]
        total, carry = Signal(width, name=f"{name}_s{index}"), Signal(width, name=f"{name}_c{index}")
        m.d.comb += [total.eq(x ^ y ^ z), carry.eq(((x & y) | (x & z) | (y & z)) << 1)]
        reduced += [total, carry]
    return reduced + rows[len(rows) - len(rows) % 3:]


@dataclass(frozen=True)
class DecodedFloat:
    """Fields and classification of one IEEE-like operand; all members are driven signals."""

    sign: Signal
    exponent: Signal        # biased exponent field
    mantissa: Signal        # stored (fraction) field
    is_zero_or_subnormal: Signal  # exponent field 0; a zero under DAZ
    is_inf: Signal
    is_nan: Signal
    significand: Signal     # hidden bit and mantissa, man_bits + 1 wide; 0 for zeros and subnormals (DAZ)


def decode_float(m: Module, raw: Value, exp_bits: int, man_bits: int, name: str) -> DecodedFloat:
    """Split ``raw`` (1 + exp_bits + man_bits wide) into fields and classify it."""
    if len(raw) != 1 + exp_bits + man_bits:
        raise ValueError(f"{name}: expected {1 + exp_bits + man_bits} bits, got {len(raw)}")
    sign = Signal(name=f"{name}_sign")
    exponent = Signal(exp_bits, name=f"{name}_exponent")
    mantissa = Signal(man_bits, name=f"{name}_mantissa")
    exponent_is_zero = Signal(name=f"{name}_is_zero_or_subnormal")
    is_inf = Signal(name=f"{name}_is_inf")
    is_nan = Signal(name=f"{name}_is_nan")
    significand = Signal(man_bits + 1, name=f"{name}_significand")
    exponent_all_ones = exponent == (1 << exp_bits) - 1
    m.d.comb += [
        mantissa.eq(raw[:man_bits]),
        exponent.eq(raw[man_bits:man_bits + exp_bits]),
        sign.eq(raw[-1]),
        exponent_is_zero.eq(exponent == 0),
        is_inf.eq(exponent_all_ones & (mantissa == 0)),
        is_nan.eq(exponent_all_ones & (mantissa != 0)),
        significand.eq(Mux(exponent_is_zero, 0, Cat(mantissa, Const(1, 1)))),
    ]
    return DecodedFloat(sign=sign, exponent=exponent, mantissa=mantissa, is_zero_or_subnormal=exponent_is_zero,
                        is_inf=is_inf, is_nan=is_nan, significand=significand)


def decode_float32(m: Module, raw: Value, name: str) -> DecodedFloat:
    return decode_float(m, raw, FLOAT32_EXP_BITS, FLOAT32_MAN_BITS, name)


def _leading_zeros_tree(m: Module, value: Value, name: str) -> tuple[Value, Value]:
    """(all_zero, count) for a power-of-two width >= 2; ``count`` is log2(width) bits, valid unless all_zero."""
    width = len(value)
    if width == 2:
        return ~(value[0] | value[1]), ~value[1]
    half = width // 2
    high_zero, high_count = _leading_zeros_tree(m, value[half:], f"{name}h")
    low_zero, low_count = _leading_zeros_tree(m, value[:half], f"{name}l")
    all_zero = Signal(name=f"{name}_zero")
    count = Signal(len(high_count) + 1, name=f"{name}_count")
    m.d.comb += [
        all_zero.eq(high_zero & low_zero),
        count.eq(Mux(high_zero, Cat(low_count, Const(1, 1)), Cat(high_count, Const(0, 1)))),
    ]
    return all_zero, count


def count_leading_zeros(m: Module, value: Value, name: str) -> Signal:
    """Number of leading zero bits of ``value`` (``len(value)`` when it is zero), as a log-depth tree."""
    width = len(value)
    leading_zeros = Signal(range(width + 1), name=f"{name}_leading_zeros")
    if width == 1:
        m.d.comb += leading_zeros.eq(~value[0])
        return leading_zeros
    padded_width = 1 << (width - 1).bit_length()
    # Zeros appended below the LSB do not change the count of a nonzero value.
    padded = Cat(Const(0, padded_width - width), value)
    all_zero, count = _leading_zeros_tree(m, padded, f"{name}_lzc")
    m.d.comb += leading_zeros.eq(Mux(all_zero, width, count))
    return leading_zeros


def normalize(m: Module, value: Value, name: str) -> tuple[Signal, Signal]:
    """Shift ``value`` left until its MSB is set; returns (normalized, shift). A zero stays zero."""
    shift = count_leading_zeros(m, value, name)
    normalized = Signal(len(value), name=f"{name}_normalized")
    m.d.comb += normalized.eq(value << shift)
    return normalized, shift


def pack_float32(sign: Value, biased_exponent: Value, mantissa: Value) -> Value:
    return Cat(mantissa[:FLOAT32_MAN_BITS], biased_exponent[:FLOAT32_EXP_BITS], sign)


def infinity_float32(sign: Value) -> Value:
    return pack_float32(sign, Const(FLOAT32_MAX_BIASED_EXPONENT, FLOAT32_EXP_BITS), Const(0, FLOAT32_MAN_BITS))


def zero_float32(sign: Value) -> Value:
    return pack_float32(sign, Const(0, FLOAT32_EXP_BITS), Const(0, FLOAT32_MAN_BITS))


def round_and_pack_float32(m: Module, *, sign: Value, exponent: Value, significand: Value,
                           is_zero: Value, is_inf: Value, is_nan: Value, name: str,
                           cuts: Cuts | None = None) -> Signal:
    """Round a normalised significand to binary32 (RNE) and pack it, with overflow and FTZ.

    ``significand`` (any width) has its MSB set unless the result is a special value; its MSB
    weighs 2^(exponent - 127). ``exponent`` is a signed biased exponent wide enough to also hold
    ``exponent + 1``. Priority of the flags: NaN, infinity, zero, then the rounded value.
    ``cuts`` may register the rounding decision and both candidate mantissas (cut point
    ``rounded``) before the selection, the range checks and the packing.
    """
    if not exponent.shape().signed:
        raise TypeError(f"{name}: exponent must be signed")
    guard_position = FLOAT32_SIGNIFICAND_BITS + 1
    if len(significand) < guard_position:
        significand = Cat(Const(0, guard_position - len(significand)), significand)
    width = len(significand)
    kept = significand[width - FLOAT32_SIGNIFICAND_BITS:]
    guard = significand[width - guard_position]
    sticky = significand[:width - guard_position].any()

    # The incremented significand is prepared in parallel with the rounding decision. An
    # increment of all ones carries out: the significand becomes 2^24, whose low 23 bits are the
    # correct zero mantissa, and the exponent grows by one.
    round_up = Signal(name=f"{name}_round_up")
    all_ones = Signal(name=f"{name}_all_ones")
    incremented = Signal(FLOAT32_MAN_BITS, name=f"{name}_incremented")
    m.d.comb += [
        round_up.eq(guard & (sticky | kept[0])),
        all_ones.eq(kept.all()),
        incremented.eq(kept[:FLOAT32_MAN_BITS] + 1),
    ]
    kept_mantissa = kept[:FLOAT32_MAN_BITS]
    if cuts is not None:
        kept_mantissa, incremented, round_up, all_ones, exponent, sign, is_zero, is_inf, is_nan = cuts(
            "rounded", kept_mantissa, incremented, round_up, all_ones, exponent, sign, is_zero, is_inf, is_nan)

    carry = round_up & all_ones
    mantissa = Mux(round_up, incremented, kept_mantissa)
    exponent_field = Mux(carry, exponent + 1, exponent)[:FLOAT32_EXP_BITS]
    overflow = Mux(carry, exponent >= FLOAT32_MAX_BIASED_EXPONENT - 1, exponent >= FLOAT32_MAX_BIASED_EXPONENT)
    underflow = Mux(carry, exponent < 0, exponent < 1)

    packed = Signal(32, name=f"{name}_packed")
    with m.If(is_nan):
        m.d.comb += packed.eq(CANONICAL_NAN)
    with m.Elif(is_inf):
        m.d.comb += packed.eq(infinity_float32(sign))
    with m.Elif(is_zero):
        m.d.comb += packed.eq(zero_float32(sign))
    with m.Elif(overflow):
        m.d.comb += packed.eq(infinity_float32(sign))
    with m.Elif(underflow):
        m.d.comb += packed.eq(zero_float32(sign))
    with m.Else():
        m.d.comb += packed.eq(pack_float32(sign, exponent_field, mantissa))
    return packed
