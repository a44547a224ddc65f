"""``mixpe eval-smollm``: SmolLM2-135M (Q4_1) dense and CMoE-carved, every linear layer on the
MixPE array's numerics: perplexity, cycles per token and utilization.

Rows of the report (one JSON record each, contract fields ``model``, ``activation``,
``active_ratio``, ``perplexity``, ``cycles_per_token``):

* ``dense`` / ``float``: the dequantized Q4_1 model in float32 (the reference);
* ``dense`` / ``int8`` and ``fp16``: every Q4_1 projection through
  :func:`golden.mpgemm.bitexact_mpgemm` on a float-offset core (:func:`sw.smollm.array_config`);
* for each carving ``S<S>A<A>E<N>`` and router (``analytic``: the paper's; ``fitted``: the
  least-squares router of :mod:`sw.cmoe`, its own carving pass): ``float`` with the exact down
  slices (``down_mode="exact"``), ``float`` with re-quantized Q4_1 down (what the array runs), and
  ``int8`` / ``fp16`` on the array; plus two float diagnostics on the analytic carving's experts,
  router ``oracle`` (the A experts with the largest true output) and ``random``.
  A carving with every routed expert active (the first, ``S2A14E16``) checks the carving: its exact
  row must match the dense float perplexity, and its re-quantized row shows what re-quantizing down
  costs (routing does not matter there, so it has the analytic rows only).

Perplexity is measured on the first ``eval_tokens`` tokens of the held-out text (one window; every
row sees the same tokens). Every row also reports its spread over the first ``spread_windows``
(:data:`SPREAD_WINDOWS`, at least 3) held-out windows of ``eval_tokens`` (the first is that window):
``spread_perplexities`` and their ``perplexity_mean``, ``perplexity_std``, ``perplexity_min`` and
``perplexity_max``. Float rows also report ``perplexity_long`` over ``float_windows`` windows of
``eval_tokens`` (and each window's own perplexity, ``perplexity_windows``). ``eval_seconds`` and
``eval_cpu_seconds`` are a row's wall and CPU time (its task's thread; loading the model, once per
worker, is not counted). ``cycles_per_token`` is the prefill of that window: every GEMM the
forward pass ran, grouped in stages of GEMMs that share an input (q/k/v; o; gate/up of all experts;
down of all experts), each stage tiled by :func:`sw.moe_mapper.map_stage` (R x C tiles, tokens on
rows, ``row_groups`` bands) and timed by :func:`golden.cycles.predict_cycles`, summed over stages
(:func:`sw.smollm.gemm_cycles`) and divided by the window length. ``decode_cycles_per_token`` does the same for a one-token
forward. Only the 210 Q4_1 projections count; attention, norms, the router and the output head run
on the host (see :mod:`sw.smollm`).

Reproducibility: the host runs in float64 (:data:`HOST_DTYPE`, :func:`sw.smollm.with_host_dtype`;
the carving's statistics and router too, with ties broken by index, :mod:`sw.cmoe`), so a row's
numbers do not depend on the CPU's vector kernels or thread count; the array's numerics are
bit-exact integer/FP16 arithmetic anyway. The report records the seeds, the library versions and
the CPU capability torch ran with.

Rows are tasks (:func:`evaluate_row`, one thread each) given to ``submit`` (``gen`` passes a Dask
client's, :mod:`gen.scale.cluster`; the default runs them here, one after the other). Each finished
row is appended to ``rows.jsonl`` in the output directory; a rerun after an interruption reuses the
rows recorded under the same settings and carves only what the missing rows need; a finished run
removes the file. A run also takes the rows of the last ``report.json`` there that compute as its own
would (:func:`_row_digest`: same settings but those choosing rows; a trained method's rows, whose
records carry their ``train_settings``, also that method's settings and training text), and writes
one report with this run's rows and the last report's others (with its passing RTL checks,
:mod:`sw.eval_rtl`): the default run, then ``--methods ...`` on one carving, give one report with
every row. The RTL check of sampled tiles is a callable the caller passes in
(``rtl_check``; ``gen`` wires :func:`verif.smollm_tiles.check_sampled_tiles`); the reports are
written by :mod:`sw.eval_report`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import pickle
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sw.cmoe import SELECTIONS, CarvedModel, CMoEConfig, CMoEError, carve_model
from sw.corpus import CALIBRATION_MODULES, EVALUATION_MODULES, corpus_text, text_digest, token_windows
from sw.eval_report import write_reports
from sw.eval_methods import TRAINING_MODULES, method_fields, train_method
from sw.eval_rtl import RtlTileCheck, reusable_checks, rtl_checks, rtl_sources
from sw.host_memory import keep_freed_memory
from sw.progress import progress
from sw.settings import SMOLLM_CONFIGS as DEFAULT_CONFIGS, SMOLLM_METHODS, EvalSettings
from sw.smollm import (SMOLLM_FILE, ArrayLinear, FloatLinear, Linear, SmolLM, array_config, forward, gemm_cycles,
                       load_smollm, load_tokenizer, sequence_nll, with_host_dtype)
from sw.smollm_gguf import gguf_backend, gguf_row_name, gguf_tile_checks, is_gguf_row, load_smollm_gguf

__all__ = ["EvalSettings", "RowSpec", "run_eval", "main_report", "DEFAULT_CONFIGS", "evaluate_row", "inline_submit",
           "HOST_DTYPE", "SPREAD_WINDOWS", "RANDOM_SELECTION_SEED"]

#: Precision of everything the host computes (attention, norms, the output head, float GEMMs, carving).
HOST_DTYPE = torch.float64
#: Held-out windows of ``eval_tokens`` every row is also evaluated on, for its spread.
SPREAD_WINDOWS = 3
#: Seed of the ``random`` router diagnostic (layer i uses this + i; :meth:`sw.cmoe.CarvedModel.ffns`).
RANDOM_SELECTION_SEED = 0
#: Rows finished by an interrupted run (removed when a run finishes).
PARTIAL_ROWS = "rows.jsonl"

@dataclasses.dataclass(frozen=True)
class RowSpec:
    model: str                # "dense" or a CMoE configuration name
    activation: str           # "float", "int8" or "fp16"
    down_mode: str | None     # CMoE rows: "exact" or "requantized"
    router: str | None = None  # CMoE rows: "analytic", "fitted", the diagnostics "oracle", "random", or a method

    @property
    def label(self) -> str:
        down = f" ({self.router} router, {self.down_mode} down)" if self.down_mode else ""
        return f"{self.model} {self.activation}{down}"

    @property
    def carving_key(self) -> tuple[str, str] | None:
        """(configuration, router of the carving pass) this row runs on; None for dense rows."""
        if self.model == "dense" or is_gguf_row(self.model):
            return None
        if self.router in SMOLLM_METHODS:
            return self.model, self.router
        return self.model, "fitted" if self.router == "fitted" else "analytic"


# -- one row (a task: runs in a worker process, or here) -------------------------------------------

_MODELS: dict[str | None, SmolLM] = {}


def _host_model(gguf: str | None) -> SmolLM:
    """The model a row runs on (``gguf``: that file's, else the Q4_1 one), host in float64; loaded
    once per process."""
    if gguf not in _MODELS:
        keep_freed_memory()
        _MODELS[gguf] = with_host_dtype(load_smollm_gguf(gguf) if gguf else load_smollm(), HOST_DTYPE)
    return _MODELS[gguf]


@contextlib.contextmanager
def _one_thread():
    """One torch thread while a row or a carving runs (rows run side by side, one per core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _backend(spec: RowSpec, settings: EvalSettings) -> Linear:
    if is_gguf_row(spec.model):
        return gguf_backend(spec.activation, settings.rows, settings.cols)
    if spec.activation == "float":
        return FloatLinear()
    return ArrayLinear(array_config(spec.activation, settings.rows, settings.cols))


def _spread(perplexities: list[float]) -> dict:
    return {"spread_windows": len(perplexities), "spread_perplexities": perplexities,
            "perplexity_mean": statistics.fmean(perplexities), "perplexity_std": statistics.stdev(perplexities),
            "perplexity_min": min(perplexities), "perplexity_max": max(perplexities)}


def evaluate_row(spec: RowSpec, operands: bytes, settings: EvalSettings) -> dict:
    """Perplexity (first window), its spread, cycles and loads of one row; float rows also the long
    windows. ``operands`` is ``(carving or None, held-out windows)`` pickled (the first
    ``max(SPREAD_WINDOWS, float_windows)`` windows of ``eval_tokens``)."""
    with _one_thread():
        return _evaluate(spec, *pickle.loads(operands), settings)


def _evaluate(spec: RowSpec, carving, windows: list[torch.Tensor], settings: EvalSettings) -> dict:
    model = _host_model(settings.gguf if is_gguf_row(spec.model) else None)
    start, cpu_start = time.perf_counter(), time.thread_time()      # one torch thread: the row's CPU is this thread's
    selection = spec.router if spec.router in SELECTIONS else None
    merged_model = getattr(carving, "merged_model", None)        # LoRA: attention adapters merged
    model = merged_model(model, spec.down_mode) if merged_model is not None else model
    ffns = carving.ffns(model, spec.down_mode, selection, seed=RANDOM_SELECTION_SEED) if carving is not None else None
    long_count = settings.float_windows if spec.activation == "float" else 0
    linear = _backend(spec, settings)
    nlls = []                                                      # (nll, predicted tokens) per window
    for index, window in enumerate(windows[:max(SPREAD_WINDOWS, long_count)]):
        nlls.append(sequence_nll(forward(model, window, linear if index == 0 else _backend(spec, settings), ffns),
                                 window))
        if index == 0 and ffns is not None:
            loads = torch.stack([ffn.loads for ffn in ffns]).float()          # (layers, routed experts)
    nll, count = nlls[0]
    record = {"perplexity": math.exp(nll / count), "nll": nll, "predicted_tokens": count,
              **_spread([math.exp(a / b) for a, b in nlls[:SPREAD_WINDOWS]])}
    prefill = gemm_cycles(linear.calls, settings.rows, settings.cols, settings.row_groups)
    if ffns is not None:
        record["expert_load_cv"] = float((loads.std(dim=1) / loads.mean(dim=1)).mean())
        record["expert_load_max_over_mean"] = float((loads.max(dim=1).values / loads.mean(dim=1)).mean())
    if long_count:
        total, tokens = (sum(values) for values in zip(*nlls[:long_count]))
        record["perplexity_long"] = math.exp(total / tokens)
        record["long_tokens"] = tokens
        record["perplexity_windows"] = [math.exp(a / b) for a, b in nlls[:long_count]]
    record["eval_seconds"] = time.perf_counter() - start
    record["eval_cpu_seconds"] = time.thread_time() - cpu_start
    decode_linear = FloatLinear()
    forward(model, windows[0][:1], decode_linear, ffns)
    decode = gemm_cycles(decode_linear.calls, settings.rows, settings.cols, settings.row_groups)
    record["decode_by_row_groups"] = {
        str(groups): {key: value for key, value in
                      gemm_cycles(decode_linear.calls, settings.rows, settings.cols, groups).items()
                      if key in ("cycles", "utilization")}
        for groups in range(1, settings.rows + 1) if settings.rows % groups == 0}
    record.update({"cycles_per_token": prefill["cycles"] / len(windows[0]), "prefill_cycles": prefill["cycles"],
                   "prefill_utilization": prefill["utilization"], "prefill_tiles": prefill["tiles"],
                   "macs_per_token": prefill["useful_macs"] / len(windows[0]),
                   "decode_cycles_per_token": decode["cycles"], "decode_utilization": decode["utilization"]})
    return record


# -- the whole evaluation ------------------------------------------------------------------------

def _rows(settings: EvalSettings) -> list[RowSpec]:
    rows = [RowSpec("dense", "float", None)] + [RowSpec("dense", a, None) for a in settings.array_activations]
    if settings.gguf:
        rows += [RowSpec(gguf_row_name(settings.gguf), a, None) for a in ("float", *settings.array_activations)]
    for name in settings.configs:
        config = CMoEConfig.parse(name)
        routers = settings.routers if config.active < config.routed else ("analytic",)
        for router in routers:
            rows += [RowSpec(name, "float", "exact", router), RowSpec(name, "float", "requantized", router)]
            if config.active < config.routed:     # the all-active carving is a float-only check
                rows += [RowSpec(name, a, "requantized", router) for a in settings.array_activations]
        if config.active < config.routed:
            rows += [RowSpec(name, "float", "exact", selection) for selection in SELECTIONS]
            for method in settings.methods:
                rows += [RowSpec(name, "float", "exact", method), RowSpec(name, "float", "requantized", method)]
                rows += [RowSpec(name, a, "requantized", method) for a in settings.array_activations]
    return rows


#: ``submit(function, *args) -> future``: runs ``function(*args)`` (a module-level function) somewhere
#: and returns a future with ``result()`` and ``add_done_callback(fn)`` (a Dask client's ``submit``, an
#: executor's, :func:`inline_submit`).
Submit = Callable[..., concurrent.futures.Future]


def inline_submit(function: Callable, *args) -> concurrent.futures.Future:
    """Run ``function(*args)`` now, in this process; a finished future."""
    future = concurrent.futures.Future()
    try:
        future.set_result(function(*args))
    except Exception as error:                      # noqa: BLE001 - the future carries it, as an executor's does
        future.set_exception(error)
    return future


def _row_key(spec: RowSpec) -> str:
    return f"{spec.label} [{spec.model}|{spec.activation}|{spec.down_mode}|{spec.router}]"


#: Settings that choose which rows run (or how the run is checked), not what a row computes:
#: a run with other values reuses the rows it shares with the interrupted one (or the last report).
_ROW_SELECTION_FIELDS = ("workers", "configs", "array_activations", "routers", "methods", "rtl_tiles", "rtl_seed",
                         "rtl_tokens")
#: Settings added after rows were first recorded: part of a row's identity only when not at their default.
_LATER_FIELDS = ("e2e_stages",)
#: Settings each trained method's rows depend on besides the others' (in their ``train_settings``).
_METHOD_FIELDS = {"ladimo": ("train_windows", "distill_steps"), "ladimo+policy": ("train_windows", "distill_steps"),
                  "ladimo+e2e": ("train_windows", "distill_steps", "e2e_stages"),
                  "cmoe-lora": ("train_windows", "lora_windows")}


def _row_digest(settings: dict, texts: dict[str, str]) -> str:
    """Identity of the rows ``settings`` (:class:`EvalSettings` fields as a dict, e.g. a report's
    ``meta.settings``) computes on ``texts`` (SHA-256 of the ``calibration`` and ``evaluation``
    text): every field but :data:`_ROW_SELECTION_FIELDS` and the trained methods' own
    (:data:`_METHOD_FIELDS`, taken at their defaults: a trained row also has :func:`_train_settings`)."""
    defaults = json.loads(json.dumps(dataclasses.asdict(EvalSettings())))
    settings = json.loads(json.dumps(settings))                 # tuples as lists, as in report.json
    method_fields = {name for names in _METHOD_FIELDS.values() for name in names}
    fields = {name: defaults[name] if name in method_fields else value
              for name, value in settings.items() if name not in _ROW_SELECTION_FIELDS}
    fields = {name: value for name, value in fields.items() if not (name in _LATER_FIELDS and value == defaults[name])}
    identity = {"settings": fields, "spread_windows": SPREAD_WINDOWS, "host_dtype": str(HOST_DTYPE),
                "texts": [texts["calibration"], texts["evaluation"], text_digest("")],
                "random_seed": RANDOM_SELECTION_SEED}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _train_settings(settings: EvalSettings, router: str | None, training_digest: str) -> dict | None:
    """What a trained method's rows depend on besides :func:`_row_digest` (their record's
    ``train_settings``): its :data:`_METHOD_FIELDS` and the training text's SHA-256; None for others."""
    if router not in _METHOD_FIELDS:
        return None
    return json.loads(json.dumps({**{name: getattr(settings, name) for name in _METHOD_FIELDS[router]},
                                  "training_sha256": training_digest}))


class _PartialRows:
    """``rows.jsonl``: finished rows of a run whose rows compute with these settings
    (:func:`_row_digest`, and :func:`_train_settings` for trained rows), appended as they finish."""

    def __init__(self, path: Path, settings: EvalSettings, texts: dict[str, str]):
        self.path = path
        self.digest = _row_digest(dataclasses.asdict(settings), texts)
        self.done: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                entry = json.loads(line) if line.strip() else {}
                record = entry.get("record", {})
                if (entry.get("digest") == self.digest and "error" not in record and record.get("train_settings")
                        == _train_settings(settings, record.get("router"), texts["training"])):
                    self.done[entry["key"]] = record
        self._lock = threading.Lock()

    def add(self, spec: RowSpec, record: dict) -> None:
        with self._lock, self.path.open("a") as out:
            out.write(json.dumps({"key": _row_key(spec), "digest": self.digest, "record": record}) + "\n")

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def _spec(record: dict) -> RowSpec:
    return RowSpec(record["model"], record["activation"], record["down_mode"], record["router"])


def _previous_report(path: Path, digest: str) -> tuple[dict[str, dict], dict]:
    """The finished rows of the last report in ``path`` by row key, and its ``meta``, if its rows
    compute as this run's would (same :func:`_row_digest`; trained rows may differ in
    ``train_settings``); ({}, {}) otherwise."""
    try:
        previous = json.loads(path.read_text())
        meta = previous["meta"]
        same = (meta.get("spread_windows") == SPREAD_WINDOWS
                and meta.get("host_dtype") == str(HOST_DTYPE).removeprefix("torch.")
                and meta.get("seeds", {}).get("random_router") == RANDOM_SELECTION_SEED
                and _row_digest(meta["settings"], {"calibration": meta["calibration"]["sha256"],
                                                   "evaluation": meta["evaluation"]["sha256"]}) == digest)
    except (OSError, ValueError, KeyError, TypeError):
        return {}, {}
    if not same:
        return {}, {}
    return {_row_key(_spec(record)): record for record in previous["records"]
            if "error" not in record and record.get("perplexity") is not None}, meta


def _merged(settings: EvalSettings, meta: dict) -> EvalSettings:
    """``settings`` whose row choices (configurations, activations, routers, methods) also hold the
    previous report's (``meta``): the rows of the merged report, in :func:`_rows`' order."""
    previous = meta.get("settings", {})
    return dataclasses.replace(settings, **{
        name: tuple(dict.fromkeys([*previous.get(name, ()), *getattr(settings, name)]))
        for name in ("configs", "array_activations", "routers", "methods")})


def _static_fields(spec: RowSpec, carving, train_settings: dict | None) -> dict:
    """The fields of a row's record known before it runs."""
    config = CMoEConfig.parse(spec.model) if spec.carving_key else None
    return {"model": spec.model, "activation": spec.activation,
            "active_ratio": config.activation_ratio if config else 1.0,
            **({**method_fields(carving), "train_settings": train_settings} if train_settings else {}),
            "router": spec.router, "down_mode": spec.down_mode,
            "carving_seconds": carving.seconds if carving else None,
            "carving_cpu_seconds": carving.cpu_seconds if carving else None,
            "perplexity": None, "cycles_per_token": None}


def run_eval(out_dir: Path, settings: EvalSettings = EvalSettings(), log=print,
             rtl_check: RtlTileCheck | None = None, submit: Submit = inline_submit) -> tuple[list[dict], bool]:
    """Run every row (each a task given to ``submit``), write ``report.json``, ``report.md`` and
    ``perplexity_vs_cycles.png`` in ``out_dir``; returns (records, whether every row ran). ``rtl_check``
    runs the RTL check of ``settings.rtl_tiles`` tiles; it is required when that count is not 0."""
    if settings.rtl_tiles and rtl_check is None:
        raise CMoEError(f"rtl_tiles={settings.rtl_tiles}: an RTL tile check is needed "
                        f"(verif.smollm_tiles.check_sampled_tiles), or rtl_tiles=0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()
    keep_freed_memory()
    model32 = load_smollm()                         # the trained methods' own (float32) host
    model = with_host_dtype(model32, HOST_DTYPE)
    tokenizer = load_tokenizer()
    log(f"loaded {model.path.name}: {model.shape.layers} layers, hidden {model.shape.hidden}, "
        f"FFN {model.shape.ffn} ({time.perf_counter() - begin:.0f} s); host in {HOST_DTYPE}")
    for name in settings.configs:                   # before any carving: every carving has re-quantized rows
        CMoEConfig.parse(name).check_requantizable(model.shape.ffn)
    calibration_text, eval_text = corpus_text(CALIBRATION_MODULES), corpus_text(EVALUATION_MODULES)
    calibration = token_windows(tokenizer.encode(calibration_text).ids, settings.calibration_length,
                                settings.calibration_windows, "calibration text")
    held_out = token_windows(tokenizer.encode(eval_text).ids, settings.eval_tokens,
                             max(settings.float_windows, SPREAD_WINDOWS), "held-out text")
    training_text = corpus_text(TRAINING_MODULES)
    training = (token_windows(tokenizer.encode(training_text).ids, settings.calibration_length,
                              settings.train_windows, "training text") if settings.methods else [])

    specs = _rows(settings)
    texts = {"calibration": text_digest(calibration_text), "evaluation": text_digest(eval_text),
             "training": text_digest(training_text)}
    partial = _PartialRows(out_dir / PARTIAL_ROWS, settings, texts)
    reported, previous_meta = _previous_report(out_dir / "report.json", partial.digest)
    reusable = {**{key: record for key, record in reported.items() if record.get("train_settings")
                   == _train_settings(settings, record["router"], texts["training"])}, **partial.done}
    results: dict[RowSpec, dict] = {spec: reusable[_row_key(spec)] for spec in specs if _row_key(spec) in reusable}
    if results:
        log(f"{len(results)} of {len(specs)} rows from the interrupted run ({partial.path}) or the last report")
    carvings: dict[tuple[str, str], CarvedModel] = {}
    lock, finished_rows = threading.Lock(), threading.Semaphore(0)
    submitted = 0
    with progress(total=len(specs), desc="eval-smollm", unit="row") as bar:
        log = bar.wrap(log)
        for _ in results:
            bar.step()

        def finished(spec: RowSpec, static: dict, future) -> None:
            """Done callback (any thread): record the row and report it as it finishes."""
            try:
                record = {**static, **future.result()}
                partial.add(spec, record)
            except Exception as error:              # noqa: BLE001 - the row records it and the run fails
                record = {**static, "error": f"{type(error).__name__}: {error}"}
            with lock:
                results[spec] = record
                bar.step(f"{spec.label}: " + (
                    f"perplexity {record['perplexity']:.3f} (mean {record['perplexity_mean']:.3f} over "
                    f"{record['spread_windows']} windows), {record['cycles_per_token']:.0f} cycles/token "
                    f"({record['eval_seconds']:.0f} s, {record.get('eval_cpu_seconds', 0):.0f} CPU s)" if "error" not in record else f"FAILED {record['error']}"))
            finished_rows.release()

        def start(spec: RowSpec) -> None:
            nonlocal submitted
            carving = carvings.get(spec.carving_key)
            # Pickled here: a task is a function of bytes, whatever the executor does with its arguments.
            operands = pickle.dumps((carving, held_out[:max(settings.float_windows, SPREAD_WINDOWS)]))
            submitted += 1
            future = submit(evaluate_row, spec, operands, settings)
            train = _train_settings(settings, spec.router, texts["training"])
            future.add_done_callback(functools.partial(finished, spec, _static_fields(spec, carving, train)))

        missing = [spec for spec in specs if spec not in results]
        for spec in missing:                        # dense rows start while the carvings run
            if spec.carving_key is None:
                start(spec)
        keys = list(dict.fromkeys(spec.carving_key for spec in missing if spec.carving_key))
        rtl_done = reusable_checks(previous_meta, settings)
        done_pairs = {(check["source"], check["config"]) for check in rtl_done}
        sources = rtl_sources(settings, done_pairs)
        keys += [key for _, key in sources if key is not None and key not in keys]
        keys.sort(key=lambda key: key[1] in SMOLLM_METHODS)       # trained ones last: they start from the carvings
        for key in keys:
            name, router = key
            # One torch thread: the row workers hold the cores; two threads waiting for each other
            # there cost 7x the CPU (measured: 50 against 6.8 CPU s for 2 layers of carving under load).
            with _one_thread():
                if router in SMOLLM_METHODS:
                    carving = train_method(model32, router, CMoEConfig.parse(name), calibration, training, settings,
                                           carvings, log)
                else:
                    carving = carve_model(model, calibration, CMoEConfig.parse(name), k_act=settings.k_act,
                                          balance_steps=settings.balance_steps, bias_speed=settings.bias_speed,
                                          router=router)
            carvings[key] = carving
            log(f"{'trained' if router in SMOLLM_METHODS else 'carved'} {name} ({router}) in {carving.seconds:.1f} s "
                f"wall, {carving.cpu_seconds:.1f} s CPU")
            for spec in missing:
                if spec.carving_key == key:
                    start(spec)
        checks = rtl_done + rtl_checks(model, held_out[0][:settings.rtl_tokens], carvings, sources, settings,
                                       log, rtl_check, done_pairs)
        if settings.gguf and settings.rtl_tiles:
            checks += gguf_tile_checks(settings.gguf, held_out[0][:settings.rtl_tokens], settings.array_activations,
                                       settings.rows, settings.cols, count=settings.rtl_tiles,
                                       seed=settings.rtl_seed, check_sampled_tiles=rtl_check, log=log)
        for _ in range(submitted):
            finished_rows.acquire()
    checks = list({(check["source"], check["config"]): check for check in checks}.values())   # reruns replace

    merged = _merged(settings, previous_meta)                 # this run's rows and the last report's others
    by_key = {**reported, **{_row_key(spec): record for spec, record in results.items()}}
    records = [{**by_key[_row_key(spec)], "eval_tokens": settings.eval_tokens} for spec in _rows(merged)
               if _row_key(spec) in by_key]
    meta = {
        "model_file": SMOLLM_FILE, "python": platform.python_version(), "torch": torch.__version__,
        "libraries": _library_versions(), "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "host_dtype": str(HOST_DTYPE).removeprefix("torch."),
        "seeds": {"random_router": RANDOM_SELECTION_SEED, "rtl": settings.rtl_seed,
                  "carving": "none (deterministic: ties broken by index)"},
        "spread_windows": SPREAD_WINDOWS,
        "array": {"rows": settings.rows, "cols": settings.cols, "row_groups": settings.row_groups,
                  "weight_bits": 4, "group_size": 32, "zero_mode": "float_offset"},
        "settings": dataclasses.asdict(merged),
        "calibration": {"modules": list(CALIBRATION_MODULES), "sha256": text_digest(calibration_text),
                        "tokens": settings.calibration_windows * settings.calibration_length},
        "evaluation": {"modules": list(EVALUATION_MODULES), "sha256": text_digest(eval_text),
                       "tokens": settings.eval_tokens, "long_tokens": settings.eval_tokens * settings.float_windows},
        **({"training": {"modules": list(TRAINING_MODULES), "sha256": texts["training"],
                         "tokens": settings.train_windows * settings.calibration_length}}
           if any(record["router"] in SMOLLM_METHODS for record in records) else {}),
        "rtl_checks": checks, "total_seconds": time.perf_counter() - begin,
    }
    write_reports(out_dir, records, meta)
    ok = all("error" not in record for record in records) and all(check["passed"] for check in checks)
    if all("error" not in record for record in records):
        partial.finish()
    return records, ok


def _library_versions() -> dict[str, str]:
    """Versions of the libraries whose kernels or algorithms the numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version
    versions = {}
    for package in ("torch", "numpy", "scipy", "gguf", "tokenizers", "dask", "distributed"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def main_report(out_dir: Path, settings: EvalSettings, rtl_check: RtlTileCheck | None = None,
                submit: Submit = inline_submit) -> int:
    """CLI entry: run, print where the reports are, exit 1 if any row failed."""
    records, ok = run_eval(out_dir, settings, rtl_check=rtl_check, submit=submit)
    print(f"wrote {out_dir / 'report.md'}, {out_dir / 'report.json'}, {out_dir / 'perplexity_vs_cycles.png'}")
    if not ok:
        failed = [f"{r['model']} {r['activation']}" for r in records if "error" in r]
        print(f"mixpe eval-smollm: {len(failed)} row(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 0 if ok else 1
