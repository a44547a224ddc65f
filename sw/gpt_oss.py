"""A tiny seeded gpt-oss MoE block (transformers ``GptOssMLP``) with MXFP4 experts on the array.

The block: ``GptOssTopKRouter`` (router with a bias; top-k of the logits, softmax over the k
values) and ``GptOssExperts`` (per expert ``gate_up_proj`` (H, 2F) with gate and up interleaved in
its columns, ``down_proj`` (F, H), a bias on both). Its parameters are ``torch.empty`` in
transformers, so :func:`tiny_gpt_oss_block` draws them seeded: weights N(0, (3 / sqrt(fan_in))^2),
so some gate/up values pass the clamp ``limit`` = 7, biases N(0, 0.1^2).

MXFP4 (:func:`mxfp4_checkpoint`): each expert weight in the checkpoint's (E, N, K) layout is
quantized with gguf-py's ``MXFP4`` quantizer (llama.cpp's reference), written as gpt-oss's
``*_blocks`` / ``*_scales`` tensors and imported with :func:`sw.mxfp4_import.import_mxfp4`;
:func:`load_mxfp4` writes the dequantized weights back into the block, so transformers' own forward
runs the same weights as the array (as gpt-oss does: its checkpoint weights are MXFP4).

What runs where (:class:`GptOssHost`, one :class:`sw.moe_run.HostSteps`): routing on the host in
float32 by the block's own router; gate and up (the de-interleaved rows of ``gate_up_proj``) on the
array in stage 1, down in stage 2, all as FP4 E2M1 codes with E8M0 scales (``core_for_mxfp4``); on
the host in float64: the gate/up biases and the clamped SwiGLU ``(clamp(u, -l, l) + 1) *
g' * sigmoid(alpha * g')`` with ``g' = min(g, l)``, the down bias and the routing-weighted combine.

:func:`transformers_bound` derives how far the array's layer output may be from transformers' own
float64 forward of the same (MXFP4) weights with the same routing: the INT8 activation residuals
(measured, exact), each GEMM's ``golden.mpgemm.error_bound``, the clamped SwiGLU's Lipschitz
constant (:data:`SWIGLU_LIPSCHITZ`) and float64 rounding, propagated step by step (each step
bounds an absolute difference rigorously; no first-order truncation).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time

import numpy as np
import torch

from golden.mpgemm import error_bound
from golden.numerics import FP64_UNIT_ROUNDOFF, gamma
from hw.config import MixPEConfig
from sw.moe import ExpertFFN, MoEError, MoELayer, QuantizedExpert, QuantizedMoE, Routing, random_hidden
from sw.moe_run import Backend, HostSteps, LayerRun, layer_report
from sw.mxfp4_import import MXFP4Weights, from_ggml, import_mxfp4

__all__ = ["GPT_OSS_FAMILY", "SWIGLU_LIPSCHITZ", "GptOssSpec", "GptOssExpert", "GptOssLayer", "GptOssHost",
           "tiny_gpt_oss_block", "mxfp4_checkpoint", "load_mxfp4", "route_gpt_oss", "transformers_forward",
           "transformers_bound", "run_gpt_oss"]

GPT_OSS_FAMILY = "gpt_oss"
#: max over z of |d/dz z * sigmoid(alpha z)| = max_y sigmoid(y) (1 + y (1 - sigmoid(y))) = 1.0998 (any alpha > 0).
SWIGLU_LIPSCHITZ = 1.1
_WEIGHT_GAIN, _BIAS_STD = 3.0, 0.1


@dataclasses.dataclass(frozen=True)
class GptOssSpec:
    """A seeded tiny gpt-oss block and its input (``mixpe moe --gpt-oss``; the sizes of ``make moe``'s
    default layer): hidden 64, FFN 128, 4 experts, top-2, 32 tokens."""
    family: str = GPT_OSS_FAMILY
    hidden: int = 64
    ffn: int = 128
    experts: int = 4
    top_k: int = 2
    tokens: int = 32
    seed: int = 0

    def build(self):
        """(transformers ``GptOssMLP`` with MXFP4 weights loaded, :class:`GptOssLayer`, hidden float32 (T, H))."""
        block = tiny_gpt_oss_block(hidden=self.hidden, ffn=self.ffn, experts=self.experts, top_k=self.top_k,
                                   seed=self.seed)
        layer = load_mxfp4(block, mxfp4_checkpoint(block))
        return block, layer, random_hidden(self.tokens, self.hidden, self.seed + 1)


@dataclasses.dataclass(frozen=True)
class GptOssExpert:
    """One expert: MXFP4 gate, up (F, H) and down (H, F); biases float64 gate, up (F,), down (H,)."""
    gate: MXFP4Weights
    up: MXFP4Weights
    down: MXFP4Weights
    gate_bias: torch.Tensor
    up_bias: torch.Tensor
    down_bias: torch.Tensor


@dataclasses.dataclass(frozen=True)
class GptOssLayer:
    """The block's experts in MXFP4, its activation constants and top-k."""
    experts: tuple[GptOssExpert, ...]
    alpha: float
    limit: float
    top_k: int

    def moe_layer(self, router: torch.Tensor) -> MoELayer:
        """The experts' dequantized weights (float32, exact) as a :class:`sw.moe.MoELayer` (shapes, report)."""
        experts = tuple(ExpertFFN(*(m.dequantize().float() for m in (e.gate, e.up, e.down))) for e in self.experts)
        return MoELayer(GPT_OSS_FAMILY, router.detach().float().clone(), experts, self.top_k, True)

    def quantized(self, config: MixPEConfig) -> QuantizedMoE:
        """The array's operands for an MXFP4 core (:func:`sw.mxfp4_import.core_for_mxfp4`)."""
        return QuantizedMoE(tuple(QuantizedExpert(*(m.to_quantized_weights(config) for m in (e.gate, e.up, e.down)))
                                  for e in self.experts), method="mxfp4")


def tiny_gpt_oss_block(*, hidden: int = 64, ffn: int = 64, experts: int = 4, top_k: int = 2, seed: int = 0):
    """A seeded random transformers ``GptOssMLP`` (float32, eval mode); see the module docstring."""
    for name, value in (("hidden", hidden), ("ffn", ffn), ("experts", experts), ("top_k", top_k)):
        if not isinstance(value, int) or value < 1:
            raise MoEError(f"{name}={value!r}: must be a positive integer")
    if top_k > experts:
        raise MoEError(f"top_k={top_k}: must not exceed experts={experts}")
    from transformers import GptOssConfig
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP
    block = GptOssMLP(GptOssConfig(hidden_size=hidden, intermediate_size=ffn, num_local_experts=experts,
                                   num_experts_per_tok=top_k))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param, fan_in in ((block.router.weight, hidden), (block.experts.gate_up_proj, hidden),
                              (block.experts.down_proj, ffn)):
            param.copy_(torch.randn(param.shape, generator=gen) * (_WEIGHT_GAIN / math.sqrt(fan_in)))
        for param in (block.router.bias, block.experts.gate_up_proj_bias, block.experts.down_proj_bias):
            param.copy_(torch.randn(param.shape, generator=gen) * _BIAS_STD)
    return block.eval()


def _blocks_and_scales(weights: MXFP4Weights) -> tuple[torch.Tensor, torch.Tensor]:
    """gpt-oss's ``_blocks`` uint8 (..., N, K/32, 16) and ``_scales`` uint8 (..., N, K/32)."""
    codes = weights.codes.reshape(*weights.exponents.shape, 16, 2)
    return (codes[..., 0] | (codes[..., 1] << 4)).to(torch.uint8), weights.exponents.to(torch.uint8)


def mxfp4_checkpoint(block) -> dict[str, torch.Tensor]:
    """The block's expert weights as a gpt-oss checkpoint holds them: ``experts.gate_up_proj_blocks``
    / ``_scales`` ((E, 2F, H/32, ...): rows interleave gate and up) and ``experts.down_proj_*``
    ((E, H, F/32, ...)), quantized by gguf-py's MXFP4 quantizer."""
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize
    state = {}
    for name in ("gate_up_proj", "down_proj"):
        w = getattr(block.experts, name).detach().transpose(1, 2).numpy().astype(np.float32)   # (E, N, K)
        imported = from_ggml(quantize(np.ascontiguousarray(w), GGMLQuantizationType.MXFP4), w.shape, name)
        state[f"experts.{name}_blocks"], state[f"experts.{name}_scales"] = _blocks_and_scales(imported)
    return state


def load_mxfp4(block, state: dict[str, torch.Tensor]) -> GptOssLayer:
    """Import the checkpoint tensors of :func:`mxfp4_checkpoint` (:func:`sw.mxfp4_import.import_mxfp4`),
    load their dequantized values into ``block`` (transformers' (E, K, N) layout) and return the layer."""
    gate_up = import_mxfp4(state["experts.gate_up_proj_blocks"], state["experts.gate_up_proj_scales"],
                           name="experts.gate_up_proj")
    down = import_mxfp4(state["experts.down_proj_blocks"], state["experts.down_proj_scales"], name="experts.down_proj")
    experts = block.experts
    with torch.no_grad():
        experts.gate_up_proj.copy_(gate_up.dequantize().transpose(1, 2))
        experts.down_proj.copy_(down.dequantize().transpose(1, 2))
    layer = []
    for e in range(experts.num_experts):
        rows = gate_up.expert(e)
        bias = experts.gate_up_proj_bias[e].detach().double()
        layer.append(GptOssExpert(
            gate=MXFP4Weights(rows.codes[0::2], rows.exponents[0::2], f"experts.{e}.gate"),
            up=MXFP4Weights(rows.codes[1::2], rows.exponents[1::2], f"experts.{e}.up"),
            down=down.expert(e), gate_bias=bias[0::2], up_bias=bias[1::2],
            down_bias=experts.down_proj_bias[e].detach().double()))
    return GptOssLayer(tuple(layer), float(experts.alpha), float(experts.limit), block.router.top_k)


def route_gpt_oss(block, hidden: torch.Tensor) -> Routing:
    """The block's own router on hidden float32 (T, H): top-k of the logits, softmax over them (float32)."""
    with torch.no_grad():
        scores, selected = block.router(hidden)
    return Routing(selected=selected, weights=scores.gather(1, selected), num_experts=scores.shape[1])


class GptOssHost(HostSteps):
    """gpt-oss's host steps: gate/up biases, the clamped SwiGLU, the down bias (float64)."""

    def __init__(self, layer: GptOssLayer):
        self.layer = layer

    def activation(self, expert, gate, up):
        e = self.layer.experts[expert]
        g = (gate.double() + e.gate_bias).clamp(max=self.layer.limit)
        u = (up.double() + e.up_bias).clamp(-self.layer.limit, self.layer.limit)
        return (u + 1) * (g * torch.sigmoid(g * self.layer.alpha))

    def down_bias(self, expert):
        return self.layer.experts[expert].down_bias


def transformers_forward(block, hidden: torch.Tensor, routing: Routing) -> torch.Tensor:
    """transformers' ``GptOssExperts.forward`` in float64 (a copy of the block's experts) with the
    float32 routing ``routing``, float64 (T, H)."""
    experts = copy.deepcopy(block.experts).double()
    dense = torch.zeros(hidden.shape[0], routing.num_experts, dtype=torch.float64)
    dense.scatter_(1, routing.selected, routing.weights.double())
    with torch.no_grad():
        return experts(hidden.double(), router_indices=routing.selected, routing_weights=dense).reshape(hidden.shape)


def transformers_bound(config: MixPEConfig, layer: GptOssLayer, hidden: torch.Tensor, routing: Routing,
                       result: LayerRun) -> torch.Tensor:
    """float64 (T, H): a bound on |array layer output - :func:`transformers_forward`| (module docstring).

    Per expert e with tokens T_e (x = hidden[T_e], x^ = s * q its INT8 form): gate/up on the host
    are within dg = B_g + |W_g| |x - x^| + rounding of W_g x + b_g (likewise du); the clamped SwiGLU
    moves by at most |v| L dg + du (|glu| + L dg) (v = clamp(u) + 1, L = :data:`SWIGLU_LIPSCHITZ`);
    down adds its INT8 residual and B_d; the combine weighs by the routing weights."""
    u64 = FP64_UNIT_ROUNDOFF
    host = GptOssHost(layer)
    jobs1, jobs2 = result.jobs
    out = torch.zeros(hidden.shape[0], layer.experts[0].down.shape[0], dtype=torch.float64)
    for index, job2 in enumerate(jobs2):
        e = job2.shape.expert
        expert, tokens = layer.experts[e], routing.tokens(e)
        gate_job, up_job = jobs1[2 * index], jobs1[2 * index + 1]
        x = hidden[tokens].double()
        residual = (x - gate_job.act_scale.double()[:, None] * gate_job.x).abs()
        deltas = []
        for job, weights, bias, out1 in ((gate_job, expert.gate, expert.gate_bias, result.runs[0].outputs[2 * index]),
                                         (up_job, expert.up, expert.up_bias, result.runs[0].outputs[2 * index + 1])):
            w = weights.dequantize().abs()
            deltas.append(error_bound(config, job.x, job.act_scale, job.weights) + residual @ w.T
                          + gamma(x.shape[1] + 2, u64) * (x.abs() @ w.T + bias.abs() + out1.double().abs()))
        dg, du = deltas
        g = (result.runs[0].outputs[2 * index].double() + expert.gate_bias).clamp(max=layer.limit)
        v = (result.runs[0].outputs[2 * index + 1].double() + expert.up_bias).clamp(-layer.limit, layer.limit) + 1
        glu = (g * torch.sigmoid(g * layer.alpha)).abs()
        h = host.activation(e, result.runs[0].outputs[2 * index], result.runs[0].outputs[2 * index + 1])
        dh = v.abs() * SWIGLU_LIPSCHITZ * dg + du * (glu + SWIGLU_LIPSCHITZ * dg) + gamma(8, u64) * h.abs()
        h_residual = (h - job2.act_scale.double()[:, None] * job2.x).abs()
        w_down = expert.down.dequantize().abs()
        dy = (error_bound(config, job2.x, job2.act_scale, job2.weights) + (h_residual + dh) @ w_down.T
              + gamma(h.shape[1] + 2, u64) * ((h.abs() + dh) @ w_down.T + expert.down_bias.abs()))
        y = result.runs[1].outputs[index].double().abs() + expert.down_bias.abs() + dy
        out.index_add_(0, tokens, routing.token_weights(e).double()[:, None] * (dy + gamma(layer.top_k + 2, u64) * y))
    return out


def run_gpt_oss(config: MixPEConfig, spec: GptOssSpec, backend: str | Backend = "golden", *,
                seed: int | None = None) -> dict:
    """:func:`sw.moe_run.run_moe`'s report for the gpt-oss block ``spec`` on an MXFP4 core ``config``,
    plus ``max_abs_err_vs_transformers``, ``max_transformers_bound`` and ``within_transformers_bound``
    (``max_rel_err_vs_float`` is against transformers' float64 forward of the same MXFP4 weights)."""
    if (config.weight_format, config.scale_format) != ("fp4_e2m1", "e8m0"):
        raise MoEError(f"config: {config.name} has weight_format={config.weight_format!r}, "
                       f"scale_format={config.scale_format!r}; gpt-oss's MXFP4 experts need 'fp4_e2m1' and 'e8m0' "
                       f"(sw.mxfp4_import.core_for_mxfp4)")
    started = time.perf_counter()
    block, layer, hidden = spec.build()
    routing = route_gpt_oss(block, hidden)
    reference = transformers_forward(block, hidden, routing)
    report, result = layer_report(config, spec, layer.moe_layer(block.router.weight), hidden, routing,
                                  layer.quantized(config), backend, reference, host=GptOssHost(layer),
                                  method="mxfp4", seed=seed)
    bound = transformers_bound(config, layer, hidden, routing, result)
    err = (result.output - reference).abs()
    report.update({"host_steps": f"host: router (the block's own, float32); gate/up biases, clamped SwiGLU (alpha "
                                 f"{layer.alpha}, limit {layer.limit}), down bias, combine (float64)",
                   "max_abs_err_vs_transformers": float(err.max()), "max_transformers_bound": float(bound.max()),
                   "max_err_over_transformers_bound": float((err / bound).max()),
                   "within_transformers_bound": bool((err <= bound).all())})
    report["wall_time_s"] = time.perf_counter() - started
    return report
