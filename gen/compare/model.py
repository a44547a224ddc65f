"""One design on one workload phase: iso-area shape search, then the bandwidth-aware cycle model
(:mod:`golden.memory`) and the energy split.

Mapping: a GEMM (m x k) @ (k x n) on R x C with ``row_groups`` bands of R / row_groups token rows:
every band computes one (token block, column block) pair, so a tile holds ``row_groups`` of them
and the weight stream carries ``row_groups x C x b`` bits per K step, plus the group parameters.
K is padded to whole groups of g (the grouped designs) and the tiles stream back to back; the
GEMMs of a layer run one after the other. The weight stream comes through the DRAM interface at
its bits per core cycle, multiplied by the reuse factor (weights re-read from the buffer by later
row tiles), and the whole DRAM traffic of the GEMM bounds its time from below.
"""

from __future__ import annotations

import dataclasses
import functools
import math

from gen.compare.designs import Costs
from gen.compare.workloads import Gemm
from golden.memory import ArrayTiming, MemorySystem, Throttle, gemm_traffic, stream_cycles, uniform_stream_cycles
from hw.config import MixPEConfig
from hw.errors import MixPEError

__all__ = ["CompareError", "Shape", "Result", "evaluate", "search", "DIMS"]


class CompareError(MixPEError, ValueError):
    """A bad ``mixpe compare`` input; the message names the parameter, its value and what is allowed."""

#: Array rows and columns the search tries.
DIMS = (8, 16, 24, 32, 48, 64, 96, 128)
#: Output bits written per element (FP16, the next layer's input).
OUT_BITS = 16
#: Candidates of the quick estimate that the exact model then ranks.
FINALISTS = 2
#: Shapes this much slower than the fastest still compete on energy.
TIME_TOLERANCE = 0.01
#: Groups simulated exactly per stream before the steady state is extrapolated (a few cycles' error).
FINAL_EXACT_GROUPS = 4000


@dataclasses.dataclass(frozen=True)
class Shape:
    rows: int
    cols: int
    lanes: int  # GDU lanes (dequant_fp: token-scale multipliers); 0 for the FP16 array
    row_groups: int


@dataclasses.dataclass
class Result:
    shape: Shape
    area_um2: float
    cycles: int
    compute_cycles: int
    seconds: float
    energy_j: dict[str, float]
    exact: bool


@functools.lru_cache(maxsize=None)
def _config(reference: MixPEConfig, shape: Shape | None, rows: int, cols: int, lanes: int | None) -> MixPEConfig:
    return reference.replace(rows=rows, cols=cols, gdu_lanes=lanes,
                             row_groups=shape.row_groups if shape else 1, name=f"cmp-{rows}x{cols}")


def default_lanes(costs: Costs, rows: int, cols: int) -> int:
    return _config(costs.reference, None, rows, cols, None).lanes


def _timing(costs: Costs, shape: Shape, k: int) -> tuple[ArrayTiming, int, int]:
    """(schedule, group size g, groups per tile) of a GEMM with reduction ``k``."""
    if costs.spec.grouped:
        config = _config(costs.reference, shape, shape.rows, shape.cols, shape.lanes)
        g = config.group_size
        return ArrayTiming.of(config), g, -(-k // g)
    # A plain output-stationary array: the whole K as one group, results skewed over the columns.
    return ArrayTiming(group_size=k, group_interval=k, result_offset=shape.cols + 1, rows=shape.rows), k, 1


def _mapping(shape: Shape, gemm: Gemm) -> int:
    """Tiles of ``gemm`` (all its ``count`` instances)."""
    band_rows = shape.rows // shape.row_groups
    jobs = -(-gemm.m // band_rows) * -(-gemm.n // shape.cols)
    return -(-jobs // shape.row_groups) * gemm.count


def _gemm(costs: Costs, memory: MemorySystem, shape: Shape, gemm: Gemm, quick: bool):
    spec = costs.spec
    timing, g, groups = _timing(costs, shape, gemm.k)
    tiles = _mapping(shape, gemm)
    beat_bits = shape.row_groups * shape.cols * spec.weight_bits
    group_bits = shape.row_groups * shape.cols * spec.param_bits if spec.param_bits else 0
    steps = tiles * groups * g
    array_weight_bits = tiles * groups * (g * beat_bits + group_bits)
    bits_per_weight = spec.weight_bits + spec.param_bits / costs.reference.group_size
    traffic = gemm_traffic(memory, m=gemm.m, k=gemm.k, n=gemm.n, weight_bits=bits_per_weight, act_bits=spec.act_bits,
                           out_bits=OUT_BITS)
    dram_weight = traffic.weight_bits * gemm.count
    dram_bits = traffic.dram_bits * gemm.count
    link = memory.dram.bits_per_core_cycle(costs.clock_mhz)
    rate = max(1, math.floor(link * array_weight_bits / dram_weight))
    if quick:
        # Three tiles give the unthrottled period; the throttled stream lasts at least its bits over the rate.
        head = stream_cycles(timing, [groups] * min(tiles, 3))
        period = head.tile_done[-1] - head.tile_done[-2] if tiles >= 3 else 0
        compute = head.span_cycles + period * max(0, tiles - 3)
        span = max(compute, -(-array_weight_bits // rate) + timing.result_offset + timing.rows)
        exact = False
    else:
        stream = uniform_stream_cycles(timing, tiles, groups, beat_bits=beat_bits, group_bits=group_bits,
                                       throttle=Throttle.constant(rate), exact_groups=FINAL_EXACT_GROUPS)
        compute = uniform_stream_cycles(timing, tiles, groups, exact_groups=FINAL_EXACT_GROUPS).cycles
        span, exact = stream.span_cycles, stream.exact
    cycles = max(span, -(-dram_bits // link))
    array_act_bits = steps * shape.rows * spec.act_bits
    buffers_pj = (memory.weights.pj_per_bit * (array_weight_bits + dram_weight)
                  + memory.activations.pj_per_bit * (array_act_bits + traffic.activation_bits * gemm.count)
                  + memory.outputs.pj_per_bit * gemm.m * gemm.n * gemm.count * (32 + OUT_BITS))
    core_pj = costs.core_pj(shape.rows, shape.cols, steps, max(0, cycles - steps))
    return cycles, compute, core_pj, buffers_pj, dram_bits * memory.dram.pj_per_bit, exact


def evaluate(costs: Costs, memory: MemorySystem, shape: Shape, gemms: list[Gemm], *, quick: bool = False) -> Result:
    """Cycles, seconds and energy of ``gemms`` run one after the other on ``shape``; ``quick``: an
    estimate for the search (the unthrottled period of three tiles, the weight bits over the rate)."""
    totals = [0, 0, 0.0, 0.0, 0.0]
    exact = True
    for gemm in gemms:
        *values, gemm_exact = _gemm(costs, memory, shape, gemm, quick)
        totals = [t + v for t, v in zip(totals, values)]
        exact &= gemm_exact
    cycles, compute, core_pj, buffers_pj, dram_pj = totals
    seconds = cycles / (costs.clock_mhz * 1e6)
    area = costs.area_um2(shape.rows, shape.cols, max(shape.lanes, 1))
    static_j = (costs.leakage_mw_per_um2 * area + memory.dram.static_mw) * 1e-3 * seconds
    energy = {"core": core_pj * 1e-12, "buffers": buffers_pj * 1e-12, "dram": dram_pj * 1e-12, "static": static_j}
    energy["total"] = sum(energy.values())
    return Result(shape=shape, area_um2=area, cycles=cycles, compute_cycles=compute, seconds=seconds,
                  energy_j=energy, exact=exact)


def candidates(costs: Costs, budget_um2: float):
    """The shapes on the area budget's frontier: R x C from :data:`DIMS` that fit while neither the
    next R nor the next C does; the default GDU lanes and half of them (GDU designs; dequant_fp's
    multipliers follow MixPE's default); row groups 1, 2, 4, ... dividing R."""
    def lane_options(rows, cols):
        if not (costs.spec.grouped or costs.lane_datapath_um2):
            return [0]
        lanes = default_lanes(costs, rows, cols)
        return sorted({lanes, max(1, lanes // 2)}) if costs.spec.grouped else [lanes]

    def fits(rows, cols, pick):
        options = lane_options(rows, cols)
        lanes = options[0] if pick == "fewest" else options[-1]
        return costs.area_um2(rows, cols, max(lanes, 1)) <= budget_um2, lanes

    for pick in ("fewest", "default"):
        for i, rows in enumerate(DIMS):
            for j, cols in enumerate(DIMS):
                ok, lanes = fits(rows, cols, pick)
                if not ok:
                    continue
                if i + 1 < len(DIMS) and fits(DIMS[i + 1], cols, pick)[0]:
                    continue
                if j + 1 < len(DIMS) and fits(rows, DIMS[j + 1], pick)[0]:
                    continue
                row_groups = 1
                while rows % row_groups == 0 and row_groups <= rows:
                    yield Shape(rows, cols, lanes, row_groups)
                    row_groups *= 2


def search(costs: Costs, memory: MemorySystem, gemms: list[Gemm], budget_um2: float) -> Result:
    """The shape within ``budget_um2`` that runs ``gemms`` fastest, and among those within
    :data:`TIME_TOLERANCE` of the fastest the one that takes the least energy (in weight-bound
    decode many shapes are equally fast): every candidate by the quick estimate, the best few
    exactly."""
    quick = [evaluate(costs, memory, shape, gemms, quick=True) for shape in set(candidates(costs, budget_um2))]
    if not quick:
        raise CompareError(f"area_mm2={budget_um2 / 1e6:.3f}: no {costs.spec.name} array of at least "
                           f"{DIMS[0]} x {DIMS[0]} fits; give a larger budget")
    fastest = min(r.seconds for r in quick)
    near = sorted((r for r in quick if r.seconds <= fastest * (1 + TIME_TOLERANCE)), key=lambda r: r.energy_j["total"])
    shortlist = {r.shape: r for r in [*sorted(quick, key=lambda r: r.seconds)[:FINALISTS], *near[:FINALISTS]]}
    finals = [evaluate(costs, memory, shape, gemms) for shape in shortlist]
    best = min(r.seconds for r in finals)
    return min((r for r in finals if r.seconds <= best * (1 + TIME_TOLERANCE)), key=lambda r: r.energy_j["total"])
