"""The RTL spot-check of ``mixpe eval-smollm`` (:mod:`sw.eval_smollm`): which models' tiles it
samples (the dense model, the sparsest carving and, with ``--methods``, that carving's conversion
by the first method: trained expert weights re-quantized to Q4_1), the checks a merged report keeps
from the last one, and the checks themselves (the simulator is the caller's, ``verif`` lies above
``sw``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sw.cmoe import CarvedModel, CMoEConfig
from sw.settings import EvalSettings
from sw.smollm import SmolLM, array_config

__all__ = ["RtlTileCheck", "reusable_checks", "rtl_sources", "rtl_checks"]

#: ``check(config, model, tokens, *, count, seed, ffns, source) -> dict`` streams ``count`` sampled
#: tiles of ``model``'s forward pass on ``tokens`` through the RTL and returns a record with
#: ``tiles``, ``mismatches``, ``cycles``, ``predicted_cycles`` and ``passed``
#: (:func:`verif.smollm_tiles.check_sampled_tiles`; the simulator lives above ``sw``).
RtlTileCheck = Callable[..., dict]


def reusable_checks(meta: dict, settings: EvalSettings) -> list[dict]:
    """The last report's passing RTL checks made with this run's tile count, seed and tokens: kept in
    the merged report, not run again."""
    previous = meta.get("settings", {})
    if not settings.rtl_tiles or any(previous.get(name) != getattr(settings, name)
                                     for name in ("rtl_tiles", "rtl_seed", "rtl_tokens")):
        return []
    return [check for check in meta.get("rtl_checks", []) if check.get("passed")]


def rtl_sources(settings: EvalSettings,
                done: set[tuple[str, str]] = frozenset()) -> list[tuple[str, tuple[str, str] | None]]:
    """(source, carving key; None: dense) of the RTL check: the dense model, the sparsest carving
    (fitted router if run) and, with methods, its conversion by the first method, each unless
    every array activation's check of it is in ``done`` ((source, core) pairs); [] with
    ``rtl_tiles`` 0."""
    if not settings.rtl_tiles:
        return []
    sparse = [name for name in settings.configs if CMoEConfig.parse(name).active < CMoEConfig.parse(name).routed]
    sources: list[tuple[str, tuple[str, str] | None]] = [("dense", None)]
    if sparse:
        name = min(sparse, key=lambda n: CMoEConfig.parse(n).activation_ratio)
        router = "fitted" if "fitted" in settings.routers else "analytic"
        sources.append((f"{name} ({router} router)", (name, router)))
        if settings.methods:
            sources.append((f"{name} ({settings.methods[0]})", (name, settings.methods[0])))
    cores = [array_config(activation, settings.rows, settings.cols).name for activation in settings.array_activations]
    return [(source, key) for source, key in sources if any((source, core) not in done for core in cores)]


def rtl_checks(model: SmolLM, tokens: torch.Tensor, carvings: dict[tuple[str, str], CarvedModel],
               sources: list[tuple[str, tuple[str, str] | None]], settings: EvalSettings, log,
               check_sampled_tiles: RtlTileCheck, done: set[tuple[str, str]] = frozenset()) -> list[dict]:
    """``check_sampled_tiles`` for every array activation on each of ``sources`` (:func:`rtl_sources`:
    a carving's experts with re-quantized down; a LoRA conversion's merged attention too) but the
    (source, core) pairs in ``done``."""
    models = []                                     # (source, host model, FFNs) once per source
    for source, key in sources:
        carving = carvings[key] if key is not None else None
        merged_model = getattr(carving, "merged_model", None)
        host = merged_model(model, "requantized") if merged_model is not None else model
        models.append((source, host, carving.ffns(host, "requantized") if carving is not None else None))
    checks = []
    for activation in settings.array_activations:
        config = array_config(activation, settings.rows, settings.cols)
        for source, host, ffns in models:
            if (source, config.name) in done:
                continue
            try:
                check = check_sampled_tiles(config, host, tokens, count=settings.rtl_tiles, seed=settings.rtl_seed,
                                            ffns=ffns, source=source)
            except Exception as error:              # noqa: BLE001 - a build failure is reported, and fails the run
                check = {"source": source, "config": config.name, "seed": settings.rtl_seed, "passed": False,
                         "error": f"{type(error).__name__}: {error}"}
            checks.append(check)
            log(f"RTL {config.name} on {source}: " + (
                f"{check['tiles']} sampled tiles, {check['mismatches']} mismatches, {check['cycles']} cycles "
                f"(model {check['predicted_cycles']}) -> {'PASS' if check['passed'] else 'FAIL'}"
                if "error" not in check else f"FAILED {check['error']}"))
    return checks
