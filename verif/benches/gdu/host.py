"""Host side of the group-dequant unit bench (:mod:`.tb`): the design, its edge cases and their
golden results.

Computed on the Python side (the cocotb process stays free of torch, whose import is slow there).
"""

from __future__ import annotations

import functools
import random

import torch

from golden.codes import decode_scale_codes, scale_codes_from_fp16
from golden.fp32 import bits, fadd32, fmul32, fp16_to_fp32, from_bits, int_to_fp32
from golden.numerics import FP16_MAX_BITS as FP16_MAX
from hw.config import MixPEConfig
from hw.emit import build_block
from hw.fp_common import CANONICAL_NAN

__all__ = ["component", "job", "make_cases", "make_offset_cases", "golden_tile", "lane_schedule", "lane_tile",
           "activation_range", "add_fp_rows"]

FP16_ONE = 0x3C00


def component(config: MixPEConfig):
    return build_block("gdu", config)


def golden_tile(psums, asums, scales, zeros, act_scales, float_offset=False, widen_scale=fp16_to_fp32,
                exponents=None, invalid=None, lsb_exponent_offset=0):
    """Expected raw FP32 per row: psums/asums [G][R] ints, scales/zeros [G] ints, act_scales [R] raw.

    With ``float_offset`` ``zeros`` holds raw FP16 offsets m and the group term is
    ``fp32(P) * d + fp32(A) * m``. ``widen_scale`` turns raw scale codes into FP32 (the FP16
    widening, or :func:`golden.codes.decode_scale_codes` for E8M0 / E4M3 scales).

    Floating-point activations give ``exponents`` and ``invalid`` [G][R] (the rows' shared
    exponent fields and invalid flags) instead of ``act_scales``: each product is scaled by
    ``2**(exponent + lsb_exponent_offset)`` in its one rounding, an invalid row's term is the
    canonical NaN, and there is no token scale."""
    groups = len(psums)
    acc = None
    for j in range(groups):
        rows = len(psums[j])
        k = None if exponents is None else torch.tensor(exponents[j], dtype=torch.int64) + lsb_exponent_offset
        if not float_offset:
            d = torch.tensor([p - zeros[j] * a for p, a in zip(psums[j], asums[j])], dtype=torch.int64)
            term = fmul32(int_to_fp32(d), widen_scale(torch.tensor([scales[j]] * rows)), k)
        else:
            scaled = fmul32(int_to_fp32(torch.tensor(psums[j], dtype=torch.int64)),
                            fp16_to_fp32(torch.tensor([scales[j]] * rows)), k)
            offset = fmul32(int_to_fp32(torch.tensor(asums[j], dtype=torch.int64)),
                            fp16_to_fp32(torch.tensor([zeros[j]] * rows)), k)
            term = fadd32(scaled, offset)
        if invalid is not None:
            term = torch.where(torch.tensor(invalid[j], dtype=torch.bool), from_bits([CANONICAL_NAN] * rows), term)
        acc = term if j == 0 else fadd32(acc, term)
    final = acc if exponents is not None else fmul32(acc, from_bits(torch.tensor(act_scales, dtype=torch.int64)))
    return [int(v) & 0xFFFFFFFF for v in bits(final)]


def activation_range(config: MixPEConfig) -> tuple[int, int]:
    """Smallest and largest PE activation operand: INT8, or an aligned significand of
    floating-point activations (at most ``(2**(M+1) - 1) * 2**guard`` in magnitude)."""
    if not config.fp_activation:
        return -128, 127
    largest = ((1 << (config.act_format.man_bits + 1)) - 1) << config.guard
    return -largest, largest


def add_fp_rows(config: MixPEConfig, rng: random.Random, cases: list[dict], mode: str) -> None:
    """Floating-point activations: give ``cases`` (sharing their rows' groups, as a lane's columns
    do) the rows' shared exponent fields and invalid flags per group, in place of token scales.
    ``mode``: "largest" (every row at the largest valid exponent, so the largest terms, and the
    same in every group so cancelling terms stay exact), "random" (a row's groups within 2 of a
    random exponent, so that every group's term shows in the row's sum; a few invalid rows) or
    "wide" (any exponent, the extremes 1 and 2**E - 1 often, more invalid rows)."""
    rows, groups, top = config.rows, len(cases[0]["psums"]), (1 << config.act_exp_bits) - 1
    if mode == "largest":
        exponents, invalid = [[top - 1] * rows] * groups, [[0] * rows] * groups
    else:
        odds = 8 if mode == "random" else 6
        invalid = [[int(rng.randrange(odds * groups) == 0) for _ in range(rows)] for _ in range(groups)]
        bases = [rng.randrange(1, top) for _ in range(rows)]
        exponents = [[rng.choice([1, top - 1, rng.randrange(1, top)]) if mode == "wide"
                      else min(max(base + rng.randrange(-2, 3), 1), top - 1) for base in bases] for _ in range(groups)]
        exponents = [[top if bad and mode == "wide" else e for e, bad in zip(row_e, row_bad)]
                     for row_e, row_bad in zip(exponents, invalid)]
    for case in cases:
        case.pop("act_scales")
        case.update(exponents=exponents, invalid=invalid)


def make_offset_cases(config: MixPEConfig, rng: random.Random):
    """Cases of the float-offset mode: ``zeros`` holds the raw FP16 offset m of each group."""
    rows, g, top = config.rows, config.group_size, config.code_max
    low, high = activation_range(config)
    near = -low * 28 // 128                # INT8: activations within -128 .. -101 or 100 .. 127
    one = 0x3F800000

    def group_sums(x_low, x_high):
        xs = [rng.randrange(x_low, x_high) for _ in range(g)]
        return sum(x * rng.randrange(top + 1) for x in xs), sum(xs)

    sums = [[group_sums(*rng.choice([(low, high + 1), (low, low + near), (high + 1 - near, high + 1)]))
             for _ in range(rows)] for _ in range(6)]
    a_const = [[rng.randrange(low * g, high * g + 1) for _ in range(rows)] for _ in range(3)]

    def random_fp16():
        return rng.choice([0, rng.randrange(0x0400, 0x7C00)]) | rng.choice([0, 0x8000])

    def case(name, groups, psum, asum, scale, offset, act_scale=one):
        return {"name": name,
                "psums": [[psum(j, r) for r in range(rows)] for j in range(groups)],
                "asums": [[asum(j, r) for r in range(rows)] for j in range(groups)],
                "scales": [scale(j) for j in range(groups)],
                "zeros": [offset(j) for j in range(groups)],
                "act_scales": [act_scale] * rows if isinstance(act_scale, int) else act_scale}

    return [
        case("zeros", 2, lambda j, r: 0, lambda j, r: 0, lambda j: FP16_ONE, lambda j: FP16_MAX),
        # x = -128 and codes 2**b - 1 everywhere: largest |P| and |A|, both products negative.
        case("largest_negative_term", 3, lambda j, r: low * top * g, lambda j, r: low * g,
             lambda j: FP16_MAX, lambda j: FP16_MAX),
        case("largest_positive_term", 3, lambda j, r: high * top * g, lambda j, r: high * g,
             lambda j: FP16_MAX, lambda j: FP16_MAX),
        # codes all 5 (P = 5A), d = 1, m = -5: t + o cancels to exactly zero in every group.
        case("offset_cancels_scale", 3, lambda j, r: 5 * a_const[j][r], lambda j, r: a_const[j][r],
             lambda j: FP16_ONE, lambda j: 0xC500),
        case("sign_changes_cancel", 4, lambda j, r: (1 if j % 2 else -1) * 1000 * (r + 1), lambda j, r: 0,
             lambda j: 0x2E66, lambda j: 0x5BFF),
        case("overflow_to_inf", 2, lambda j, r: -low * top * g, lambda j, r: 0, lambda j: FP16_MAX, lambda j: 0,
             act_scale=0x7E967699),  # 1e38
        case("single_group", 1, lambda j, r: sums[j][r][0], lambda j, r: sums[j][r][1],
             lambda j: rng.randrange(0x0400, 0x7C00), lambda j: random_fp16()),
        case("random", 6, lambda j, r: sums[j][r][0], lambda j, r: sums[j][r][1],
             lambda j: rng.randrange(0x0400, 0x7C00) | rng.choice([0, 0x8000]), lambda j: random_fp16(),
             act_scale=[0x3C000000 + rng.randrange(1 << 23) for _ in range(rows)]),
    ]


def make_cases(config: MixPEConfig, rng: random.Random):
    if config.float_offset:
        return make_offset_cases(config, rng)
    rows, g, top = config.rows, config.group_size, config.code_max
    low, high = activation_range(config)
    near = -low * 28 // 128                # INT8: activations within -128 .. -101 or 100 .. 127
    p_max = -low * top * g           # |P| bound; |D| reaches it
    a_min, a_max = low * g, high * g
    one = 0x3F800000

    def group_sums(x_low, x_high):
        """(P, A) of a real group: P and A of independent random draws could give a D = P - z*A
        that no group can produce (and that the D register is not sized for)."""
        xs = [rng.randrange(x_low, x_high) for _ in range(g)]
        return sum(x * rng.randrange(top + 1) for x in xs), sum(xs)

    # Per group and row; groups with large activations of one sign push |D| to the extremes.
    sums = [[group_sums(*rng.choice([(low, high + 1), (low, low + near), (high + 1 - near, high + 1)]))
             for _ in range(rows)] for _ in range(6)]

    def case(name, groups, psum, asum, scale, zero, act_scale=one):
        return {"name": name,
                "psums": [[psum(j, r) for r in range(rows)] for j in range(groups)],
                "asums": [[asum(j, r) for r in range(rows)] for j in range(groups)],
                "scales": [scale(j) for j in range(groups)],
                "zeros": [zero(j) for j in range(groups)],
                "act_scales": [act_scale] * rows if isinstance(act_scale, int) else act_scale}

    return [
        case("zeros", 2, lambda j, r: 0, lambda j, r: 0, lambda j: FP16_ONE, lambda j: top),
        case("largest_negative_D", 3, lambda j, r: -p_max, lambda j, r: 0, lambda j: FP16_MAX, lambda j: 0),
        case("largest_positive_D", 3, lambda j, r: 0, lambda j, r: a_min, lambda j: FP16_MAX, lambda j: top),
        case("sign_changes_cancel", 4, lambda j, r: (1 if j % 2 else -1) * 1000 * (r + 1), lambda j, r: 0,
             lambda j: 0x2E66, lambda j: 0),
        case("overflow_to_inf", 2, lambda j, r: p_max, lambda j, r: 0, lambda j: FP16_MAX, lambda j: 0,
             act_scale=0x7E967699),  # 1e38
        case("single_group", 1, lambda j, r: sums[j][r][0], lambda j, r: sums[j][r][1],
             lambda j: rng.randrange(0x0400, 0x7C00), lambda j: rng.randrange(top + 1)),
        case("random", 6, lambda j, r: sums[j][r][0], lambda j, r: sums[j][r][1],
             lambda j: rng.randrange(0x0400, 0x7C00) | rng.choice([0, 0x8000]), lambda j: rng.randrange(top + 1),
             act_scale=[0x3C000000 + rng.randrange(1 << 23) for _ in range(rows)]),
    ]


def _extreme_exponents(config: MixPEConfig, seed: int) -> dict:
    """Floating-point activations: a random case whose valid rows sit at the ends of the shared
    exponent field, 0 and 2**E - 1 (row r: every group at 2**E - 1, every group at 0, or the two
    alternating, by r mod 3), so the LSB exponent ``k = e + lsb_exponent_offset`` takes its extremes
    and every bit of ``e`` varies. FP16 and BF16 cores give 2**E - 1 only to invalid rows, E4M3
    holds finite values there; the GDU's contract scales any valid row by 2**k. Own generator
    (``seed``), so the other cases' draws stay as they were."""
    rng = random.Random(f"extreme_exponents-{seed}")
    case = dict(make_cases(config, rng)[-1], name="extreme_exponents")
    top = (1 << config.act_exp_bits) - 1
    groups, rows = len(case["psums"]), config.rows
    case.pop("act_scales")
    case.update(exponents=[[(top, 0, top if j % 2 == 0 else 0)[r % 3] for r in range(rows)] for j in range(groups)],
                invalid=[[0] * rows for _ in range(groups)])
    return case


def _wide_range(config: MixPEConfig, rng: random.Random, index: int) -> dict:
    """A random case whose FP16 scales include subnormals and whose FP32 token scales take any bit
    pattern (subnormals, huge values that overflow, Inf and NaN): the FP32 units' special paths."""
    case = dict(make_cases(config, rng)[-1], name=f"wide_range_{index}")
    case["scales"] = [rng.choice([rng.randrange(1, 0x400), rng.randrange(0x400, 0x7C00)]) | rng.choice([0, 0x8000])
                      for _ in case["scales"]]
    case["act_scales"] = [rng.randrange(1 << 32) for _ in case["act_scales"]]
    return case


def lane_schedule(config: MixPEConfig, groups: int) -> list[tuple[int, int, int] | None]:
    """The cycles of a tile of ``groups`` groups on every column of a lane, as the core feeds a GDU
    lane: per group, column after column one lane period apart, R consecutive rows each, the
    group's first rows ``group_interval`` cycles apart; (group, column, row) per cycle, None idle."""
    rows, interval, period = config.rows, config.group_interval, config.lane_period(config.lanes)
    cycles: list[tuple[int, int, int] | None] = [None] * (groups * interval)
    for j in range(groups):
        for column in range(config.columns_per_lane):
            for r in range(rows):
                cycles[j * interval + column * period + r] = (j, column, r)
    return cycles


def lane_tile(config: MixPEConfig, rng: random.Random, name: str, bank: int, groups: int = 3) -> dict:
    """A tile of random groups on every column of a lane (``columns``: one case per column, sharing
    the rows' token scales), to run in ``bank`` cycle by cycle as ``beats`` (:func:`lane_schedule`)
    orders it. A group's P and A are those of activations whose first half has one code and second
    half another: cheap to draw, and always sums that a real group gives."""
    rows, g, top = config.rows, config.group_size, config.code_max
    low, high = activation_range(config)
    halves = (g // 2, g - g // 2)

    def group_sums():
        parts = [rng.randrange(low * n, high * n + 1) for n in halves]
        return sum(rng.randrange(top + 1) * part for part in parts), sum(parts)

    def parameters():
        scale = rng.randrange(0x0400, 0x7C00) | rng.choice([0, 0x8000])
        zero = rng.randrange(0x0400, 0x7C00) | rng.choice([0, 0x8000]) if config.float_offset else rng.randrange(top + 1)
        return scale, zero

    act_scales = [0x3C000000 + rng.randrange(1 << 23) for _ in range(rows)]
    columns = []
    for column in range(config.columns_per_lane):
        sums = [[group_sums() for _ in range(rows)] for _ in range(groups)]
        scales, zeros = zip(*(parameters() for _ in range(groups)))
        columns.append({"name": f"{name}_column{column}", "psums": [[p for p, _ in row] for row in sums],
                        "asums": [[a for _, a in row] for row in sums], "scales": list(scales),
                        "zeros": list(zeros), "act_scales": act_scales})
    return {"name": name, "bank": bank, "columns": columns, "beats": lane_schedule(config, groups)}


def job(config: MixPEConfig, seed: int) -> dict:
    """Cases with their expected raw FP32 results per row, as a JSON-able dict. The bench puts case
    i in column i mod ``columns_per_lane``; one more random case per column makes every column's
    word of the accumulator memory see random data (the edge cases leave most of its bits 0). With
    several columns a lane, ``lane_tiles`` (:func:`lane_tile`, one per bank, back to back) then
    accumulate every column in the same tile, as the core does: a write into another column's
    word shows there."""
    rng = random.Random(seed)
    cases = make_cases(config, rng)
    cases += [dict(make_cases(config, rng)[-1], name=f"random_{index}") for index in range(config.columns_per_lane)]
    cases += [_wide_range(config, rng, index) for index in range(config.columns_per_lane)]
    lane_tiles = [lane_tile(config, rng, f"lane_tile_{bank}", bank) for bank in range(2)] \
        if config.columns_per_lane > 1 else []
    if config.fp_activation:
        for case in cases:
            mode = "wide" if case["name"].startswith("wide_range") else \
                "random" if case["name"].startswith(("random", "single_group")) else "largest"
            add_fp_rows(config, rng, [case], mode)
        for tile in lane_tiles:
            add_fp_rows(config, rng, tile["columns"], "random")
        cases.append(_extreme_exponents(config, seed))
    every_case = cases + [case for tile in lane_tiles for case in tile["columns"]]
    widen_scale = fp16_to_fp32
    if config.scale_format != "fp16" or config.scale_exponent_offset:   # the cases' FP16 scales in the core's format
        widen_scale = functools.partial(decode_scale_codes, config)
        for case in every_case:
            case["scales"] = scale_codes_from_fp16(config, case["scales"])
    for case in every_case:
        if config.signed_codes:          # FP4 / power-of-two codes: no zero point (the GDU ignores it)
            case["zeros"] = [0] * len(case["zeros"])
        case["expected"] = golden_tile(case["psums"], case["asums"], case["scales"], case["zeros"],
                                       case.get("act_scales"), config.float_offset, widen_scale,
                                       case.get("exponents"), case.get("invalid"), config.lsb_exponent_offset)
    return {"cases": cases, "lane_tiles": lane_tiles}
