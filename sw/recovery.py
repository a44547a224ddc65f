"""``python -m sw.recovery``: train a LaDiMo conversion (and optionally its end-to-end stage) of one
SmolLM2 carving, checkpointed under ``build/recovery/`` so that nothing is trained twice, and
print its float held-out perplexities (the evaluation's float rows: first 256-token window and
the 8-window long figure, exact and re-quantized Q4_1 weights) as one JSON line, appended to
``build/recovery/results.jsonl``.

Text: :func:`recovery_text` (the evaluation's calibration and held-out windows, and every 512-token
window of the training text, :data:`sw.ladimo.TRAINING_MODULES`): the layer-wise stage on the first
``--train-windows``, the end-to-end stage one window per step from the first (the eval's
``ladimo+e2e`` with ``--train-windows N`` is this with ``--train-windows N --e2e-steps N`` and
reads its cached models). Further end-to-end stages (``--stage STEPS:LR[:FLAG]...``, repeatable)
each start from the previous stage's model with a fresh optimizer, on the training windows after
those the earlier stages used (past the last window: again from the first, epoch after epoch):
``qat`` trains the re-quantized weights (``E2ESettings.quantize_aware``), ``int8`` rounds the training
forward's GEMM inputs as the INT8 core does (``E2ESettings.int8_activations``), ``bf16`` runs the
training GEMMs in bfloat16 (``E2ESettings.precision``), ``cos`` / ``lin`` let the learning rate fall
over the stage's steps to a tenth (``E2ESettings.schedule``), ``wN`` sums N windows' gradients per
step (``E2ESettings.windows_per_step``), ``eN`` reads only the first N training windows (epochs of
N windows: ``e188``, the training text before it grew, repeats a stage trained then).

The training text grew (``TRAINING_MODULES`` appended); its first :data:`FIRST_TEXT_WINDOWS`
windows are the earlier text's. A stage that reads only windows the earlier text had at the same
positions keeps its cache key; one that reads others is keyed also by the text
(``E2ESettings.text_key``), so a snapshot trained on other windows is never reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path
from typing import NamedTuple

import torch

from sw.cmoe import CMoEConfig, CMoEError
from sw.corpus import CALIBRATION_MODULES, EVALUATION_MODULES, corpus_text, text_digest, token_windows
from sw.e2e import E2ESettings
from sw.host_memory import keep_freed_memory
from sw.ladimo import TRAINING_MODULES, DistillSettings
from sw.settings import STAGE_FLAGS, STAGE_SYNTAX, EvalSettings
from sw.smollm import (ArrayLinear, FloatLinear, QLinear, SmolLM, array_config, forward, gemm_cycles, load_smollm,
                       load_tokenizer, sequence_nll, with_host_dtype)

__all__ = ["CACHE", "FIRST_TEXT_WINDOWS", "cache_path", "recovery_text", "checkpointed", "float_perplexities", "Stage",
           "parse_stage", "text_key", "e2e_stages", "main"]

#: Where trained conversions are kept (``mixpe eval-smollm --methods`` reads the same files).
CACHE = Path("build/recovery")
#: Whole 512-token windows of the training text before ``TRAINING_MODULES`` grew (SHA-256 3baaa8ae…).
FIRST_TEXT_WINDOWS = 188


def cache_path(directory: Path, kind: str, config: CMoEConfig, tensors: list[torch.Tensor], **settings) -> Path:
    """``<directory>/<config>-<kind>-<hash>``: the hash covers the kind, the settings and the token
    windows (or weights) the training starts from, so a changed input never reuses a checkpoint."""
    digest = hashlib.sha256(json.dumps([kind, config.name, settings], sort_keys=True, default=str).encode())
    for tensor in tensors:
        digest.update(tensor.contiguous().numpy().tobytes())
    return Path(directory) / f"{config.name}-{kind}-{digest.hexdigest()[:12]}"


def recovery_text(settings: EvalSettings = EvalSettings()) -> dict:
    """Token windows and digests: ``calibration``, ``training`` (all whole windows), ``held_out``."""
    tokenizer = load_tokenizer()
    texts = {name: corpus_text(modules) for name, modules in
             (("calibration", CALIBRATION_MODULES), ("training", TRAINING_MODULES), ("held_out", EVALUATION_MODULES))}
    ids = {name: tokenizer.encode(text).ids for name, text in texts.items()}
    length = settings.calibration_length
    return {"calibration": token_windows(ids["calibration"], length, settings.calibration_windows, "calibration"),
            "training": token_windows(ids["training"], length, len(ids["training"]) // length, "training"),
            "held_out": token_windows(ids["held_out"], settings.eval_tokens, settings.float_windows, "held-out"),
            "sha256": {name: text_digest(text) for name, text in texts.items()}}


def checkpointed(path: Path, train):
    """``torch.load(path)`` if it exists, else ``train()`` saved there (``path`` None: no cache)."""
    if path is None:
        return train()
    if path.exists():
        return torch.load(path, weights_only=False, mmap=True)
    result = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return result


def float_perplexities(model, trained, held_out: list[torch.Tensor]) -> dict:
    """Perplexity on the first window and over all windows (long), exact and re-quantized weights."""
    record = {}
    for mode in ("exact", "requantized"):
        ffns = trained.ffns(model, mode)
        per_window = []
        total = count = 0
        with torch.no_grad():
            for window in held_out:
                nll, tokens = sequence_nll(forward(model, window, FloatLinear(), ffns), window)
                total, count = total + nll, count + tokens
                per_window.append(math.exp(nll / tokens))
        record[mode] = {"perplexity": per_window[0], "perplexity_long": math.exp(total / count),
                        "perplexity_windows": per_window}
    return record


def float_only(model: SmolLM) -> SmolLM:
    """``model`` with float-only projections (the dequantized weights without their int64 Q4_1
    codes, a third of the memory): all that training and the float rows use; not the array rows."""
    names = ("q", "k", "v", "o", "gate", "up", "down")
    layers = [dataclasses.replace(layer, **{name: QLinear(getattr(layer, name).name, dense=getattr(layer, name).dense)
                                            for name in names}) for layer in model.layers]
    return dataclasses.replace(model, layers=layers)


def array_rows(model, trained, windows: list[torch.Tensor], activations=("int8", "fp16")) -> list[dict]:
    """The evaluation's rows of a trained model with re-quantized Q4_1 weights: float and each array
    activation (:class:`sw.smollm.ArrayLinear`), with a float64 host as ``make eval-smollm`` runs
    it; perplexity on the first window, over all windows (``perplexity_long``) and per window,
    prefill cycles per token (first window) and CPU seconds per row."""
    host = with_host_dtype(model, torch.float64)
    ffns = trained.ffns(host, "requantized")
    rows = []
    for activation in ("float", *activations):
        start = time.process_time()
        nlls, cycles = [], None
        for window in windows:
            linear = FloatLinear() if activation == "float" else ArrayLinear(array_config(activation))
            with torch.no_grad():
                nlls.append(sequence_nll(forward(host, window, linear, ffns), window))
            cycles = cycles if cycles is not None else gemm_cycles(linear.calls, 16, 16, 1)["cycles"] / len(window)
        rows.append({"activation": activation, "down_mode": "requantized", "perplexity": math.exp(nlls[0][0] / nlls[0][1]),
                     "perplexity_long": math.exp(sum(nll for nll, _ in nlls) / sum(count for _, count in nlls)),
                     "perplexity_windows": [math.exp(nll / count) for nll, count in nlls],
                     "cycles_per_token": cycles, "cpu_seconds": time.process_time() - start})
    return rows


class Stage(NamedTuple):
    """One end-to-end stage (``--stage``): Adam steps, learning rate and the
    :class:`sw.e2e.E2ESettings` options; ``epoch_windows``: read only the first N training windows
    (0: all)."""
    steps: int
    lr: float
    quantize_aware: bool = False
    precision: str = "float32"
    int8_activations: bool = False
    schedule: str = "constant"
    windows_per_step: int = 1
    epoch_windows: int = 0


def parse_stage(text: str) -> Stage:
    """``STEPS:LR[:FLAG]...`` (flags in any order, :data:`sw.settings.STAGE_SYNTAX`) -> :class:`Stage`."""
    fields = text.split(":")
    flags = fields[2:]
    counts = {}                                      # "w" / "e": N
    try:
        steps, lr = int(fields[0]), float(fields[1])
        for flag in flags:
            if flag[:1] in ("w", "e") and flag[1:].isdigit() and int(flag[1:]) >= 1 and flag[0] not in counts:
                counts[flag[0]] = int(flag[1:])
            elif flag not in STAGE_FLAGS or flags.count(flag) > 1:
                raise ValueError(flag)
        if steps < 1 or not lr > 0 or {"cos", "lin"} <= set(flags):
            raise ValueError(text)
    except (IndexError, ValueError):
        raise argparse.ArgumentTypeError(f"stage={text!r}: expected {STAGE_SYNTAX} (each flag at most once, N >= 1), "
                                         f"e.g. 64:2e-4:qat:cos:w2") from None
    schedule = "cosine" if "cos" in flags else "linear" if "lin" in flags else "constant"
    return Stage(steps, lr, "qat" in flags, "bfloat16" if "bf16" in flags else "float32", "int8" in flags,
                 schedule, counts.get("w", 1), counts.get("e", 0))


def repeated_windows(training: list[torch.Tensor], count: int) -> list[torch.Tensor]:
    """The first ``count`` windows of the training text read again and again (epochs)."""
    return [training[index % len(training)] for index in range(count)]


def text_key(training: list[torch.Tensor], epoch: int, first: int, count: int) -> str:
    """``E2ESettings.text_key`` of a stage reading positions ``first`` .. ``first + count - 1`` of the
    first ``epoch`` training windows read again and again: empty if those are the windows the text of
    :data:`FIRST_TEXT_WINDOWS` windows gave at these positions (the cache keys of the runs before the
    text grew), else a digest of the ``epoch`` windows."""
    if epoch == FIRST_TEXT_WINDOWS or first + count <= min(epoch, FIRST_TEXT_WINDOWS):
        return ""
    digest = hashlib.sha256()
    for window in training[:epoch]:
        digest.update(window.contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def e2e_stages(model, distilled, text: dict, stages: list[tuple], eval_every: int, log=print,
               cache: Path | None = CACHE):
    """Run the end-to-end stages (:class:`Stage` or a tuple of its fields) in turn (module
    docstring); returns the last model and one record per stage (settings, first window, curve
    with per-window perplexities, train NLL, time)."""
    from sw.eval_methods import e2e_model
    trained, records, first = distilled, [], 0
    training = text["training"]
    for stage in (Stage(*fields) for fields in stages):
        epoch = stage.epoch_windows or len(training)
        if epoch > len(training):
            raise CMoEError(f"epoch_windows={epoch}: the training text has {len(training)} windows")
        count = stage.steps * stage.windows_per_step
        e2e = E2ESettings(steps=stage.steps, lr=stage.lr, eval_every=eval_every, quantize_aware=stage.quantize_aware,
                          precision=stage.precision, int8_activations=stage.int8_activations, schedule=stage.schedule,
                          decay_steps=0 if stage.schedule == "constant" else stage.steps,
                          windows_per_step=stage.windows_per_step, text_key=text_key(training, epoch, first, count))
        windows = repeated_windows(training[:epoch], first + count)
        trained, state = e2e_model(model, trained, windows, e2e, cache, held_out=text["held_out"], log=log,
                                   first_window=first)
        records.append({**stage._asdict(), "steps": state.step, "first_window": first, "text_key": e2e.text_key,
                        "curve": state.curve, "curve_windows": state.curve_windows, "train_nll": state.train_nll,
                        "seconds": state.seconds, "cpu_seconds": state.cpu_seconds})
        del state                                            # its Adam state: not kept through the next stage
        first += count
    return trained, records


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that name a trained conversion (its carving and training), shared by every
    command that trains or reads one from the cache."""
    parser.add_argument("--config", default="S2A10E16", help="CMoE carving of the conversion (default S2A10E16)")
    parser.add_argument("--train-windows", type=int, default=32, help="layer-wise stage: first N training windows")
    parser.add_argument("--distill-steps", type=int, default=DistillSettings.steps)
    parser.add_argument("--e2e-steps", type=int, default=0, help="end-to-end steps (0: layer-wise only)")
    parser.add_argument("--e2e-lr", type=float, default=E2ESettings.lr)
    parser.add_argument("--stage", type=parse_stage, action="append", default=[],
                        help=f"a further end-to-end stage {STAGE_SYNTAX} (repeatable)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sw.recovery", description=__doc__.split("\n\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--eval-every", type=int, default=E2ESettings.eval_every)
    parser.add_argument("--array", action="store_true", help="also the INT8 and FP16 array rows (first window)")
    parser.add_argument("--array-windows", type=int, default=1,
                        help="with --array: the first N held-out windows (perplexity_long over them)")
    parser.add_argument("--array-activations", nargs="+", choices=("int8", "fp16"), default=("int8", "fp16"),
                        help="with --array: which activations (FP16 takes 5x the CPU of INT8)")
    args = parser.parse_args(argv)
    if args.array_windows < 1:
        parser.error(f"--array-windows={args.array_windows}: must be at least 1")
    from sw.eval_methods import distilled_model      # it imports this module
    torch.set_num_threads(1)
    keep_freed_memory()
    model = load_smollm() if args.array else float_only(load_smollm())
    text = recovery_text()
    config = CMoEConfig.parse(args.config)
    distilled = distilled_model(model, config, text["calibration"], text["training"][:args.train_windows],
                                DistillSettings(steps=args.distill_steps), EvalSettings.k_act)
    trained, record = distilled, {"method": "ladimo"}
    stages = ([Stage(args.e2e_steps, args.e2e_lr)] if args.e2e_steps else []) + args.stage
    if stages:
        trained, stage_records = e2e_stages(model, distilled, text, stages, args.eval_every)
        last = stage_records[-1]
        record = {"method": "ladimo+e2e", "e2e_steps": sum(r["steps"] for r in stage_records),
                  "e2e_lr": last["lr"], "e2e_stages": stage_records, "e2e_curve": last["curve"],
                  "e2e_train_nll": last["train_nll"], "e2e_seconds": sum(r["seconds"] for r in stage_records),
                  "e2e_cpu_seconds": sum(r["cpu_seconds"] for r in stage_records)}
    start = time.process_time()
    record.update(config=config.name, train_windows=args.train_windows, distill_steps=args.distill_steps,
                  train_tokens=trained.train_tokens, train_seconds=trained.seconds,
                  train_cpu_seconds=trained.cpu_seconds, active=trained.active,
                  layer_error_before=[s.error_before for s in distilled.stats],
                  layer_error_after=[s.error_after for s in distilled.stats],
                  sha256=text["sha256"], **float_perplexities(model, trained, text["held_out"]))
    if args.array:
        record["array_rows"] = array_rows(model, trained, text["held_out"][:args.array_windows],
                                         tuple(args.array_activations))
    record["eval_cpu_seconds"] = time.process_time() - start
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "results.jsonl", "a") as results:
        results.write(json.dumps(record) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k not in ("layer_error_before", "layer_error_after")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
