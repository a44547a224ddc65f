"""The one configuration object that drives the RTL, golden models, testbenches, cycle model and packer.

A :class:`MixPEConfig` is frozen and validated at construction. Every bit width and latency of
the generated hardware is a property derived from it, so there is a single place to read them.
Presets are named ``w<weight bits><activation>-g<group>-<rows>x<cols>`` (for example
``w4a8-g128-16x16``, the default, or ``w4a16-g128-16x16`` for FP16 activations); any name of that
shape is a valid preset. Activation tokens: ``a8`` INT8, ``a16`` FP16, ``bf16``, ``e4m3`` and ``e5m2``
(FP8).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

from .codes import check_formats, scale_exponent_offset, signed_values, value_max
from .formats import ActivationFormat, activation_format
from .errors import MixPEError
from .fp_stages import gdu_plan

__all__ = ["ConfigError", "MixPEConfig", "ACTIVATIONS", "DEFAULT_PRESET", "PRESETS", "from_preset",
           "load_config", "ZERO_MODES", "SCALE_MODES", "KQUANT_SUPER_BLOCK"]


class ConfigError(MixPEError, ValueError):
    """A configuration value is invalid; the message names the parameter, its value and what is allowed."""


#: Activation token of a preset name -> activation format name (see :mod:`hw.formats`).
ACTIVATIONS = {
    "a8": "int8",
    "a16": "fp16",
    "bf16": "bf16",
    "e4m3": "fp8_e4m3",
    "e5m2": "fp8_e5m2",
}
#: Guard bits kept below a floating-point group's largest significand when none are configured: 6
#: keeps FP16 activations more accurate than an FP16 GEMM with FP32 accumulation even with
#: 100x activation outliers (4 is enough without outliers; see ``make bench``).
DEFAULT_GUARD_BITS = 6
MAX_GUARD_BITS = 16
#: Every code width from 2 to 8 bits: the shift & add PE and the derived widths are generic in b.
WEIGHT_BITS = tuple(range(2, 9))
WEIGHT_ENCODINGS = ("unsigned", "signed")
#: How a group's zero is applied: an integer zero point ``s*(q - z)``, or an FP16 float offset
#: ``d*q + m`` (llama.cpp Q4_1).
ZERO_MODES = ("integer", "float_offset")
#: How group scales are applied: an FP16 scale per group (``flat``), or llama.cpp K-quants'
#: integer sub-scales per group under an FP16 scale per super-block (``kquant``).
SCALE_MODES = ("flat", "kquant")
#: Weights per K-quant super-block (llama.cpp's QK_K): the span of one FP16 ``d`` (and ``dmin``).
KQUANT_SUPER_BLOCK = 256
#: K-quant sub-scales: signed 8-bit with integer zero points (Q6_K's int8, Q3_K's 6-bit minus 32),
#: unsigned 6-bit with float offsets (Q4_K/Q5_K; Q2_K's 4-bit), as are the mins then.
KQUANT_SIGNED_SUB_SCALE_BITS = 8
KQUANT_UNSIGNED_SUB_BITS = 6
MAX_ARRAY_DIM = 128
#: Pipeline depth of the GDU's FP32 units when none is configured: the depth at which every stage
#: of the multiplier and the adder is as short as the MixPE PE's path (``docs/architecture.md``,
#: "Pipelined dequantization": 3.95 ns against the PE's 3.91 ns with OSU018, ``make timing``).
DEFAULT_GDU_STAGES = 5
MAX_GDU_STAGES = 8
GROUP_SIZES = tuple(2 ** n for n in range(3, 11))  # 8 .. 1024

DEFAULT_PRESET = "w4a8-g128-16x16"
#: Presets that the documentation and tests name; any name matching the preset pattern also works.
PRESETS = (
    "w4a8-g128-16x16",
    "w4a8-g64-8x8",
    "w4a8-g128-32x32",
    "w4a8-g32-4x4",
    "w2a8-g64-8x8",
    "w3a8-g64-8x8",
    "w8a8-g128-8x8",
    "w4a16-g128-16x16",
    "w4bf16-g128-16x16",
    "w4e4m3-g128-16x16",
    "w4e5m2-g128-16x16",
)

_PRESET_PATTERN = re.compile(r"^w(?P<bits>\d+)(?P<act>" + "|".join(ACTIVATIONS) +
                             r")-g(?P<group>\d+)-(?P<rows>\d+)x(?P<cols>\d+)$")


@dataclasses.dataclass(frozen=True)
class MixPEConfig:
    """Parameters of one MixPE core.

    rows
        Array rows R: token rows of the output tile computed at once.
    cols
        Array columns C: output channels of the tile.
    weight_bits
        Bits per weight code b (2 to 8). Codes are unsigned ``0 .. 2**b - 1``.
    weight_encoding
        ``"unsigned"``: any integer zero point per group; ``"signed"``: symmetric signed codes
        stored with the offset ``2**(b-1)``, which is then the zero point of every group.
    activation
        Activation format (:mod:`hw.formats`): ``"int8"`` (two's complement, one FP32 scale per
        token), or floating point ``"fp16"``, ``"bf16"``, ``"fp8_e4m3"``, ``"fp8_e5m2"``,
        ``"fp_e<E>m<M>"``. Floating-point activations are aligned per token and group to the
        group's largest exponent (block floating point) and enter the PEs as signed integers.
    guard_bits
        Floating-point activations only: bits kept below the significand of a group's largest
        element after alignment (``None``: :data:`DEFAULT_GUARD_BITS`). More guard bits, less
        alignment error, wider PEs.
    group_size
        Quantization group size g along K (power of two, 8 .. 1024).
    zero_mode
        ``"integer"``: per group an integer zero point z, ``w = s * (q - z)``; ``"float_offset"``:
        per group an FP16 scale d and an FP16 offset m, ``w = d * q + m`` (llama.cpp Q4_1), which
        needs ``weight_encoding="unsigned"``.
    scale_mode
        ``"flat"``: one FP16 scale (and zero point or offset) per group. ``"kquant"``: hierarchical
        group dequantization of llama.cpp K-quants. The group (g = 16 or 32, at most
        :data:`KQUANT_SUPER_BLOCK`) is the sub-block; each carries an integer sub-scale ``sc_j``
        (signed 8 bits with ``zero_mode="integer"``: Q6_K, Q3_K; unsigned 6 bits with
        ``"float_offset"``, beside an unsigned 6-bit min ``m_j``: Q4_K, Q5_K, Q2_K) and the
        super-block of 256 weights one FP16 scale ``d`` (and with float offsets one FP16 offset
        scale ``o = -dmin``): ``w = d * sc_j * (q - z)`` or ``w = d * sc_j * q + o * m_j``. The GDU
        sums ``sc_j * D_j`` (and ``m_j * A_j``) over a super-block exactly in integers
        (:attr:`sub_sum_bits`, :attr:`min_sum_bits`) and converts and scales once per super-block;
        a tile's K is a multiple of 256.
    row_groups
        Number of horizontal bands the R rows are split into (divides R). Each band of
        ``R / row_groups`` rows receives its own weight codes and group parameters, so one tile
        can hold up to ``row_groups`` different weight matrices (experts, or column blocks of one
        matrix) with the same K, each applied to its own rows. 1 is the plain array.
    gdu_stages
        Pipeline depth of every FP32 unit of the group-dequant units (int-to-float, multipliers,
        adders; :mod:`hw.fp_stages`), 0 to 8 (``None``: :data:`DEFAULT_GDU_STAGES`, which keeps
        the GDU as fast as the PE). 0 is the combinational units of the first release; deeper
        units shorten the clock period and lengthen ``gdu_latency``.
    weight_format
        How the PE reads a code (:mod:`hw.codes`): ``"int"`` (unsigned integer with a zero point,
        the default), ``"fp4_e2m1"`` (FP4 E2M1, b = 4: MXFP4, NVFP4) or ``"pow2"`` (sign and
        exponent, no zero: DenseShift, b = 2 .. 5). The last two carry their own sign: every
        zero point is 0 and ``weight_encoding`` stays ``"unsigned"``.
    scale_format
        Format of the group scale: ``"fp16"`` (default), ``"e8m0"`` (a power of two, MXFP4) or
        ``"e4m3"`` (FP8, NVFP4 and FireQ), decoded exactly to FP32 in the GDU (:mod:`hw.scale_decode`).
    gdu_lanes
        Number of group-dequant units (lanes), 1 to C (``None``: :attr:`default_lanes`, the
        fewest that never add a dequant stall). Lane l serves columns l, l + L, l + 2L, ...,
        one after the other; each holds a 2 x R x ``columns_per_lane`` FP32 accumulator memory.
        C lanes (one per column) is the first release's design; fewer trade area for latency
        and, below the default, dequant stalls.
    name
        Preset or file name used to name build directories.
    """

    rows: int = 16
    cols: int = 16
    weight_bits: int = 4
    weight_encoding: str = "unsigned"
    activation: str = "int8"
    group_size: int = 128
    zero_mode: str = "integer"
    scale_mode: str = "flat"
    guard_bits: int | None = None
    row_groups: int = 1
    gdu_stages: int | None = None
    gdu_lanes: int | None = None
    weight_format: str = "int"
    scale_format: str = "fp16"
    name: str = "custom"

    def __post_init__(self):
        for field in ("rows", "cols", "weight_bits", "group_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{field}={value!r}: must be an integer")
        for field in ("rows", "cols"):
            value = getattr(self, field)
            if not 1 <= value <= MAX_ARRAY_DIM:
                raise ConfigError(f"{field}={value}: must be between 1 and {MAX_ARRAY_DIM}")
        if self.weight_bits not in WEIGHT_BITS:
            raise ConfigError(f"weight_bits={self.weight_bits}: allowed values are {WEIGHT_BITS}")
        if self.weight_encoding not in WEIGHT_ENCODINGS:
            raise ConfigError(f"weight_encoding={self.weight_encoding!r}: allowed values are {WEIGHT_ENCODINGS}")
        try:
            activation_format(self.activation)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.guard_bits is not None:
            if not self.act_format.is_float:
                raise ConfigError(f"guard_bits={self.guard_bits!r}: only floating-point activations have guard bits "
                                  f"(activation={self.activation!r}); leave it unset (null)")
            if not isinstance(self.guard_bits, int) or isinstance(self.guard_bits, bool) \
                    or not 0 <= self.guard_bits <= MAX_GUARD_BITS:
                raise ConfigError(f"guard_bits={self.guard_bits!r}: must be an integer from 0 to {MAX_GUARD_BITS}")
        if not isinstance(self.row_groups, int) or isinstance(self.row_groups, bool) or self.row_groups < 1 \
                or self.rows % self.row_groups:
            raise ConfigError(f"row_groups={self.row_groups!r}: must be a positive divisor of rows={self.rows}")
        if self.gdu_stages is not None and (not isinstance(self.gdu_stages, int) or isinstance(self.gdu_stages, bool)
                                            or not 0 <= self.gdu_stages <= MAX_GDU_STAGES):
            raise ConfigError(f"gdu_stages={self.gdu_stages!r}: must be an integer from 0 to {MAX_GDU_STAGES} "
                              f"(or null for the default, {DEFAULT_GDU_STAGES})")
        if self.gdu_lanes is not None and (not isinstance(self.gdu_lanes, int) or isinstance(self.gdu_lanes, bool)
                                           or not 1 <= self.gdu_lanes <= self.cols):
            raise ConfigError(f"gdu_lanes={self.gdu_lanes!r}: must be an integer from 1 to cols={self.cols} "
                              f"(or null for the fewest lanes that add no dequant stall)")
        if self.group_size not in GROUP_SIZES:
            raise ConfigError(f"group_size={self.group_size}: must be a power of two from "
                              f"{GROUP_SIZES[0]} to {GROUP_SIZES[-1]}")
        if self.zero_mode not in ZERO_MODES:
            raise ConfigError(f"zero_mode={self.zero_mode!r}: allowed values are {ZERO_MODES}")
        if self.zero_mode == "float_offset" and self.weight_encoding != "unsigned":
            raise ConfigError(f"weight_encoding={self.weight_encoding!r}: zero_mode='float_offset' requires "
                              f"weight_encoding='unsigned' (the offset replaces the zero point)")
        if self.scale_mode not in SCALE_MODES:
            raise ConfigError(f"scale_mode={self.scale_mode!r}: allowed values are {SCALE_MODES}")
        if self.kquant and self.group_size > KQUANT_SUPER_BLOCK:
            raise ConfigError(f"group_size={self.group_size}: scale_mode='kquant' needs a group (sub-block) of at most "
                              f"the super-block, {KQUANT_SUPER_BLOCK}")
        problem = check_formats(self.weight_format, self.scale_format, self.weight_bits, self.weight_encoding,
                                self.zero_mode, self.scale_mode)
        if problem:
            raise ConfigError(problem)
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.+-]+", self.name):
            raise ConfigError(f"name={self.name!r}: must be a non-empty string of letters, digits, '._+-'")

    # -- activation ---------------------------------------------------------------------------

    @property
    def act_format(self) -> ActivationFormat:
        return activation_format(self.activation)

    @property
    def fp_activation(self) -> bool:
        """Whether activations are floating point (block-floating-point aligned at the array edge)."""
        return self.act_format.is_float

    @property
    def act_bits(self) -> int:
        """Width of one activation element on the activation stream (raw INT8 or FP code)."""
        return self.act_format.bits

    @property
    def guard(self) -> int:
        """Guard bits of the alignment (0 for INT8)."""
        if not self.fp_activation:
            return 0
        return DEFAULT_GUARD_BITS if self.guard_bits is None else self.guard_bits

    @property
    def pe_act_bits(self) -> int:
        """Signed width of the activation operand of a PE.

        INT8: 8. Floating point: the aligned significand, at most ``(2**(M+1) - 1) * 2**guard``
        in magnitude, plus a sign: ``M + 2 + guard`` bits."""
        if not self.fp_activation:
            return 8
        return self.act_format.man_bits + 2 + self.guard

    @property
    def act_exp_bits(self) -> int:
        """Width of a group's shared exponent (the format's exponent field); 0 for INT8."""
        return self.act_format.exp_bits

    @property
    def lsb_exponent_offset(self) -> int:
        """The aligned integer's LSB weighs ``2**(e_max + lsb_exponent_offset)`` for a group whose
        largest (effective, biased) exponent field is ``e_max``: ``-(bias + M + guard)``."""
        fmt = self.act_format
        return -(fmt.bias + fmt.man_bits + self.guard) if self.fp_activation else 0

    @property
    def lsb_exponent_bits(self) -> int:
        """Signed width of the LSB exponent ``e_max + lsb_exponent_offset`` (0 for INT8), over
        ``e_max`` in ``1 .. 2**E - 1``."""
        if not self.fp_activation:
            return 0
        low = 1 + self.lsb_exponent_offset
        high = 2 ** self.act_exp_bits - 1 + self.lsb_exponent_offset
        return max(low.bit_length(), high.bit_length(), (-low - 1).bit_length()) + 1

    @property
    def band_rows(self) -> int:
        """Rows per row group, ``R / row_groups``."""
        return self.rows // self.row_groups

    # -- datapath widths (all signed two's complement unless stated) ---------------------------

    @property
    def code_max(self) -> int:
        """Largest weight code, ``2**b - 1``."""
        return 2 ** self.weight_bits - 1

    @property
    def code_value_max(self) -> int:
        """Largest |PE value| of a code (:func:`hw.codes.value_max`): ``2**b - 1`` for integers."""
        return value_max(self.weight_format, self.weight_bits)

    @property
    def signed_codes(self) -> bool:
        """Whether the codes carry their own sign (FP4, power of two): zero points are all 0."""
        return signed_values(self.weight_format)

    @property
    def scale_exponent_offset(self) -> int:
        """Exact power of two applied to the decoded group scale (-1 for FP4 codes, else 0)."""
        return scale_exponent_offset(self.weight_format)

    @property
    def symmetric_zero(self) -> int:
        """Zero point of every group in the signed encoding, ``2**(b-1)``."""
        return 2 ** (self.weight_bits - 1)

    @property
    def float_offset(self) -> bool:
        """Whether groups carry FP16 float offsets (``zero_mode="float_offset"``) instead of zero points."""
        return self.zero_mode == "float_offset"

    @property
    def kquant(self) -> bool:
        """Whether groups are K-quant sub-blocks with integer sub-scales (``scale_mode="kquant"``)."""
        return self.scale_mode == "kquant"

    @property
    def superblock_groups(self) -> int:
        """Groups per K-quant super-block, ``256 / g`` (1 in the flat mode: every group is its own)."""
        return KQUANT_SUPER_BLOCK // self.group_size if self.kquant else 1

    @property
    def sub_scale_signed(self) -> bool:
        """K-quant sub-scales are signed (integer zero points: Q6_K, Q3_K) or unsigned (float offsets)."""
        return not self.float_offset

    @property
    def sub_scale_bits(self) -> int:
        """Width of a K-quant sub-scale ``sc_j`` (0 in the flat mode): 8 signed, or 6 unsigned with float offsets."""
        if not self.kquant:
            return 0
        return KQUANT_UNSIGNED_SUB_BITS if self.float_offset else KQUANT_SIGNED_SUB_SCALE_BITS

    @property
    def sub_min_bits(self) -> int:
        """Width of a K-quant min ``m_j`` (unsigned; 0 unless ``scale_mode="kquant"`` with float offsets)."""
        return KQUANT_UNSIGNED_SUB_BITS if self.kquant and self.float_offset else 0

    @property
    def sub_sum_bits(self) -> int:
        """Super-block sum S = sum_j sc_j * D_j over J = 256/g groups (``dsum_bits`` in the flat mode).

        |D_j| <= 2**(a-1) * (2**b - 1) * g (:attr:`dsum_bits`) and |sc_j| <= 2**7 (signed) or
        2**6 - 1 (unsigned), so |S| <= |sc|max * 256 * 2**(a-1) * (2**b - 1); signed, the bound's
        bit length plus one (a + b + 15 bits with signed, a + b + 14 with unsigned sub-scales)."""
        if not self.kquant:
            return self.dsum_bits
        sub_scale_max = 2 ** (self.sub_scale_bits - 1) if self.sub_scale_signed else 2 ** self.sub_scale_bits - 1
        bound = sub_scale_max * KQUANT_SUPER_BLOCK * 2 ** (self.pe_act_bits - 1) * self.code_max
        return bound.bit_length() + 1

    @property
    def min_sum_bits(self) -> int:
        """Super-block sum M = sum_j m_j * A_j (float offsets; :attr:`asum_bits` otherwise):
        |A_j| <= 2**(a-1) * g and m_j <= 2**6 - 1, so |M| <= 63 * 256 * 2**(a-1): a + 14 bits signed."""
        if not self.sub_min_bits:
            return self.asum_bits
        bound = (2 ** self.sub_min_bits - 1) * KQUANT_SUPER_BLOCK * 2 ** (self.pe_act_bits - 1)
        return bound.bit_length() + 1

    @property
    def group_log2(self) -> int:
        """``log2 g`` (g is a power of two). Computed without Amaranth's ``exact_log2``: this
        module stays importable without Amaranth (``mixpe config``)."""
        return self.group_size.bit_length() - 1

    @property
    def product_bits(self) -> int:
        """Shift & add product x*v: |x| <= 2**(a-1) with a = ``pe_act_bits`` and |v| <= V =
        :attr:`code_value_max`, so |x*v| <= 2**(a-1) * V < 2**(a-1+bitlen(V)): a + bitlen(V) bits
        (a + b for integer codes, V = 2**b - 1; a + 4 for FP4, V = 12; a + 2**(b-1) for powers of two)."""
        return self.pe_act_bits + self.code_value_max.bit_length()

    @property
    def psum_bits(self) -> int:
        """Group partial sum P = sum x*Q over g terms: product bits + log2 g."""
        return self.product_bits + self.group_log2

    @property
    def asum_bits(self) -> int:
        """Activation group sum A = sum x: |A| <= 2**(a-1) * g, so a + log2 g bits (a = ``pe_act_bits``)."""
        return self.pe_act_bits + self.group_log2

    @property
    def dsum_bits(self) -> int:
        """D = P - z*A = sum (Q - z)*x with |Q - z| <= 2**b - 1: the same bound as P."""
        return self.psum_bits

    @property
    def dsum_exact_in_fp32(self) -> bool:
        """Whether every D converts to FP32 exactly (|D| <= 2**24)."""
        return self.dsum_bits - 1 <= 24

    # -- schedule ----------------------------------------------------------------------------

    @property
    def group_interval(self) -> int:
        """Minimum cycles between the first beats of two consecutive groups (:meth:`interval_with_lanes`
        for the configured lanes); when it exceeds g the array idles between groups (dequant stalls)."""
        return self.interval_with_lanes(self.lanes)

    def interval_with_lanes(self, lanes: int) -> int:
        """The group interval of this core with ``lanes`` GDU lanes.

        With T the cycle a group's first drain (PE(0, 0)) happens, ``issue_to_drain`` after its last
        step, PE(r, c) holds the group's sum from T + r + c until the next group's drain. The
        activation-sum unit emits row r at T + r, and the lane of column c = l + i*L dequantizes
        its rows during one *lane period* ``m`` (:meth:`lane_period`) each, column after column:
        row r of column c at T + :meth:`column_offset` (c) + r. The interval must cover:

        * g, and R: the activation sums (and the column drains) come R per group;
        * a lane's work: ``(columns_per_lane - 1) * m + R`` cycles per group;
        * the ping-pong parameter registers, written at the group's end and read when the last
          band's first row (row R - R/row_groups) of the last column reaches its lane:
          ``2 * interval >= issue_to_drain + column_offset(C - 1) + R - R/row_groups``.

        With C lanes this is ``max(g, R, ceil((issue_to_drain + C - 1 + R - R/row_groups) / 2))``,
        the first release's interval. (A row's accumulator word reaches the GDU's write stage
        :attr:`accumulate_cycles` <= 7 < g cycles after its read, in time for the row's next
        group, which takes it from there when it is not yet written.)"""
        per_lane = -(-self.cols // lanes)
        work = (per_lane - 1) * self.lane_period(lanes) + self.rows
        sweep = self.issue_to_drain + self.column_offset(self.cols - 1, lanes) + self.rows - self.band_rows
        return max(self.group_size, self.rows, work, (sweep + 1) // 2)

    def lane_period(self, lanes: int) -> int:
        """Cycles a lane spends on each of its columns, ``max(R, lanes)``: R rows, and column
        l + i*L is drained no earlier than i*L cycles after column l."""
        return max(self.rows, lanes)

    def column_offset(self, column: int, lanes: int | None = None) -> int:
        """Cycles from a group's first drain (PE(0, 0)) to row 0 of ``column`` entering its GDU
        lane: c with C lanes; else ``(c mod L) + (c div L) * lane_period + 2``: the lanes' walk
        over the group's rows starts the cycle after row 0's sum arrives, and the drained sum is
        registered before the GDU."""
        lanes = self.lanes if lanes is None else lanes
        if lanes == self.cols:
            return column
        return column % lanes + (column // lanes) * self.lane_period(lanes) + 2

    @property
    def default_lanes(self) -> int:
        """The fewest GDU lanes that add no dequant stall: the group interval of one lane per column.

        A lane dequantizes ``columns_per_lane`` columns of R rows, one lane period apart, per
        group (:meth:`interval_with_lanes`); when that work is the binding rule the default is
        ``ceil(C / floor(interval / R))`` (2 on the 16x16 g = 128 core: 8 columns of 16 rows in
        128 cycles), and the ping-pong parameters' sweep can ask for more, so the lanes are tried
        1, 2, ... . Fewer lanes also finish a tile's results later (``result_offset``), so a tile
        shorter than ``result_offset + R - 1`` steps waits for its output bank (bank stalls, as
        with C lanes for shorter tiles still; the cycle model counts them)."""
        target = self.interval_with_lanes(self.cols)
        return next(lanes for lanes in range(1, self.cols + 1) if self.interval_with_lanes(lanes) == target)

    @property
    def lanes(self) -> int:
        """GDU lanes: ``gdu_lanes``, or :attr:`default_lanes`."""
        return self.default_lanes if self.gdu_lanes is None else self.gdu_lanes

    @property
    def columns_per_lane(self) -> int:
        """Columns of the fullest lane, ``ceil(C / lanes)`` (lane l has the columns l + i*L < C)."""
        return -(-self.cols // self.lanes)

    @property
    def dequant_stall_per_group(self) -> int:
        """Idle cycles the issue stage inserts before each group after the first."""
        return self.group_interval - self.group_size

    # -- latencies (cycles; see hw/mpgemm.py for the timeline) ---------------------------------

    @property
    def gdu_unit_stages(self) -> int:
        """Pipeline depth of the GDU's FP32 units: ``gdu_stages``, or :data:`DEFAULT_GDU_STAGES`."""
        return DEFAULT_GDU_STAGES if self.gdu_stages is None else self.gdu_stages

    @property
    def gdu_stage_cycles(self) -> dict[str, int]:
        """Cycles of each GDU stage in pipeline order (:func:`hw.fp_stages.gdu_plan`)."""
        superblock_bits = ((self.sub_sum_bits, self.min_sum_bits) if self.float_offset else (self.sub_sum_bits,)) \
            if self.kquant else ()
        return gdu_plan(self.gdu_unit_stages, dsum_bits=self.dsum_bits, asum_bits=self.asum_bits,
                        fp_activation=self.fp_activation, float_offset=self.float_offset,
                        superblock_bits=superblock_bits)

    @property
    def gdu_latency(self) -> int:
        """Cycles from a drained partial sum at a GDU input to its accumulator write being visible:
        5 with combinational FP32 units (``gdu_stages=0``), 6 with float offsets (the term adder)."""
        return sum(self.gdu_stage_cycles.values())

    @property
    def accumulate_cycles(self) -> int:
        """Cycles from a GDU's accumulator read of a row to the row's new sum entering the write
        stage, where the next group's read of the same row can take it (at most 7, with every
        cut point of the adder: below the smallest group size)."""
        return self.gdu_stage_cycles["accumulate"]

    @property
    def edge_stages(self) -> int:
        """Registers between issuing a K step and the array's inputs: 1 with floating-point
        activations and a pipelined GDU (the aligned activations are registered: the aligner and
        the activation sum's adder in one cycle would then be the core's longest path), else 0
        (INT8, or the first release's core with ``gdu_stages=0``)."""
        return 1 if self.fp_activation and self.gdu_unit_stages else 0

    @property
    def drain_offset(self) -> int:
        """Cycles from a group's last K step entering the array to PE(0, 0)'s drain register
        holding its sum.

        The step is registered into the skew network (1) and accumulated by PE(0, 0) into its
        drain register (1); PE(r, c) drains ``r + c`` cycles later."""
        return 2

    @property
    def issue_to_drain(self) -> int:
        """Cycles from issuing a group's last K step to PE(0, 0)'s drain: ``edge_stages + drain_offset``."""
        return self.edge_stages + self.drain_offset

    @property
    def result_offset(self) -> int:
        """Cycles from issuing a tile's last K step to its first result row being offered: the
        last column (C - 1) is the last one its lane dequantizes."""
        return self._result_offset(self.lanes)

    def _result_offset(self, lanes: int) -> int:
        return self.issue_to_drain + self.column_offset(self.cols - 1, lanes) + self.gdu_latency

    # -- identity ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        params = dataclasses.asdict(self)
        derived = {name: getattr(self, name) for name in (
            "act_bits", "pe_act_bits", "guard", "act_exp_bits", "band_rows", "product_bits", "psum_bits", "asum_bits", "dsum_bits", "group_interval",
            "gdu_unit_stages", "gdu_latency", "lanes", "columns_per_lane", "edge_stages", "drain_offset", "issue_to_drain",
            "result_offset")}
        return {"params": params, "derived": derived, "hash": self.hash}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @property
    def hash(self) -> str:
        """Short hash of the parameters that change the hardware (not the name).

        Fields added after the first release (``zero_mode``, ``scale_mode``, ``guard_bits``, ``row_groups``,
        ``gdu_stages``, ``gdu_lanes``) enter only when the hardware they describe differs from the
        first release's, so that the hashes (and cached builds) of older configurations stay the
        same while they build the same hardware. Derived defaults enter resolved: a change of
        DEFAULT_GUARD_BITS, DEFAULT_GDU_STAGES or of the lane formula changes the hash. So every
        configuration with pipelined GDUs or fewer lanes than columns (the defaults) has a new
        hash, and ``gdu_stages=0, gdu_lanes=C`` (the first release's GDUs) keeps the old one."""
        params = dataclasses.asdict(self)
        del params["name"]
        params["guard_bits"] = self.guard if self.fp_activation else None
        params["gdu_stages"] = self.gdu_unit_stages
        params["gdu_lanes"] = None if self.lanes == self.cols else self.lanes
        for field, default in (("zero_mode", "integer"), ("scale_mode", "flat"), ("guard_bits", None), ("row_groups", 1), ("gdu_stages", 0),
                               ("gdu_lanes", None), ("weight_format", "int"), ("scale_format", "fp16")):
            if params[field] == default:
                del params[field]
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]

    def replace(self, **changes) -> "MixPEConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict, name: str | None = None) -> "MixPEConfig":
        params = dict(data.get("params", data))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"unknown configuration parameter(s) {unknown}; allowed: {sorted(known)}")
        if name is not None and "name" not in params:
            params["name"] = name
        return cls(**params)


def from_preset(name: str) -> MixPEConfig:
    """Build the configuration named ``w<bits><act>-g<group>-<rows>x<cols>``."""
    match = _PRESET_PATTERN.match(name or "")
    if not match:
        raise ConfigError(f"preset={name!r}: expected a name like 'w4a8-g128-16x16' "
                          f"(w<weight bits><activation>-g<group>-<rows>x<cols>); known presets: {', '.join(PRESETS)}")
    return MixPEConfig(rows=int(match["rows"]), cols=int(match["cols"]), weight_bits=int(match["bits"]),
                       activation=ACTIVATIONS[match["act"]], group_size=int(match["group"]), name=name)


def load_config(preset: str | None = None, path: str | Path | None = None) -> MixPEConfig:
    """Configuration from a JSON file (``CONFIG=path``) or a preset name (``PRESET=name``)."""
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config={str(path)!r}: file not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"config={str(path)!r}: not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config={str(path)!r}: expected a JSON object")
        return MixPEConfig.from_dict(data, name=path.stem)
    return from_preset(preset or DEFAULT_PRESET)
