"""Bandwidth-aware cycle model: the MixPE core's tile stream when the weights arrive through a
throttled interface, and the memory system (DRAM, on-chip buffers) around it.

**Throttled stream.** A K step carries ``beat_bits = row_groups x C x b`` bits of weight codes;
a group's parameters (``group_bits``) travel on the same interface ahead of the group's first
step. The interface delivers ``pattern[c mod P]`` bits in cycle c (a :class:`Throttle`), into a
buffer deep enough never to stop it (the DRAM streams ahead). A step can issue in cycle c only
when every bit it and the steps before it need has arrived by the end of c. Otherwise the core
follows :mod:`hw.issue`'s rules, which :mod:`golden.cycles` replays for free-flowing inputs:

* a group's first step issues ``group_interval`` cycles after the previous group's first step;
* when ``group_interval > g`` its last step also issues ``group_interval`` cycles after the
  previous group's last step (the rule that only input stalls inside a group can make bind);
* a tile's first step waits for its output bank; result rows leave ``result_offset`` cycles after
  the tile's last step, one per cycle, tiles in order.

Inside a group the steps issue at ``max(first + j, ready(j))``, so only the group's first and last
steps need computing. :func:`stream_cycles` is exact for any periodic pattern (``tests/verif/
test_throttle.py`` checks it against the RTL); with no throttle it equals
:func:`golden.cycles.predict_cycles`. ``drain_per_tile`` makes each tile wait for the previous
tile's last result, the schedule SCALE-Sim counts for output-stationary arrays.

**Memory system** (:class:`MemorySystem`): DRAM width, clock and energy per bit, three on-chip
buffers with capacity and energy per bit accessed. Every default is an assumption with its
source in :data:`ASSUMPTIONS`. :func:`gemm_traffic` picks the loop order that moves the fewest
DRAM bits for a GEMM given the buffers.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Sequence
from fractions import Fraction

from hw.config import MixPEConfig

__all__ = ["ArrayTiming", "Throttle", "StreamReport", "stream_cycles", "uniform_stream_cycles",
           "DramInterface", "Buffer", "MemorySystem", "GemmTraffic", "gemm_traffic", "sram_pj_per_bit",
           "bitfusion_os_cycles", "scalesim_os_cycles", "ASSUMPTIONS"]

#: Streams longer than this many groups are simulated for a prefix and extrapolated at the
#: steady per-tile increment (:func:`uniform_stream_cycles`).
EXACT_GROUP_LIMIT = 20_000


@dataclasses.dataclass(frozen=True)
class ArrayTiming:
    """The schedule parameters a tile stream depends on (cycles; rows = result rows per tile)."""
    group_size: int
    group_interval: int
    result_offset: int
    rows: int

    @classmethod
    def of(cls, config: MixPEConfig) -> "ArrayTiming":
        return cls(config.group_size, config.group_interval, config.result_offset, config.rows)


@dataclasses.dataclass(frozen=True)
class Throttle:
    """A periodic delivery pattern: ``pattern[c mod P]`` bits arrive in cycle c (c >= 0)."""
    pattern: tuple[int, ...]

    def __post_init__(self):
        if not self.pattern or any(not isinstance(b, int) or b < 0 for b in self.pattern) or not sum(self.pattern):
            raise ValueError(f"pattern={self.pattern!r}: need non-negative integer bits per cycle, not all 0")
        object.__setattr__(self, "_prefix", tuple(_prefix_sums(self.pattern)))

    @classmethod
    def constant(cls, bits_per_cycle: int) -> "Throttle":
        return cls((int(bits_per_cycle),))

    @property
    def period_bits(self) -> int:
        return self._prefix[-1]

    def delivered(self, cycles: int) -> int:
        """Bits delivered in cycles 0 .. cycles - 1."""
        periods, rest = divmod(cycles, len(self.pattern))
        return periods * self.period_bits + self._prefix[rest]

    def ready_cycle(self, bits: int) -> int:
        """The first cycle by whose end ``bits`` (> 0) bits have arrived."""
        periods, rest = divmod(bits - 1, self.period_bits)
        # first n in 1..P with prefix[n] > rest, i.e. >= rest + 1
        n = bisect.bisect_left(self._prefix, rest + 1)
        return periods * len(self.pattern) + n - 1


def _prefix_sums(values) -> list[int]:
    sums = [0]
    for v in values:
        sums.append(sums[-1] + v)
    return sums


@dataclasses.dataclass(frozen=True)
class StreamReport:
    """Timing of a tile stream (cycles). ``cycles`` counts from the first issued step to the last
    result row inclusive (as :class:`golden.cycles.CycleReport` and the RTL benches do);
    ``span_cycles`` from cycle 0, when the interface starts delivering."""
    cycles: int
    span_cycles: int
    first_issue: int
    issue_cycles: int
    tile_done: tuple[int, ...]
    exact: bool = True


class _State:
    """The scheduler's state between groups (absolute cycles)."""

    def __init__(self, timing: ArrayTiming):
        self.next_issue = 0
        self.last_group_start = -timing.group_interval
        self.last_group_end = -timing.group_interval
        self.bank_free = [0, 0]
        self.reader_free = 0
        self.fetched_bits = 0
        self.tiles = 0
        self.first_issue: int | None = None


def _run_tile(state: _State, timing: ArrayTiming, groups: int, beat_bits: int, group_bits: int,
              throttle: Throttle | None, drain_per_tile: bool) -> int:
    """Advance ``state`` by one tile of ``groups`` groups; returns its last result row's cycle."""
    g, interval = timing.group_size, timing.group_interval
    bank = state.tiles % 2
    for group in range(groups):
        start = max(state.next_issue, state.last_group_start + interval)
        if group == 0:
            start = max(start, state.bank_free[bank])
            if drain_per_tile:
                start = max(start, state.reader_free)
        end = start + g - 1
        if interval > g:
            end = max(end, state.last_group_end + interval)
        if throttle is not None:
            base = state.fetched_bits + group_bits
            first_ready = throttle.ready_cycle(base + beat_bits)
            start = max(start, first_ready)
            end = max(end, start + g - 1, _last_step_ready(throttle, base, beat_bits, g))
            state.fetched_bits = base + g * beat_bits
        if state.first_issue is None:
            state.first_issue = start
        state.last_group_start, state.last_group_end, state.next_issue = start, end, end + 1
    first_row = max(state.last_group_end + timing.result_offset, state.reader_free)
    last_row = first_row + timing.rows - 1
    state.reader_free = state.bank_free[bank] = last_row + 1
    state.tiles += 1
    return last_row


def _last_step_ready(throttle: Throttle, base: int, beat_bits: int, g: int) -> int:
    """Earliest cycle of a group's last step given its steps' arrivals: max over j of
    ``ready(j) + g - 1 - j``. With a constant rate ``ready(j) - j`` is monotonic (falling when a beat
    fits in a cycle's delivery, rising otherwise), so an end point holds the maximum."""
    if len(throttle.pattern) == 1:
        if beat_bits <= throttle.pattern[0]:
            return throttle.ready_cycle(base + beat_bits) + g - 1
        return throttle.ready_cycle(base + g * beat_bits)
    return max(throttle.ready_cycle(base + (j + 1) * beat_bits) + g - 1 - j for j in range(g))


def stream_cycles(timing: ArrayTiming | MixPEConfig, groups_per_tile: Sequence[int], *, beat_bits: int = 0,
                  group_bits: int = 0, throttle: Throttle | None = None, drain_per_tile: bool = False) -> StreamReport:
    """Exact timing of tiles of ``groups_per_tile[i]`` groups streamed back to back, the weight
    interface delivering ``throttle`` (``None``: unlimited; see the module docstring)."""
    if isinstance(timing, MixPEConfig):
        timing = ArrayTiming.of(timing)
    if not groups_per_tile or any(not isinstance(n, int) or n < 1 for n in groups_per_tile):
        raise ValueError(f"groups_per_tile={list(groups_per_tile)[:8]!r}: need at least one tile, each of >= 1 group")
    if throttle is not None and beat_bits < 1:
        raise ValueError(f"beat_bits={beat_bits!r}: a throttled stream needs the bits of one K step (>= 1)")
    state = _State(timing)
    done = tuple(_run_tile(state, timing, n, beat_bits, group_bits, throttle, drain_per_tile) for n in groups_per_tile)
    return StreamReport(cycles=done[-1] - state.first_issue + 1, span_cycles=done[-1] + 1,
                        first_issue=state.first_issue, issue_cycles=state.next_issue - state.first_issue,
                        tile_done=done)


def uniform_stream_cycles(timing: ArrayTiming | MixPEConfig, tiles: int, groups: int, *,
                          exact_groups: int = EXACT_GROUP_LIMIT, **kwargs) -> StreamReport:
    """:func:`stream_cycles` of ``tiles`` equal tiles. Beyond :data:`EXACT_GROUP_LIMIT` groups the
    stream is simulated for a prefix whose second half sets the steady per-tile increment, and the
    rest is extrapolated (``exact=False``; the error is below one tile's rounding jitter, a few
    cycles, checked in the tests). ``exact_groups`` lowers that limit for quick estimates."""
    if tiles * groups <= exact_groups:
        return stream_cycles(timing, [groups] * tiles, **kwargs)
    prefix = max(8, exact_groups // groups)
    prefix += prefix % 2
    report = stream_cycles(timing, [groups] * prefix, **kwargs)
    half = prefix // 2
    step = Fraction(report.tile_done[-1] - report.tile_done[half - 1], prefix - half)
    last = report.tile_done[-1] + math.ceil(step * (tiles - prefix))
    issue_extra = math.ceil(step * (tiles - prefix))
    return StreamReport(cycles=last - report.first_issue + 1, span_cycles=last + 1, first_issue=report.first_issue,
                        issue_cycles=report.issue_cycles + issue_extra, tile_done=(last,), exact=False)


# -- memory system ------------------------------------------------------------------------------

#: Every number of the memory system that is not measured here, with its source.
ASSUMPTIONS = {
    "dram_interface": "1024-bit interface at 500 MHz: the MixPE authors' simulator (conf_*.ini: if_width, "
                      "frequency; github yuzhang712/mixpe_simulator)",
    "dram_energy": "20.3 pJ/bit: DRAM 1.3-2.6 nJ per 64-bit access, low end (M. Horowitz, 'Computing's energy "
                   "problem', ISSCC 2014, 45 nm); the authors' simulator uses 0.63 pJ/bit read, 0.77 write",
    "dram_static": "484.6 mW background power: the authors' simulator's 'static' term (cycles x 484.615/500 nJ "
                   "at 500 MHz)",
    "buffers": "weight 128 KiB, activation 256 KiB, output 128 KiB, double-buffered: the authors' simulator "
               "(Wgt_SRAM, Act_SRAM, Out_SRAM)",
    "sram_energy": "per bit accessed, log-interpolated in capacity from Horowitz ISSCC 2014 (45 nm): 64-bit "
                   "read of an 8 KB SRAM 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ; writes cost as reads",
    "prefetch": "the DRAM streams ahead into the weight buffer without stopping (no back-pressure); "
                "weights re-read from the buffer by later row tiles raise the weight stream's rate by the "
                "reuse factor, spread evenly over the tiles",
}

#: (capacity in bytes, pJ per 64-bit access) from Horowitz, ISSCC 2014, 45 nm.
_SRAM_POINTS = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))


def sram_pj_per_bit(capacity_bytes: int) -> float:
    """Energy per bit read or written of an SRAM of ``capacity_bytes`` (see :data:`ASSUMPTIONS`)."""
    if capacity_bytes <= 0:
        raise ValueError(f"capacity_bytes={capacity_bytes!r}: must be positive")
    points = _SRAM_POINTS
    lo, hi = (points[0], points[1]) if capacity_bytes <= points[1][0] else (points[1], points[2])
    frac = math.log(capacity_bytes / lo[0]) / math.log(hi[0] / lo[0])
    return lo[1] * (hi[1] / lo[1]) ** frac / 64


@dataclasses.dataclass(frozen=True)
class DramInterface:
    """Off-chip interface: ``width_bits`` per DRAM cycle at ``clock_mhz``."""
    width_bits: int = 1024
    clock_mhz: float = 500.0
    pj_per_bit: float = 20.3
    static_mw: float = 484.615

    def bits_per_core_cycle(self, core_mhz: float) -> int:
        """Bits delivered per core cycle, rounded down (a constant :class:`Throttle`)."""
        return max(1, int(self.width_bits * self.clock_mhz / core_mhz))


@dataclasses.dataclass(frozen=True)
class Buffer:
    """An on-chip buffer: capacity (bytes) and energy per bit accessed (pJ)."""
    name: str
    capacity_bytes: int

    @property
    def pj_per_bit(self) -> float:
        return sram_pj_per_bit(self.capacity_bytes)


@dataclasses.dataclass(frozen=True)
class MemorySystem:
    dram: DramInterface = DramInterface()
    weights: Buffer = Buffer("weights", 128 * 1024)
    activations: Buffer = Buffer("activations", 256 * 1024)
    outputs: Buffer = Buffer("outputs", 128 * 1024)


@dataclasses.dataclass(frozen=True)
class GemmTraffic:
    """DRAM bits of one GEMM under the chosen loop order."""
    order: str
    weight_bits: int
    activation_bits: int
    output_bits: int

    @property
    def dram_bits(self) -> int:
        return self.weight_bits + self.activation_bits + self.output_bits


def gemm_traffic(memory: MemorySystem, *, m: int, k: int, n: int, weight_bits: float, act_bits: int,
                 out_bits: int = 16) -> GemmTraffic:
    """DRAM traffic of an (m x k) @ (k x n) GEMM with weights of ``weight_bits`` per element (group
    parameters included), activations of ``act_bits`` and outputs of ``out_bits``: each operand is
    loaded once when it fits half its buffer (double buffering), else once per block of the other
    operand that fits half of that one's buffer; the cheaper of the two loop orders (weight blocks
    outer, or activation blocks outer). Outputs are written once."""
    weights = k * n * weight_bits
    acts = m * k * act_bits
    cols_per_block = max(1, int(memory.weights.capacity_bytes * 8 / 2 // max(k * weight_bits, 1)))
    rows_per_block = max(1, int(memory.activations.capacity_bytes * 8 / 2 // max(k * act_bits, 1)))
    options = {
        "weights outer": (weights, acts if 2 * acts <= memory.activations.capacity_bytes * 8
                          else acts * math.ceil(n / cols_per_block)),
        "activations outer": (weights if 2 * weights <= memory.weights.capacity_bytes * 8
                              else weights * math.ceil(m / rows_per_block), acts),
    }
    order = min(options, key=lambda name: sum(options[name]))
    w, a = options[order]
    return GemmTraffic(order=order, weight_bits=round(w), activation_bits=round(a), output_bits=m * n * out_bits)


# -- peers' cycle formulas (cross-checks) -------------------------------------------------------

def bitfusion_os_cycles(batch: int, out_channels: int, in_channels: int, rows: int, cols: int, *,
                        pmax: int = 8, act_prec: int = 8, weight_prec: int = 8) -> int:
    """The MixPE authors' simulator (BitFusion/DNNWeaver fork), output-stationary compute cycles:
    ``ceil(B / (N pf_a)) * ceil(OC / (M pf_w)) * IC`` with ``pf = pmax / prec`` (fused PEs)."""
    pf_a, pf_w = pmax // act_prec, pmax // weight_prec
    return math.ceil(batch / (rows * pf_a)) * math.ceil(out_channels / (cols * pf_w)) * in_channels


def scalesim_os_cycles(m: int, n: int, k: int, rows: int, cols: int) -> int:
    """SCALE-Sim's output-stationary count: every fold (tile) fills, computes K and drains,
    ``ceil(M/R) * ceil(N/C) * (K + R + C - 2)`` (compute cycles without memory stalls)."""
    return math.ceil(m / rows) * math.ceil(n / cols) * (k + rows + cols - 2)
