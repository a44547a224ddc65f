"""The trained conversions of ``mixpe eval-smollm --methods`` (:data:`sw.settings.SMOLLM_METHODS`):
how each is trained from the evaluation's carvings and which fields its report rows carry.

* ``ladimo``: :func:`sw.ladimo.distill_model`, A routed experts in every layer;
* ``ladimo+policy``: the per-layer top-k of :func:`sw.routing_policy.choose_topk` for the
  configuration's activation ratio, profiled on the fitted training-free carving's router over the
  calibration windows, then distilled with those k;
* ``cmoe-lora``: :func:`sw.lora.lora_recover` on the fitted carving (CMoE's recipe).

Training text: :data:`sw.ladimo.TRAINING_MODULES`, disjoint from calibration and held-out text.
"""

from __future__ import annotations

from sw.cmoe import CMoEConfig, carve_model
from sw.ladimo import TRAINING_MODULES, DistillSettings, distill_model
from sw.lora import lora_recover
from sw.routing_policy import choose_topk, profile_model

__all__ = ["TRAINING_MODULES", "train_method", "method_fields"]


def _fitted(model, config: CMoEConfig, calibration, settings, carvings: dict):
    """The evaluation's fitted carving of ``config`` (carved here if its rows were not asked for)."""
    key = (config.name, "fitted")
    if key not in carvings:
        carvings[key] = carve_model(model, calibration, config, k_act=settings.k_act, router="fitted")
    return carvings[key]


def train_method(model, method: str, config: CMoEConfig, calibration, training, settings, carvings: dict, log):
    """The trained conversion ``method`` of ``config`` (a carving-like object with ``ffns``)."""
    distill = DistillSettings(steps=settings.distill_steps)
    if method == "ladimo":
        return distill_model(model, calibration, training, config, distill, k_act=settings.k_act)
    if method == "ladimo+policy":
        profiles = profile_model(model, _fitted(model, config, calibration, settings, carvings), calibration)
        topk = choose_topk(profiles, config, config.activation_ratio)
        log(f"routing policy {config.name}: per-layer k {topk}")
        trained = distill_model(model, calibration, training, config, distill, active=topk, k_act=settings.k_act)
        trained.router = method
        return trained
    return lora_recover(model, _fitted(model, config, calibration, settings, carvings),
                        training[:settings.lora_windows])


def method_fields(trained) -> dict:
    """Report fields of a trained conversion's rows: tokens, time, per-layer activation ratios."""
    fields = {"train_tokens": trained.train_tokens, "train_seconds": trained.seconds,
              "train_cpu_seconds": trained.cpu_seconds}
    if hasattr(trained, "active"):
        ratios = trained.activation_ratios
        fields.update(active_ratio=sum(ratios) / len(ratios), layer_active_ratios=ratios, layer_topk=trained.active,
                      layer_error_before=[s.error_before for s in trained.stats],
                      layer_error_after=[s.error_after for s in trained.stats])
    else:
        fields.update(lora_losses=trained.losses)
    return fields
