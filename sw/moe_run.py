"""Run one MoE layer on an execution backend and report cycles, utilization and errors.

What runs where, per active expert e with routed tokens T_e (the shared expert: all tokens):

* host, float32 (as transformers): router logits, softmax, top-k, renormalisation (:func:`sw.moe.route`);
* host: x_e = hidden[T_e] quantized to INT8 per token (``quantize_activations_int8``: scale =
  absmax / 127 in FP32, codes round-half-even);
* **array**, stage 1: ``g = gate(x_e)``, ``u = up(x_e)`` (bit-exact FP32 results);
* host, float64: ``h = silu(g) * u``, then INT8 per token again;
* **array**, stage 2: ``d = down(h)``;
* host, float64: ``y[t] = sum_e w[t, e] * d_e[t]`` (+ ``sigmoid(x @ shared_gate.T) * d_shared``).

The two host steps around the array per expert (the nonlinearity, a down bias) are a
:class:`HostSteps`; :mod:`sw.gpt_oss` gives gpt-oss's (biases, clamped SwiGLU) and its own routing,
and reports through :func:`layer_report`.

Backends (one interface, :class:`Backend`):

``golden``
    Each expert GEMM as a whole through ``golden.mpgemm.bitexact_mpgemm`` (fast, whole layers);
    cycles are the cycle model's prediction of the mapped schedule.
``model``
    The mapped schedule executed tile by tile: each band's operands are cut out of the expert
    GEMMs exactly as they go to the packer, computed with the bit-exact model and scattered back
    through the work items' coordinates (so a mapper fault shows as a difference from golden);
    cycles from the cycle model (exact for stall-free streams).
``rtl``
    Each stage's banded tiles in one simulation of the ``mpgemm`` RTL under Verilator (the cocotb
    scoreboard checks every result beat bit-exactly against the golden tile and the cycle count
    against the cycle model); cycles are measured.

Errors reported (:func:`run_moe`): ``max_abs_diff_vs_golden`` (the layer output against the
golden backend's); ``max_rel_err_vs_float``: max |y - y_f| / max |y_f| against the float64
forward of the *unquantized* layer with the same routing (quantization error, a measured figure,
not bounded); and the bound check: every GEMM result is within ``golden.mpgemm.error_bound`` of
the float64 product of the same operands (weights read by ``golden.codes.real_weights``, so FP4
codes too), and the layer output within
``sum_e |w[t, e]| * bound_down_e[t]`` (+ the float64 rounding of the combine) of the same
combine over the float64 reference down GEMMs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from golden.cycles import utilization
from golden.mpgemm import bitexact_mpgemm, error_bound
from golden.numerics import FP64_UNIT_ROUNDOFF, gamma
from golden.operands import QuantizedWeights, quantize_activations_int8
from golden.codes import real_weights
from hw.config import MixPEConfig
from sw.moe import MoEError, MoELayer, QuantizedMoE, Routing, float_forward, quantize_layer, route, shared_expert_scale
from sw.moe_mapper import GemmShape, StageSchedule, WorkItem, expert_schedules, layer_shapes, map_layer, map_stage
from sw.settings import DEFAULT_MOE_CONFIG, MOE_BACKENDS as BACKENDS, MoESpec

__all__ = ["BACKENDS", "MoESpec", "DEFAULT_MOE_CONFIG", "GemmJob", "StageRun", "Backend", "GoldenBackend",
           "ModelBackend", "HOST_BACKENDS", "make_backend", "LayerRun", "HostSteps", "execute_layer", "run_moe",
           "layer_report"]


@dataclasses.dataclass(frozen=True)
class GemmJob:
    """The operands of one expert GEMM: x int64 (M, K) INT8 codes, act_scale float32 (M,), weights N x K."""
    shape: GemmShape
    x: torch.Tensor
    act_scale: torch.Tensor
    weights: QuantizedWeights


@dataclasses.dataclass
class StageRun:
    """A stage's results: float32 (M, N) per job, cycles (measured or predicted) and run details."""
    outputs: list[torch.Tensor]
    cycles: int
    details: dict


def band_operands(job: GemmJob, item: WorkItem) -> tuple[torch.Tensor, torch.Tensor, QuantizedWeights]:
    """(x (rows, K), act_scale (rows,), weights of channels col0 .. col0+cols-1) of one work item."""
    rows, cols = slice(item.row0, item.row0 + item.rows), slice(item.col0, item.col0 + item.cols)
    w = job.weights
    return job.x[rows], job.act_scale[rows], QuantizedWeights(
        codes=w.codes[cols], scales=w.scales[cols], zeros=None if w.zeros is None else w.zeros[cols],
        offsets=None if w.offsets is None else w.offsets[cols])


def place_block(outputs: list[torch.Tensor], item: WorkItem, block: torch.Tensor) -> None:
    """Write a work item's (rows, cols) result block into its GEMM's output."""
    outputs[item.gemm][item.row0:item.row0 + item.rows, item.col0:item.col0 + item.cols] = block


class Backend:
    """Runs the GEMMs of one stage (independent expert GEMMs) given their mapped schedule."""
    name = ""
    cycles_source = "cycle_model"

    def __init__(self, config: MixPEConfig):
        self.config = config

    def run_stage(self, jobs: Sequence[GemmJob], schedule: StageSchedule) -> StageRun:
        raise NotImplementedError


class GoldenBackend(Backend):
    name = "golden"

    def run_stage(self, jobs, schedule):
        outputs = [bitexact_mpgemm(self.config, job.x, job.act_scale, job.weights) for job in jobs]
        return StageRun(outputs=outputs, cycles=schedule.cycles, details={"tiles": len(schedule.tiles)})


class ModelBackend(Backend):
    name = "model"

    def run_stage(self, jobs, schedule):
        outputs = [torch.full((job.shape.m, job.shape.n), float("nan"), dtype=torch.float32) for job in jobs]
        for tile in schedule.tiles:
            for item in tile.bands:
                place_block(outputs, item, bitexact_mpgemm(self.config, *band_operands(jobs[item.gemm], item)))
        return StageRun(outputs=outputs, cycles=schedule.cycles, details={"tiles": len(schedule.tiles)})


#: The host-side backends; ``rtl`` is :class:`verif.backends.RtlBackend` (the simulator lives above ``sw``).
HOST_BACKENDS = {"golden": GoldenBackend, "model": ModelBackend}


def make_backend(name: str, config: MixPEConfig) -> Backend:
    """A host-side backend by name (``golden`` or ``model``); the ``rtl`` one comes from
    :func:`verif.backends.make_backend`, which knows all of :data:`BACKENDS`."""
    if name not in HOST_BACKENDS:
        raise MoEError(f"backend={name!r}: allowed values here are {sorted(HOST_BACKENDS)} "
                       f"(all of {BACKENDS} through verif.backends.make_backend)")
    return HOST_BACKENDS[name](config)


@dataclasses.dataclass
class LayerRun:
    """A layer executed on one backend: output float64 (T, H), and per stage its jobs, schedule and run."""
    output: torch.Tensor
    jobs: tuple[list[GemmJob], list[GemmJob]]
    schedules: tuple[StageSchedule, StageSchedule]
    runs: tuple[StageRun, StageRun]

    @property
    def cycles(self) -> int:
        return sum(run.cycles for run in self.runs)


def _expert_tokens(routing: Routing, tokens: int, shared: bool) -> list[tuple[int, torch.Tensor]]:
    """(expert, token indices) of every expert with tokens; the shared expert (index E) gets all."""
    batches = [(e, routing.tokens(e)) for e in range(routing.num_experts)]
    if shared:
        batches.append((routing.num_experts, torch.arange(tokens)))
    return [(e, idx) for e, idx in batches if len(idx)]


def _job(expert: int, matrix: str, x_real: torch.Tensor, weights: QuantizedWeights) -> GemmJob:
    codes, scale = quantize_activations_int8(x_real)
    n, k = weights.codes.shape
    return GemmJob(GemmShape(expert, matrix, codes.shape[0], n, k), codes, scale, weights)


def _combine(routing: Routing, shared_scale: torch.Tensor | None, batches, values) -> torch.Tensor:
    """float64 (T, H): sum over experts of routing weight (shared expert: ``shared_scale``) x output."""
    out = torch.zeros(routing.selected.shape[0], values[0].shape[1], dtype=torch.float64)
    for (expert, tokens), value in zip(batches, values):
        factor = shared_scale if expert == routing.num_experts else routing.token_weights(expert).double()
        out.index_add_(0, tokens, factor[:, None] * value.double())
    return out


class HostSteps:
    """What the host computes for an expert around the array: the nonlinearity between the stages
    and the down projection's bias. Here ``silu(gate) * up`` and no bias (Mixtral, Qwen2-MoE, OLMoE)."""

    def activation(self, expert: int, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """float64 (M, F) input of down from the array's float32 gate and up results (M, F)."""
        return F.silu(gate.double()) * up.double()

    def down_bias(self, expert: int) -> torch.Tensor | None:
        """float64 (H,) added to the down result before the combine, or None."""
        return None


def _biased(host: HostSteps, batches, values: list[torch.Tensor]) -> list[torch.Tensor]:
    """The down results with their experts' biases added (float64)."""
    biases = [host.down_bias(e) for e, _ in batches]
    return [value.double() if bias is None else value.double() + bias for value, bias in zip(values, biases)]


def execute_layer(config: MixPEConfig, quantized: QuantizedMoE, hidden: torch.Tensor, routing: Routing,
                  backend: Backend, shared_scale: torch.Tensor | None = None,
                  host: HostSteps | None = None) -> LayerRun:
    """The quantized layer on ``backend`` for hidden float32 (T, H) (see the module docstring for
    what runs where). ``shared_scale`` float64 (T,) is the shared expert's gate (None: no shared expert);
    ``host`` the host's steps between and after the stages (default :class:`HostSteps`)."""
    host = host or HostSteps()
    shared = shared_scale is not None
    if len(quantized.experts) != routing.num_experts + shared:
        raise MoEError(f"quantized.experts: {len(quantized.experts)} experts, expected {routing.num_experts} routed"
                       f"{' + 1 shared' if shared else ''} (shared_scale is {'given' if shared else 'None'})")
    batches = _expert_tokens(routing, hidden.shape[0], shared)
    jobs1 = [_job(e, name, hidden[tokens], quantized.experts[e].matrix(name))
             for e, tokens in batches for name in ("gate", "up")]
    schedule1 = map_stage(config, [job.shape for job in jobs1])
    run1 = backend.run_stage(jobs1, schedule1)
    jobs2 = []
    for index, (e, _) in enumerate(batches):
        jobs2.append(_job(e, "down", host.activation(e, run1.outputs[2 * index], run1.outputs[2 * index + 1]),
                          quantized.experts[e].down))
    schedule2 = map_stage(config, [job.shape for job in jobs2])
    run2 = backend.run_stage(jobs2, schedule2)
    return LayerRun(output=_combine(routing, shared_scale, batches, _biased(host, batches, run2.outputs)),
                    jobs=(jobs1, jobs2),
                    schedules=(schedule1, schedule2), runs=(run1, run2))


def _bound_check(config: MixPEConfig, routing: Routing, shared_scale: torch.Tensor | None, result: LayerRun,
                 host: HostSteps) -> dict:
    """Per-GEMM error_bound check and the layer bound against the float64 reference of the same operands
    (a down bias adds one float64 rounding per term)."""
    worst_ratio, gemms_within = 0.0, True
    reference_down, bound_down = [], []
    for stage, (jobs, run) in enumerate(zip(result.jobs, result.runs)):
        for job, out in zip(jobs, run.outputs):
            ref = (job.x.double() * job.act_scale.double()[:, None]) @ real_weights(config, job.weights).T
            bound = error_bound(config, job.x, job.act_scale, job.weights)
            err = (out.double() - ref).abs()
            gemms_within &= bool((err <= bound).all())
            worst_ratio = max(worst_ratio, float((err / bound.clamp(min=1e-300)).max()))
            if stage == 1:
                reference_down.append(ref)
                bound_down.append(bound)
    batches = _expert_tokens(routing, routing.selected.shape[0], shared_scale is not None)
    matched = _combine(routing, shared_scale, batches, _biased(host, batches, reference_down))

    def absolute(values: list[torch.Tensor]) -> torch.Tensor:
        """sum_e |w[t, e]| * |values_e[t]|, float64 (T, H)."""
        return _combine(routing, shared_scale, batches, [v.double().abs() for v in values]).abs()

    terms = routing.selected.shape[1] + (shared_scale is not None)
    biased = any(host.down_bias(e) is not None for e, _ in batches)
    layer_bound = absolute(bound_down) + gamma(terms + 1 + biased, FP64_UNIT_ROUNDOFF) * (
        absolute(_biased(host, batches, result.runs[1].outputs)) + absolute(_biased(host, batches, reference_down)))
    layer_err = (result.output - matched).abs()
    return {"gemms_within_error_bound": gemms_within, "max_gemm_err_over_bound": worst_ratio,
            "layer_within_bound": bool((layer_err <= layer_bound).all()),
            "max_abs_err_vs_matched_float64": float(layer_err.max()),
            "max_layer_bound": float(layer_bound.max()),
            "within_bound": gemms_within and bool((layer_err <= layer_bound).all())}


def run_moe(config: MixPEConfig, spec: MoESpec, backend: str | Backend = "golden", *, method: str = "rtn",
            seed: int | None = None, check_bound: bool = True) -> dict:
    """Run the layer ``spec`` on ``backend`` (a host backend's name or any :class:`Backend`) and
    return the report (JSON-ready; see README ``make moe``).

    ``seed`` is reported for the RTL backend, which seeds its stimulus timing with it; the layer is
    seeded by ``spec.seed``."""
    started = time.perf_counter()
    _, layer, hidden = spec.build()
    routing = route(layer, hidden)
    quantized = quantize_layer(config, layer, method=method, calibration=hidden if method == "gptq" else None)
    shared_scale = shared_expert_scale(layer, hidden) if layer.shared_expert is not None else None
    reference = float_forward(layer, hidden, routing)
    report, _ = layer_report(config, spec, layer, hidden, routing, quantized, backend, reference,
                             shared_scale=shared_scale, method=method, seed=seed, check_bound=check_bound)
    report["wall_time_s"] = time.perf_counter() - started
    return report


def layer_report(config: MixPEConfig, spec, layer: MoELayer, hidden: torch.Tensor, routing: Routing,
                 quantized: QuantizedMoE, backend: str | Backend, reference: torch.Tensor, *,
                 shared_scale: torch.Tensor | None = None, host: HostSteps | None = None, method: str = "rtn",
                 seed: int | None = None, check_bound: bool = True) -> tuple[dict, LayerRun]:
    """The report of :func:`run_moe` for a built layer (``spec`` a dataclass with ``family``, ``hidden``,
    ``ffn``, ``experts``, ``top_k``, ``tokens``, ``seed``): its routing, quantized experts, host steps and
    float64 ``reference`` output (T, H); returns it with the backend's :class:`LayerRun`."""
    host = host or HostSteps()
    chosen = make_backend(backend, config) if isinstance(backend, str) else backend
    backend = chosen.name
    result = execute_layer(config, quantized, hidden, routing, chosen, shared_scale, host)
    golden = result if backend == "golden" else execute_layer(config, quantized, hidden, routing,
                                                              GoldenBackend(config), shared_scale, host)
    counts = routing.counts()
    stage_shapes = layer_shapes(counts, layer.hidden, layer.experts[0].gate.shape[0],
                                layer.shared_expert.gate.shape[0] if layer.shared_expert is not None else None,
                                hidden.shape[0])
    plain = map_layer(config.replace(row_groups=1, name=f"{config.name}-plain"), stage_shapes)
    per_expert = expert_schedules(config, stage_shapes)
    plain_per_expert = expert_schedules(plain.config, stage_shapes)
    useful = sum(s.useful_macs for s in result.schedules)
    diff = (result.output - golden.output).abs().max()
    report = {
        "backend": backend,
        "cycles": result.cycles,
        "cycles_source": chosen.cycles_source,
        "utilization": utilization(config, useful, result.cycles),
        "max_abs_diff_vs_golden": float(diff),
        "bit_exact_vs_golden": all(torch.equal(a, b) for run, gold in zip(result.runs, golden.runs)
                                   for a, b in zip(run.outputs, gold.outputs)),
        "max_rel_err_vs_float": float((result.output - reference).abs().max() / reference.abs().max()),
        "rel_fro_err_vs_float": float(torch.linalg.norm(result.output - reference) / torch.linalg.norm(reference)),
        "predicted_cycles": golden.cycles,
        "useful_macs": useful,
        "tiles": sum(len(s.tiles) for s in result.schedules),
        "plain_mapping": plain.summary(),
        "row_group_gain": plain.cycles / golden.cycles,
        "stages": [{"gemms": [dataclasses.asdict(job.shape) for job in jobs], "tiles": len(schedule.tiles),
                    "cycles": run.cycles, "predicted_cycles": schedule.cycles, "utilization": schedule.utilization,
                    "band_fill": schedule.band_fill, **{f"run_{k}": v for k, v in run.details.items()}}
                   for jobs, schedule, run in zip(result.jobs, result.schedules, result.runs)],
        "experts": [{"expert": e, "shared": e == layer.num_experts,
                     "tokens": counts[e] if e < layer.num_experts else hidden.shape[0],
                     "work_items": sum(1 for s in result.schedules for t in s.tiles for i in t.bands
                                       if s.shapes[i.gemm].expert == e),
                     "tiles_in_layer": sum(1 for s in result.schedules for t in s.tiles
                                           if any(s.shapes[i.gemm].expert == e for i in t.bands)),
                     "cycles_alone": sched.cycles, "utilization_alone": sched.utilization,
                     "plain_cycles_alone": plain_per_expert[e].cycles,
                     "plain_utilization_alone": plain_per_expert[e].utilization}
                    for e, sched in per_expert.items()],
        "layer": {**dataclasses.asdict(spec), "quantization": method, "routed_tokens_per_expert": counts},
        "config": config.to_dict(),
        "seed": getattr(chosen, "seed", seed),
    }
    if check_bound:
        report.update(_bound_check(config, routing, shared_scale, result, host))
    return report, result


def format_report(report: dict) -> str:
    """Human-readable summary of a :func:`run_moe` report."""
    layer, plain = report["layer"], report["plain_mapping"]
    params = report["config"]["params"]
    lines = [f"MoE layer {layer['family']}: hidden {layer['hidden']}, ffn {layer['ffn']}, {layer['experts']} experts, "
             f"top-{layer['top_k']}, {layer['tokens']} tokens, seed {layer['seed']}, {layer['quantization']} weights; "
             f"array {params['rows']}x{params['cols']} g={params['group_size']} row_groups={params['row_groups']} "
             f"({params['name']}), backend {report['backend']}"]
    lines.append(f"  {'expert':>6} {'tokens':>6} {'items':>6} {'tiles':>6} {'cycles alone':>12} {'util':>6} "
                 f"{'plain cycles':>12} {'plain util':>10}")
    for e in report["experts"]:
        name = "shared" if e["shared"] else str(e["expert"])
        lines.append(f"  {name:>6} {e['tokens']:>6} {e['work_items']:>6} {e['tiles_in_layer']:>6} "
                     f"{e['cycles_alone']:>12} {e['utilization_alone']:>6.3f} {e['plain_cycles_alone']:>12} "
                     f"{e['plain_utilization_alone']:>10.3f}")
    for index, stage in enumerate(report["stages"], 1):
        lines.append(f"  stage {index} ({'gate, up' if index == 1 else 'down'}): {len(stage['gemms'])} GEMMs, "
                     f"{stage['tiles']} tiles, cycles {stage['cycles']} (mapped schedule predicted "
                     f"{stage['predicted_cycles']}"
                     + (f"; cycle model of the simulated stream {stage['run_model_cycles']}"
                        if "run_model_cycles" in stage else "") + f"), band fill {stage['band_fill']:.3f}")
    lines.append(f"  layer: {report['tiles']} tiles, cycles {report['cycles']} ({report['cycles_source']}), "
                 f"utilization {report['utilization']:.4f}; plain tokens-on-rows mapping: {plain['tiles']} tiles, "
                 f"{plain['cycles']} cycles, utilization {plain['utilization']:.4f} (row groups gain "
                 f"{report['row_group_gain']:.2f}x)")
    lines.append(f"  max |y - y_golden| = {report['max_abs_diff_vs_golden']:.3g} (bit-exact "
                 f"{report['bit_exact_vs_golden']}); vs unquantized float64 layer: max rel err "
                 f"{report['max_rel_err_vs_float']:.4g}, Frobenius rel err {report['rel_fro_err_vs_float']:.4g}")
    if "within_bound" in report:
        lines.append(f"  error bound: every GEMM within golden.mpgemm.error_bound: {report['gemms_within_error_bound']} "
                     f"(worst err/bound {report['max_gemm_err_over_bound']:.3f}); layer vs float64 on the same "
                     f"operands: max err {report['max_abs_err_vs_matched_float64']:.3g} within bound: "
                     f"{report['layer_within_bound']}")
    if "within_transformers_bound" in report:
        lines.append(f"  vs transformers' float64 forward (same weights and routing): max err "
                     f"{report['max_abs_err_vs_transformers']:.3g}, derived bound "
                     f"{report['max_transformers_bound']:.3g} (worst err/bound {report['max_err_over_transformers_bound']:.3f}), within bound: "
                     f"{report['within_transformers_bound']}; {report['host_steps']}")
    return "\n".join(lines)
