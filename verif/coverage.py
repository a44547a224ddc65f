"""Functional coverage of the ``mpgemm`` core: the bins, a hit database, merging and the report.

The bins come from the schedule (:mod:`hw.mpgemm`, :mod:`hw.issue`) and the numerics; the
monitor that samples them in the ``mpgemm`` bench is :mod:`verif.coverage_monitor`. Bin names are
dotted paths (``point.sub.bin``); a cross is a path with one part per crossed dimension:

``stall.<stream>.<kind>.<step>``
    A cycle in which a beat of ``act``, ``wgt`` or ``grp`` is due but does not transfer, by kind
    (``bubble``: valid low; ``backpressure``: valid high, ready low) and by the position of the next
    K step to issue (``tile_first``, ``group_first``, ``group_middle``, ``group_last``). ``grp``
    bubbles count only where the core takes a ``grp`` beat (a group's first step).
``stall.<stream>.during.<phase>``
    The same, while a tile drains (its last step issued, its first result row not yet offered:
    ``drain``) or while a result row is offered (``readout``).
``res.backpressure.<banks>``
    A result row offered and not taken, with one or both output banks busy.
``core.<stall>``
    All inputs of the next step offered and the step held back: ``bank`` (a tile's first step
    waits for its output bank), ``interval.group_first`` / ``interval.group_last`` (the group
    interval, configurations whose ``group_interval`` exceeds g).
``dequant_stall.<cause>``
    An interval stall on a configuration whose interval is set by ``rows`` (R > g), the GDU
    ``lane_work`` (fewer lanes than columns) or the parameter ``sweep`` (ping-pong registers).
``geometry.<shape>`` and ``tile.<groups>``
    Configurations run (R above, equal to or below g; fewer lanes than columns; row bands) and
    tiles of one or several groups.
``bands.<use>``
    Per row band of a tile (row bands only): ``full`` (every row has a nonzero activation and every
    column a nonzero scale), ``missing`` (none has), ``partial`` (the rest).
``act.<format>.<class>``, ``wgt.w<b>.<code>``, ``zero_point.w<b>.<code>``
    Activation classes per format (INT8: zero, min, max, negative, positive; floating point: zero,
    neg_zero, subnormal, normal, max_finite, inf, nan) and the zero, largest and other codes per
    weight width (zero points: integer zero mode with unsigned codes).
``result.<class>`` and ``gdu.<event>``
    FP32 result classes (zero, normal, inf, nan) and the GDU's ``overflow`` (an infinite result in
    a row without Inf/NaN activations) and ``zero_from_nonzero`` (a zero result whose row has a
    nonzero activation and whose column a nonzero scale: the flush-to-zero of an underflow, or an
    exact cancellation).

Bins keyed by a configuration property (activation format, weight width) exist for every value
that some run used; the others (:data:`STATIC_BINS`) always exist in a merged report.
Import-light (no torch, no Amaranth): the simulator imports it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path

from hw.config import MixPEConfig

__all__ = ["COVERAGE_DIR_ENV", "STEPS", "PHASES", "STATIC_BINS", "Coverage", "bins_for", "geometry_bins", "dequant_cause", "activation_classes",
           "merge_files"]

#: Environment variable naming the directory where each bench run writes its coverage database
#: (``make coverage`` sets it; unset, nothing is written).
COVERAGE_DIR_ENV = "MIXPE_COVERAGE_DIR"
#: Positions of the next K step to issue.
STEPS = ("tile_first", "group_first", "group_middle", "group_last")
#: Back-end phases crossed with the input stalls.
PHASES = ("drain", "readout")
INPUT_STREAMS = ("act", "wgt", "grp")
DEQUANT_CAUSES = ("rows", "lane_work", "sweep")
INT8_CLASSES = ("zero", "min", "max", "negative", "positive")
FLOAT_CLASSES = ("zero", "neg_zero", "subnormal", "normal", "max_finite", "inf", "nan")
RESULT_CLASSES = ("zero", "normal", "inf", "nan")


def _stall_bins() -> list[str]:
    bins = [f"stall.{s}.{kind}.{step}" for s in ("act", "wgt") for kind in ("bubble", "backpressure") for step in STEPS]
    bins += [f"stall.grp.bubble.{step}" for step in STEPS[:2]]
    bins += [f"stall.grp.backpressure.{step}" for step in STEPS]
    bins += [f"stall.{s}.during.{phase}" for s in INPUT_STREAMS for phase in PHASES]
    return bins


#: Bins every merged report holds, whatever configurations ran.
STATIC_BINS: tuple[str, ...] = tuple(
    _stall_bins()
    + [f"res.backpressure.{banks}" for banks in ("one_bank", "both_banks")]
    + ["core.bank", "core.interval.group_first", "core.interval.group_last"]
    + [f"dequant_stall.{cause}" for cause in DEQUANT_CAUSES]
    + [f"geometry.{shape}" for shape in ("rows_gt_group", "rows_eq_group", "rows_lt_group", "lanes_lt_cols", "row_bands")]
    + ["tile.one_group", "tile.several_groups"]
    + [f"bands.{use}" for use in ("full", "partial", "missing")]
    + [f"result.{cls}" for cls in RESULT_CLASSES]
    + ["gdu.overflow", "gdu.zero_from_nonzero"])


def dequant_cause(config: MixPEConfig) -> str | None:
    """Which term of :meth:`~hw.config.MixPEConfig.interval_with_lanes` sets a group interval above g
    (None when the interval is g): ``rows``, ``lane_work`` or ``sweep``."""
    if config.group_interval <= config.group_size:
        return None
    if config.group_interval == config.rows:
        return "rows"
    lanes = config.lanes
    work = (config.columns_per_lane - 1) * config.lane_period(lanes) + config.rows
    return "lane_work" if config.group_interval == work else "sweep"


def activation_classes(config: MixPEConfig) -> list[str]:
    """The coverage class of every activation code of ``config`` (index = raw code)."""
    fmt = config.act_format
    if not fmt.is_float:
        def int8(code: int) -> str:
            value = code - 256 if code >= 128 else code
            return {0: "zero", -128: "min", 127: "max"}.get(value, "negative" if value < 0 else "positive")
        return [int8(code) for code in range(256)]
    man_bits, exp_bits = fmt.man_bits, fmt.exp_bits
    exp_ones, man_ones = (1 << exp_bits) - 1, (1 << man_bits) - 1
    top_mantissa = man_ones - 1 if fmt.specials == "fn" else man_ones

    def fp(code: int) -> str:
        sign, exponent, mantissa = code >> (fmt.bits - 1), (code >> man_bits) & exp_ones, code & man_ones
        if fmt.specials == "ieee" and exponent == exp_ones:
            return "nan" if mantissa else "inf"
        if fmt.specials == "fn" and exponent == exp_ones and mantissa == man_ones:
            return "nan"
        if exponent == 0:
            return "subnormal" if mantissa else ("neg_zero" if sign else "zero")
        if exponent == fmt.max_exponent_field and mantissa == top_mantissa:
            return "max_finite"
        return "normal"
    return [fp(code) for code in range(1 << fmt.bits)]


def bins_for(config: MixPEConfig) -> list[str]:
    """The bins a run on ``config`` can hit (its part of the merged universe)."""
    bins = [b for b in _stall_bins() if "interval" not in b]
    bins += ["res.backpressure.one_bank", "res.backpressure.both_banks", "core.bank", "tile.one_group",
             "tile.several_groups", *(f"result.{cls}" for cls in RESULT_CLASSES if cls != "nan" or config.fp_activation),
             "gdu.overflow", "gdu.zero_from_nonzero"]
    if config.group_interval > config.group_size:
        bins += ["core.interval.group_first", "core.interval.group_last", f"dequant_stall.{dequant_cause(config)}"]
    if config.row_groups > 1:
        bins += [f"bands.{use}" for use in ("full", "partial", "missing")]
    fmt = config.act_format
    if fmt.is_float:
        bins += [f"act.{fmt.name}.{cls}" for cls in FLOAT_CLASSES if cls != "inf" or fmt.specials == "ieee"]
    else:
        bins += [f"act.{fmt.name}.{cls}" for cls in INT8_CLASSES]
    width = f"w{config.weight_bits}"
    bins += [f"wgt.{width}.{code}" for code in ("zero", "max", "other")]
    if config.zero_mode == "integer" and config.weight_encoding == "unsigned":
        bins += [f"zero_point.{width}.{code}" for code in ("zero", "max")]
    bins += geometry_bins(config)
    return bins


def geometry_bins(config: MixPEConfig) -> list[str]:
    """The ``geometry.*`` bins that running ``config`` hits."""
    rows, group = config.rows, config.group_size
    bins = ["geometry.rows_gt_group" if rows > group else "geometry.rows_eq_group" if rows == group
            else "geometry.rows_lt_group"]
    if config.lanes < config.cols:
        bins.append("geometry.lanes_lt_cols")
    if config.row_groups > 1:
        bins.append("geometry.row_bands")
    return bins


@dataclasses.dataclass
class Coverage:
    """Hit counts of a set of defined bins (one run, or several merged).

    ``hit`` on a bin outside ``hits`` raises ``KeyError``: a sampled event the bins do not
    describe is a bug of the monitor or of the bin list."""

    hits: dict[str, int] = dataclasses.field(default_factory=dict)
    runs: int = 0
    configs: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def defined(cls, bins: Iterable[str], config: str | None = None) -> Coverage:
        return cls(hits=dict.fromkeys(bins, 0), runs=1 if config else 0, configs=[config] if config else [])

    def hit(self, name: str, count: int = 1) -> None:
        self.hits[name] += count

    def sample(self, name: str) -> None:
        """Hit ``name`` if this run defines it (bins another configuration owns are skipped)."""
        if name in self.hits:
            self.hits[name] += 1

    @property
    def hit_bins(self) -> list[str]:
        return [name for name, count in self.hits.items() if count]

    @property
    def missed_bins(self) -> list[str]:
        return [name for name, count in self.hits.items() if not count]

    @property
    def percent(self) -> float:
        return 100.0 * len(self.hit_bins) / len(self.hits) if self.hits else 100.0

    def merge(self, other: Coverage) -> None:
        for name, count in other.hits.items():
            self.hits[name] = self.hits.get(name, 0) + count
        self.runs += other.runs
        self.configs += [name for name in other.configs if name not in self.configs]

    def to_json(self) -> dict:
        return {"runs": self.runs, "configs": self.configs, "hits": dict(sorted(self.hits.items()))}

    @classmethod
    def from_json(cls, record: dict) -> Coverage:
        return cls(hits={str(k): int(v) for k, v in record["hits"].items()}, runs=int(record.get("runs", 1)),
                   configs=list(record.get("configs", [])))

    def summary_line(self) -> str:
        """``N of M bins hit (P %)``, and the bins not hit."""
        missed = self.missed_bins
        text = f"{len(self.hit_bins)} of {len(self.hits)} bins hit ({self.percent:.1f} %)"
        return text + (f"; not hit: {' '.join(missed)}" if missed else "")


def merge_files(paths: Iterable[Path]) -> Coverage:
    """The merge of the coverage databases ``paths`` (JSON written by the bench) over
    :data:`STATIC_BINS`."""
    merged = Coverage.defined(STATIC_BINS)
    for path in sorted(paths):
        merged.merge(Coverage.from_json(json.loads(Path(path).read_text())))
    return merged
