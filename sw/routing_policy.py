"""Per-layer routing policy (LaDiMo's adaptive routing, arXiv 2408.04278), training-free: profile
how much routing mass each layer's top-k experts cover, then give each layer its own k so that the
average activation ratio meets a target.

Routing weights of a token: the router's scores clamped at 0 and normalized to sum 1 over the N - S
routed experts. For the fitted and distilled routers (:mod:`sw.cmoe`, :mod:`sw.ladimo`) a score is
the predicted output norm of an expert, so the mass of the top-k is the share of the routed
output the router expects them to carry. The profile of a layer is the mean over tokens of that
cumulative mass, ``coverage[k]`` for k = 0 .. N - S (non-decreasing, ``coverage[N - S] = 1``).

:func:`choose_topk` starts every layer at ``k_min`` and adds one expert at a time to the layer
whose coverage grows most (ties: the lowest layer), until the routed experts sum to the budget
``round((ratio * N - S) * layers)``; the coverage curves are concave, so this maximizes the total
coverage for the budget.
"""

from __future__ import annotations

import torch

from sw.cmoe import CMoEConfig, CMoEError
from sw.smollm import FloatLinear, SmolLM, forward

__all__ = ["routing_weights", "coverage_profile", "choose_topk", "profile_model"]


def routing_weights(scores: torch.Tensor) -> torch.Tensor:
    """Scores (T, E) -> non-negative weights summing to 1 per token (uniform where all are <= 0), float64."""
    weights = scores.double().clamp(min=0)
    total = weights.sum(dim=1, keepdim=True)
    uniform = torch.full_like(weights, 1.0 / weights.shape[1])
    return torch.where(total > 0, weights / total.clamp(min=1e-300), uniform)


def coverage_profile(scores: torch.Tensor) -> torch.Tensor:
    """Mean cumulative routing mass of the top-k experts, float64 (E + 1,) for k = 0 .. E."""
    ranked = routing_weights(scores).sort(dim=1, descending=True, stable=True).values
    return torch.cat([torch.zeros(1, dtype=torch.float64), ranked.cumsum(dim=1).mean(dim=0)])


def choose_topk(profiles: list[torch.Tensor], config: CMoEConfig, ratio: float, k_min: int = 1) -> list[int]:
    """Routed experts per layer whose average activation ratio ``(S + mean k) / N`` is ``ratio``
    (rounded to whole experts in total), maximizing the summed coverage (module docstring)."""
    layers, routed = len(profiles), config.routed
    budget = round((ratio * config.experts - config.shared) * layers)
    if not 1 <= k_min <= routed or not k_min * layers <= budget <= routed * layers:
        raise CMoEError(f"ratio={ratio!r}: needs {budget} routed experts over {layers} layers; allowed between "
                        f"k_min * layers = {k_min * layers} and {routed * layers} (k_min={k_min}, {routed} routed)")
    topk = [k_min] * layers
    for _ in range(budget - k_min * layers):
        gains = [float(p[k + 1] - p[k]) if k < routed else float("-inf") for p, k in zip(profiles, topk)]
        topk[max(range(layers), key=lambda layer: (gains[layer], -layer))] += 1
    return topk


def profile_model(model: SmolLM, carving, windows: list[torch.Tensor]) -> list[torch.Tensor]:
    """The coverage profile of every layer of a carving (:class:`sw.cmoe.CarvedModel` or
    :class:`sw.ladimo.DistilledModel`, fitted or distilled router) on the FFN inputs of a float
    forward pass over ``windows`` (exact down slices)."""
    ffns = carving.ffns(model, "exact")
    captured: list[list[torch.Tensor]] = [[] for _ in ffns]

    def recording(index: int):
        def ffn(model_, layer, x, linear):
            captured[layer].append(x)
            return ffns[index](model_, layer, x, linear)
        return ffn

    recorders = [recording(i) for i in range(len(ffns))]
    with torch.no_grad():
        for window in windows:
            forward(model, window, FloatLinear(), recorders)
    profiles = []
    for carved, inputs in zip(carving.layers, captured):
        x = torch.cat(inputs)
        if carved.router_weight is None:
            raise CMoEError("routing policy: the carving has the analytic router; use router='fitted' or a "
                            "distilled model")
        profiles.append(coverage_profile(x @ carved.router_weight[:-1] + carved.router_weight[-1]))
    return profiles
