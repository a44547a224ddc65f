"""LoRA recovery of a carved SmolLM2 (CMoE's ``sft_utils.simple_sft`` recipe), with a small LoRA of
our own on the float forward of :mod:`sw.smollm` (peft wraps ``torch.nn`` modules; this forward is
functional).

Recipe (CMoE, arXiv 2502.04416): adapters of rank r = 8, alpha = 32 (scale alpha / r), dropout 0.1
on the adapter's input, on q, k, v, o and every expert's gate, up and down; A initialized like
peft (Kaiming-uniform, a = sqrt(5)), B = 0, so the model starts as carved. Adam, lr 5.65e-5, betas
(0.9, 0.95) on the adapters; a separate Adam group (``scale_lr``, CMoE's ``--extra-lr`` 1e-3) on
each layer's routing scale ``extra_scale`` (:class:`sw.cmoe.CarvedLayer`: a selected expert is
weighted ``1 + p_e * extra_scale_e``, initialized to 0). One epoch over the training windows, one
window per step, next-token cross-entropy. At the end the adapters are merged: ``W + (alpha / r)
B A`` (:class:`LoRAModel`): float weights for float rows, re-quantized to Q4_1 with llama.cpp's
quantizer for the array.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch
import torch.nn.functional as F

from sw.cmoe import CMoEError, MoEFFN, requantize_q4_1
from sw.smollm import FloatLinear, QLinear, SmolLM, forward

__all__ = ["LoRASettings", "LoRALinear", "LoRAModel", "lora_recover", "ATTENTION"]

#: Attention projections that get adapters (the experts' gate/up/down get them too).
ATTENTION = ("q", "k", "v", "o")


@dataclasses.dataclass(frozen=True)
class LoRASettings:
    rank: int = 8
    alpha: float = 32.0
    dropout: float = 0.1
    lr: float = 5.65e-5
    betas: tuple[float, float] = (0.9, 0.95)
    scale_lr: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.rank, int) or self.rank < 1:
            raise CMoEError(f"rank={self.rank!r}: must be a positive integer")
        if not 0 <= self.dropout < 1:
            raise CMoEError(f"dropout={self.dropout!r}: must be in [0, 1)")


class LoRALinear(FloatLinear):
    """:class:`sw.smollm.FloatLinear` plus ``x A^T B^T (alpha / r)`` on the weights given to
    :meth:`add` (by name); dropout on the adapter's input while ``training``, seeded."""

    def __init__(self, settings: LoRASettings):
        super().__init__()
        self.settings = settings
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.adapters: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.training = True

    @property
    def scale(self) -> float:
        return self.settings.alpha / self.settings.rank

    def add(self, weight: QLinear) -> None:
        """Adapters A (r, K) (Kaiming-uniform bound sqrt(1 / K), as ``kaiming_uniform_(a=sqrt(5))``)
        and B (N, r) = 0 for ``weight`` (N, K)."""
        n, k = weight.shape
        bound = 1 / math.sqrt(k)
        a = (torch.rand(self.settings.rank, k, generator=self.generator) * 2 - 1) * bound
        self.adapters[weight.name] = (a.requires_grad_(True), torch.zeros(n, self.settings.rank, requires_grad=True))

    def parameters(self) -> list[torch.Tensor]:
        return [p for pair in self.adapters.values() for p in pair]

    def compute(self, x, weight):
        y = x @ weight.dense.T
        if weight.name not in self.adapters:
            return y
        a, b = self.adapters[weight.name]
        if self.training and self.settings.dropout:
            keep = torch.rand(x.shape, generator=self.generator) >= self.settings.dropout
            x = x * keep / (1 - self.settings.dropout)
        return y + (x @ a.T) @ b.T * self.scale

    def merged(self, weight: QLinear, requantize: bool) -> QLinear:
        """``weight`` with its adapter merged: float, or re-quantized to Q4_1 (``requantize``)."""
        dense = weight.dense
        if weight.name in self.adapters:
            a, b = self.adapters[weight.name]
            dense = dense + (b.detach() @ a.detach()) * self.scale
        return requantize_q4_1(dense, weight.name) if requantize else QLinear(weight.name, dense=dense)


def _targets(model: SmolLM, ffns: list[MoEFFN]) -> list[QLinear]:
    weights = [getattr(layer, name) for layer in model.layers for name in ATTENTION]
    for ffn in ffns:
        weights += [w for expert in ([ffn.shared] if ffn.shared else []) + ffn.experts for w in expert]
    return weights


@dataclasses.dataclass(eq=False)
class LoRAModel:
    """A carving (:class:`sw.cmoe.CarvedModel` or :class:`sw.ladimo.DistilledModel`) with trained
    adapters and routing scales; ``merged_model`` and ``ffns`` give the merged model for evaluation."""
    base: object
    linear: LoRALinear
    scales: list[torch.Tensor]
    train_tokens: int
    seconds: float
    cpu_seconds: float
    losses: list[float]
    router: str = "cmoe-lora"

    @property
    def config(self):
        return self.base.config

    @property
    def layers(self):
        return self.base.layers

    def merged_model(self, model: SmolLM, down_mode: str | None = None) -> SmolLM:
        """``model`` with q, k, v, o merged (re-quantized unless ``down_mode="exact"``)."""
        requantize = down_mode != "exact"
        layers = [dataclasses.replace(layer, **{name: self.linear.merged(getattr(layer, name), requantize)
                                                for name in ATTENTION}) for layer in model.layers]
        return dataclasses.replace(model, layers=layers)

    def ffns(self, model: SmolLM, down_mode: str | None = None, selection: str | None = None,
             seed: int = 0) -> list[MoEFFN]:
        """The base carving's FFNs (on ``model`` before merging) with merged experts and scales."""
        ffns = self.base.ffns(model, "exact", selection, seed)
        requantize = down_mode != "exact"
        for ffn, scale in zip(ffns, self.scales):
            ffn.carved = dataclasses.replace(ffn.carved, extra_scale=scale.detach())
            merge = lambda weights: tuple(self.linear.merged(w, requantize) for w in weights)  # noqa: E731
            ffn.shared = merge(ffn.shared) if ffn.shared else None
            ffn.experts = [merge(expert) for expert in ffn.experts]
        return ffns


def lora_recover(model: SmolLM, carving, windows: list[torch.Tensor], settings: LoRASettings = LoRASettings(),
                 log=None) -> LoRAModel:
    """One epoch of LoRA fine-tuning of ``model`` with ``carving``'s FFNs (float, exact down) on
    token windows (int64 (L,) each), one window per Adam step; returns the trained adapters."""
    if not windows:
        raise CMoEError("windows: need at least one training window")
    start, cpu_start = time.perf_counter(), time.process_time()
    ffns = carving.ffns(model, "exact")
    linear = LoRALinear(settings)
    for weight in _targets(model, ffns):
        linear.add(weight)
    scales = []
    for ffn in ffns:
        scale = torch.zeros(len(ffn.experts), requires_grad=True)
        ffn.carved = dataclasses.replace(ffn.carved, extra_scale=scale)
        scales.append(scale)
    optimizer = torch.optim.Adam([{"params": linear.parameters(), "lr": settings.lr},
                                  {"params": scales, "lr": settings.scale_lr}], betas=settings.betas)
    losses, tokens = [], 0
    for step, window in enumerate(windows):
        logits = forward(model, window, linear, ffns)
        loss = F.cross_entropy(logits[:-1], window[1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        linear.calls.clear()
        losses.append(float(loss.detach()))
        tokens += len(window)
        if log is not None:
            log(f"lora step {step + 1}/{len(windows)}: loss {losses[-1]:.4f} ({time.perf_counter() - start:.0f} s)")
    linear.training, linear.generator = False, None          # merged from here on; a Generator does not pickle
    linear.adapters = {name: (a.detach(), b.detach()) for name, (a, b) in linear.adapters.items()}
    return LoRAModel(base=carving, linear=linear, scales=[s.detach() for s in scales], train_tokens=tokens,
                     seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu_start, losses=losses)
