"""Pipeline plans of the FP32 units and of the group-dequant unit (GDU) built from them.

Amaranth-free, so that :mod:`hw.config` derives latencies without elaborating. Each unit lists its
*cut points* (named places in its datapath where a register can split the combinational logic) in
the order a growing depth enables them. A unit built with ``stages=n`` registers its first
``min(n, len(cuts))`` cut points and has that latency; ``stages=0`` is the combinational unit.

The orders were chosen from the stage delays that ``make timing``'s flow (Yosys, ABC with OSU018,
OpenSTA) measures with every cut point registered: each next cut splits the longest remaining
stage. With all of them every stage of the multiplier and the adder is at most 3.95 ns, about the
MixPE PE's 3.91 ns (``docs/architecture.md``, "Pipelined dequantization"). Carry chains stay
within about 24 bits per stage because ABC's area recovery maps adders to ripple-carry chains
whatever their RTL structure.
"""

from __future__ import annotations

__all__ = ["MULTIPLIER_CUTS", "ADDER_CUTS", "SINGLE_STAGE_CARRY_BITS", "unit_cuts", "unit_latency",
           "int_to_float_cuts", "gdu_cuts", "gdu_plan"]

#: Multiplier cut points: ``product`` (top product bits, before the rounding), ``low_sum`` (the
#: carry out of the lower half of the carry-propagate addition), ``partial_rows`` (halfway through
#: the carry-save tree), ``rounded`` (the rounding decision, before the selection and packing).
MULTIPLIER_CUTS = ("product", "low_sum", "partial_rows", "rounded")
#: Adder cut points: ``sum`` (the significand sum), ``aligned`` (the smaller operand shifted),
#: ``normalized`` (after the leading-zero shift), ``ordered`` (operands ordered by magnitude),
#: ``rounded`` (the rounding decision).
ADDER_CUTS = ("sum", "aligned", "normalized", "ordered", "rounded")
#: A carry chain of up to this many bits fits one stage; longer ones are split in two halves.
SINGLE_STAGE_CARRY_BITS = 24
#: Above this width the int-to-float rounding gets its own cut point too.
INT_TO_FLOAT_ROUNDED_BITS = 32


def int_to_float_cuts(width: int) -> tuple[str, ...]:
    """Cut points of an int-to-float converter of ``width`` bits: ``magnitude`` (the absolute
    value), and above 24 bits ``normalized`` (after the leading-zero shift) and ``magnitude_low``
    (the lower half of the absolute value's increment), above 32 bits ``rounded`` too."""
    if width <= SINGLE_STAGE_CARRY_BITS:
        return ("magnitude",)
    cuts = ("magnitude", "normalized", "magnitude_low")
    return cuts + ("rounded",) if width > INT_TO_FLOAT_ROUNDED_BITS else cuts


def gdu_cuts(*, dsum_bits: int, float_offset: bool) -> tuple[str, ...]:
    """The GDU's own cut points: ``accumulator_read`` (the accumulator word read for the adder),
    and with integer zero points ``dsum_rows`` (D = P - z*A in carry-save form) and, for D wider
    than 24 bits, ``dsum_low`` (the lower half of its carry-propagate addition)."""
    if float_offset:
        return ("accumulator_read",)
    cuts = ("accumulator_read", "dsum_rows")
    return cuts + ("dsum_low",) if dsum_bits > SINGLE_STAGE_CARRY_BITS else cuts


def unit_cuts(unit: str, stages: int, width: int | None = None) -> tuple[str, ...]:
    """The cut points ``unit`` (``"multiplier"``, ``"adder"`` or ``"int_to_float"`` of ``width``
    bits) registers at depth ``stages`` (0: none)."""
    if not isinstance(stages, int) or isinstance(stages, bool) or stages < 0:
        raise ValueError(f"stages={stages!r}: must be a non-negative integer")
    if unit == "int_to_float":
        if width is None:
            raise ValueError("unit='int_to_float': needs the input width")
        return int_to_float_cuts(width)[:stages]
    cuts = {"multiplier": MULTIPLIER_CUTS, "adder": ADDER_CUTS}.get(unit)
    if cuts is None:
        raise ValueError(f"unit={unit!r}: known units are multiplier, adder, int_to_float")
    return cuts[:stages]


def unit_latency(unit: str, stages: int, width: int | None = None) -> int:
    """Cycles from the inputs of ``unit`` built with ``stages`` to its output."""
    return len(unit_cuts(unit, stages, width))


def gdu_plan(stages: int, *, dsum_bits: int, asum_bits: int, fp_activation: bool,
             float_offset: bool, superblock_bits: tuple[int, ...] = ()) -> dict[str, int]:
    """Cycles of each stage of the GDU whose FP32 units (and own cut points, :func:`gdu_cuts`)
    have depth ``stages``, in pipeline order; the sum is the GDU's latency (a partial sum at its
    input to its accumulator word readable).

    ``dsum`` (D = P - z*A, or P): 1 (+ its cut points); ``to_float`` (int to FP32, the FP16
    parameters widened): 1 + the converter; ``scale`` (x s): 1 + multiplier; ``term`` (float
    offsets: + fp32(A) * m): 1 + adder; ``accumulate`` (the accumulator word read, + term): 1 +
    adder (+ 1: ``accumulator_read``); ``write`` (INT8: x the token scale on the last group;
    the write): 1 (+ multiplier). ``superblock_bits`` (K-quants: the widths of the super-block
    sums S, and M with float offsets) adds ``sub_scale`` (sc_j * D_j, m_j * A_j): 1 and
    ``sub_accumulate`` (the row's integer sums): 1, 2 when pipelined with sums wider than 24 bits
    (the carry chains split in halves), after ``dsum``, and ``to_float`` converts S
    (and M) instead of D (and A).
    """
    own = gdu_cuts(dsum_bits=dsum_bits, float_offset=float_offset)[:stages]
    converted = superblock_bits or ((dsum_bits, asum_bits) if float_offset else (dsum_bits,))
    to_float = max(unit_latency("int_to_float", stages, width) for width in converted)
    multiplier, adder = unit_latency("multiplier", stages), unit_latency("adder", stages)
    plan = {"dsum": 1 + len(set(own) & {"dsum_rows", "dsum_low"})}
    if superblock_bits:    # the sums' carry chains split in halves when pipelined, as D's
        plan.update(sub_scale=1, sub_accumulate=1 + (stages > 0 and max(superblock_bits) > SINGLE_STAGE_CARRY_BITS))
    plan.update(to_float=1 + to_float, scale=1 + multiplier)
    if float_offset:
        plan["term"] = 1 + adder
    plan["accumulate"] = ("accumulator_read" in own) + 1 + adder
    plan["write"] = 1 + (0 if fp_activation else multiplier)
    return plan
