"""The trained conversions of ``mixpe eval-smollm --methods`` (:data:`sw.settings.SMOLLM_METHODS`):
how each is trained from the evaluation's carvings and which fields its report rows carry.

* ``ladimo``: :func:`sw.ladimo.distill_model`, A routed experts in every layer;
* ``ladimo+policy``: the per-layer top-k of :func:`sw.routing_policy.choose_topk` for the
  configuration's activation ratio, profiled on the fitted training-free carving's router over the
  calibration windows, then distilled with those k;
* ``ladimo+e2e``: the ``ladimo`` model, then :func:`sw.e2e.e2e_distill` (all layers jointly,
  KL to the dense model's logits), one Adam step per training window; with ``e2e_stages``
  (``--e2e-stage``) the stages of :func:`sw.recovery.e2e_stages` on all the training windows, as
  ``python -m sw.recovery --stage`` trains them (same cache keys: its snapshots are reused);
* ``cmoe-lora``: :func:`sw.lora.lora_recover` on the fitted carving (CMoE's recipe).

Training text: :data:`sw.ladimo.TRAINING_MODULES`, disjoint from calibration and held-out text.
Trained models are kept in ``cache`` (default :data:`sw.recovery.CACHE`, ``build/recovery/``),
keyed by their inputs (:func:`sw.recovery.cache_path`), so a conversion is trained once: a run of
``python -m sw.recovery`` and ``mixpe eval-smollm --methods`` share them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from sw.cmoe import CMoEConfig, carve_model
from sw.e2e import E2ESettings, e2e_distill
from sw.ladimo import TRAINING_MODULES, DistillSettings, distill_model
from sw.lora import LoRASettings, lora_recover
from sw.recovery import CACHE, cache_path, checkpointed, e2e_stages, parse_stage, recovery_text
from sw.routing_policy import choose_topk, profile_model
from sw.smollm import with_host_dtype

__all__ = ["TRAINING_MODULES", "train_method", "method_fields", "distilled_model", "e2e_model"]


def _fitted(model, config: CMoEConfig, calibration, settings, carvings: dict):
    """The evaluation's fitted carving of ``config`` (carved here if its rows were not asked for)."""
    key = (config.name, "fitted")
    if key not in carvings:
        carvings[key] = carve_model(model, calibration, config, k_act=settings.k_act, router="fitted")
    return carvings[key]


def _pt(stem: Path | None) -> Path | None:
    return None if stem is None else stem.with_name(stem.name + ".pt")


def distilled_model(model, config: CMoEConfig, calibration, training, distill: DistillSettings, k_act: int,
                    active: list[int] | None = None, router: str = "ladimo", cache: Path | None = CACHE):
    """:func:`sw.ladimo.distill_model`, cached (``cache`` None: always trained)."""
    def train():
        trained = distill_model(model, calibration, training, config, distill, active=active, k_act=k_act)
        trained.router = router
        return trained
    stem = cache and cache_path(cache, router, config, [*calibration, *training],
                                settings=dataclasses.asdict(distill), active=active, k_act=k_act)
    return checkpointed(_pt(stem), train)


def e2e_model(model, base, windows, e2e: E2ESettings, cache: Path | None = CACHE, held_out=(), log=None, *,
              first_window: int = 0):
    """:func:`sw.e2e.e2e_distill` of a distilled model on ``windows[first_window:]``, snapshots in
    ``cache`` keyed by the base model's weights, ``first_window`` and the settings other than
    ``steps`` / ``eval_every`` (a longer run resumes a shorter one; fields added later and the
    first window count only when not at their defaults, so older snapshots keep their keys).
    Returns (trained model, state)."""
    defaults = E2ESettings()
    settings = {k: v for k, v in dataclasses.asdict(e2e).items()
                if k not in ("steps", "eval_every") and not (k in E2ESettings.LATER_FIELDS and v == getattr(defaults, k))}
    if first_window:
        settings["first_window"] = first_window
    stem = cache and cache_path(cache, "ladimo+e2e", base.config, [w for ws in base.weights for w in ws],
                                settings=settings)
    return e2e_distill(model, base, windows[first_window:], e2e, held_out=held_out, checkpoint=stem, log=log)


def train_method(model, method: str, config: CMoEConfig, calibration, training, settings, carvings: dict, log,
                 cache: Path | None = CACHE):
    """The trained conversion ``method`` of ``config`` (a carving-like object with ``ffns``). Training
    runs with a float32 host whatever ``model``'s host precision (float64 would double its cost;
    the trained weights are evaluated in the model's own precision)."""
    model = with_host_dtype(model, torch.float32)
    distill = DistillSettings(steps=settings.distill_steps)
    if method in ("ladimo", "ladimo+e2e"):
        trained = distilled_model(model, config, calibration, training, distill, settings.k_act, cache=cache)
        if method == "ladimo+e2e" and settings.e2e_stages:
            text = {**recovery_text(settings), "held_out": []}     # no learning curve: the rows evaluate it
            stages = [parse_stage(stage) for stage in settings.e2e_stages]
            trained = e2e_stages(model, trained, text, stages, eval_every=0, log=log, cache=cache)[0]
        elif method == "ladimo+e2e":
            trained = e2e_model(model, trained, training, E2ESettings(steps=len(training)), cache)[0]
        return trained
    if method == "ladimo+policy":
        profiles = profile_model(model, _fitted(model, config, calibration, settings, carvings), calibration)
        topk = choose_topk(profiles, config, config.activation_ratio)
        log(f"routing policy {config.name}: per-layer k {topk}")
        return distilled_model(model, config, calibration, training, distill, settings.k_act, active=topk,
                               router=method, cache=cache)
    windows = training[:settings.lora_windows]
    stem = cache and cache_path(cache, method, config, [*calibration, *windows],
                                settings=dataclasses.asdict(LoRASettings()), k_act=settings.k_act)
    return checkpointed(_pt(stem), lambda: lora_recover(model, _fitted(model, config, calibration, settings,
                                                                       carvings), windows))


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
