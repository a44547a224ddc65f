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
row sees the same tokens). Float rows also report ``perplexity_long`` over ``float_windows``
windows of ``eval_tokens``. ``cycles_per_token`` is the prefill of that window: every GEMM the
forward pass ran, grouped in stages of GEMMs that share an input (q/k/v; o; gate/up of all experts;
down of all experts), each stage tiled by :func:`sw.moe_mapper.map_stage` (R x C tiles, tokens on
rows, ``row_groups`` bands) and timed by :func:`golden.cycles.predict_cycles`, summed over stages
(:func:`sw.smollm.gemm_cycles`) and divided by the window length. ``decode_cycles_per_token`` does the same for a one-token
forward. Only the 210 Q4_1 projections count; attention, norms, the router and the output head run
on the host (see :mod:`sw.smollm`).

Array rows run in ``workers`` processes (one thread each; bitexact_mpgemm costs ~0.2 us per
M*N*K/32 element on this machine, ~0.6 s per token for the dense model). The RTL check of sampled
tiles is a callable the caller passes in (``rtl_check``; ``gen`` wires
:func:`verif.smollm_tiles.check_sampled_tiles`); the reports are written by :mod:`sw.eval_report`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import multiprocessing
import pickle
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sw.cmoe import SELECTIONS, CarvedModel, CMoEConfig, CMoEError, carve_model
from sw.corpus import CALIBRATION_MODULES, EVALUATION_MODULES, corpus_text, text_digest, token_windows
from sw.eval_report import write_reports
from sw.eval_methods import TRAINING_MODULES, method_fields, train_method
from sw.progress import progress
from sw.settings import SMOLLM_CONFIGS as DEFAULT_CONFIGS, SMOLLM_METHODS, EvalSettings
from sw.smollm import (SMOLLM_FILE, ArrayLinear, FloatLinear, Linear, SmolLM, array_config, forward, gemm_cycles,
                       load_smollm, load_tokenizer, sequence_nll)
from sw.smollm_gguf import gguf_backend, gguf_row_name, gguf_tile_checks, is_gguf_row, load_smollm_gguf

__all__ = ["EvalSettings", "RowSpec", "run_eval", "main_report", "DEFAULT_CONFIGS"]

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


# -- one row (runs in a worker process) ----------------------------------------------------------

_MODEL: SmolLM | None = None


def _worker_init() -> None:
    global _MODEL
    torch.set_num_threads(1)
    _MODEL = load_smollm()


def _backend(activation: str, settings: EvalSettings) -> Linear:
    if activation == "float":
        return FloatLinear()
    return ArrayLinear(array_config(activation, settings.rows, settings.cols))


def _evaluate_row(spec: RowSpec, operands: bytes, settings: EvalSettings) -> dict:
    """Perplexity, cycles and loads of one row on ``window`` (and ``long_windows`` for float rows);
    ``operands`` is ``(carving or None, window, long_windows)``, pickled."""
    model = load_smollm_gguf(settings.gguf) if is_gguf_row(spec.model) else _MODEL
    start = time.perf_counter()
    carving, window, long_windows = pickle.loads(operands)
    selection = spec.router if spec.router in SELECTIONS else None
    merged_model = getattr(carving, "merged_model", None)        # LoRA: attention adapters merged
    model = merged_model(model, spec.down_mode) if merged_model is not None else model
    ffns = carving.ffns(model, spec.down_mode, selection) if carving is not None else None
    linear = (gguf_backend(spec.activation, settings.rows, settings.cols) if is_gguf_row(spec.model)
              else _backend(spec.activation, settings))
    nll, count = sequence_nll(forward(model, window, linear, ffns), window)
    record = {"perplexity": math.exp(nll / count), "nll": nll, "predicted_tokens": count}
    prefill = gemm_cycles(linear.calls, settings.rows, settings.cols, settings.row_groups)
    if ffns is not None:
        loads = torch.stack([ffn.loads for ffn in ffns]).float()          # (layers, routed experts)
        record["expert_load_cv"] = float((loads.std(dim=1) / loads.mean(dim=1)).mean())
        record["expert_load_max_over_mean"] = float((loads.max(dim=1).values / loads.mean(dim=1)).mean())
    record["eval_seconds"] = time.perf_counter() - start
    if spec.activation == "float" and long_windows:
        total = tokens = 0
        per_window = []
        for long_window in long_windows:
            a, b = sequence_nll(forward(model, long_window, FloatLinear(), ffns), long_window)
            total, tokens = total + a, tokens + b
            per_window.append(math.exp(a / b))
        record["perplexity_long"] = math.exp(total / tokens)
        record["long_tokens"] = tokens
        record["perplexity_windows"] = per_window          # the spread between held-out windows
    decode_linear = FloatLinear()
    forward(model, window[:1], decode_linear, ffns)
    decode = gemm_cycles(decode_linear.calls, settings.rows, settings.cols, settings.row_groups)
    record["decode_by_row_groups"] = {
        str(groups): {key: value for key, value in
                      gemm_cycles(decode_linear.calls, settings.rows, settings.cols, groups).items()
                      if key in ("cycles", "utilization")}
        for groups in range(1, settings.rows + 1) if settings.rows % groups == 0}
    record.update({"cycles_per_token": prefill["cycles"] / len(window), "prefill_cycles": prefill["cycles"],
                   "prefill_utilization": prefill["utilization"], "prefill_tiles": prefill["tiles"],
                   "macs_per_token": prefill["useful_macs"] / len(window),
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


#: ``check(config, model, tokens, *, count, seed, ffns, source) -> dict`` streams ``count`` sampled
#: tiles of ``model``'s forward pass on ``tokens`` through the RTL and returns a record with
#: ``tiles``, ``mismatches``, ``cycles``, ``predicted_cycles`` and ``passed``
#: (:func:`verif.smollm_tiles.check_sampled_tiles`; the simulator lives above ``sw``).
RtlTileCheck = Callable[..., dict]


def run_eval(out_dir: Path, settings: EvalSettings = EvalSettings(), log=print,
             rtl_check: RtlTileCheck | None = None) -> tuple[list[dict], bool]:
    """Run every row, write ``report.json``, ``report.md`` and ``perplexity_vs_cycles.png`` in
    ``out_dir``; returns (records, whether every row ran). ``rtl_check`` runs the RTL check of
    ``settings.rtl_tiles`` tiles; it is required when that count is not 0."""
    if settings.rtl_tiles and rtl_check is None:
        raise CMoEError(f"rtl_tiles={settings.rtl_tiles}: an RTL tile check is needed "
                        f"(verif.smollm_tiles.check_sampled_tiles), or rtl_tiles=0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()
    model = load_smollm()
    tokenizer = load_tokenizer()
    log(f"loaded {model.path.name}: {model.shape.layers} layers, hidden {model.shape.hidden}, "
        f"FFN {model.shape.ffn} ({time.perf_counter() - begin:.0f} s)")
    for name in settings.configs:                   # before any carving: every carving has re-quantized rows
        CMoEConfig.parse(name).check_requantizable(model.shape.ffn)
    calibration_text, eval_text = corpus_text(CALIBRATION_MODULES), corpus_text(EVALUATION_MODULES)
    calibration = token_windows(tokenizer.encode(calibration_text).ids, settings.calibration_length,
                                settings.calibration_windows, "calibration text")
    held_out = token_windows(tokenizer.encode(eval_text).ids, settings.eval_tokens,
                             max(settings.float_windows, 1), "held-out text")
    window, long_windows = held_out[0], held_out[:settings.float_windows]
    training_text = corpus_text(TRAINING_MODULES) if settings.methods else ""
    training = (token_windows(tokenizer.encode(training_text).ids, settings.calibration_length,
                              settings.train_windows, "training text") if settings.methods else [])

    specs = _rows(settings)
    results: dict[RowSpec, dict] = {}
    carvings: dict[tuple[str, str], CarvedModel] = {}
    context = multiprocessing.get_context("spawn")
    # The pool is left (its manager thread, which runs the done callbacks, joined) before the bar closes.
    with progress(total=len(specs), desc="eval-smollm", unit="row") as rows, \
            concurrent.futures.ProcessPoolExecutor(settings.workers, mp_context=context,
                                                   initializer=_worker_init) as pool:
        log = rows.wrap(log)
        futures = []

        def finished(spec: RowSpec, future: concurrent.futures.Future) -> None:
            """Done callback: record the row and report it (as it finishes, also during the carvings)."""
            try:
                results[spec] = future.result()
            except Exception as error:              # noqa: BLE001 - the row records it and the run fails
                results[spec] = {"error": f"{type(error).__name__}: {error}"}
            record = results[spec]
            rows.step(f"{spec.label}: " + (f"perplexity {record['perplexity']:.3f}, {record['cycles_per_token']:.0f} "
                                           f"cycles/token ({record['eval_seconds']:.0f} s)"
                                           if "error" not in record else f"FAILED {record['error']}"))

        def submit(spec: RowSpec) -> None:
            # Tensors are pickled here with plain pickle: the pool's pickler would move them into shared
            # memory from its feeder thread while this thread goes on using them.
            operands = pickle.dumps((carvings.get(spec.carving_key), window, long_windows))
            future = pool.submit(_evaluate_row, spec, operands, settings)
            future.add_done_callback(functools.partial(finished, spec))
            futures.append(future)

        for spec in specs:                          # dense rows start while the carvings run
            if spec.carving_key is None:
                submit(spec)
        keys = list(dict.fromkeys(spec.carving_key for spec in specs if spec.carving_key))
        keys.sort(key=lambda key: key[1] in SMOLLM_METHODS)       # trained ones last: they start from the carvings
        for key in keys:
            name, router = key
            if router in SMOLLM_METHODS:
                carving = train_method(model, router, CMoEConfig.parse(name), calibration, training, settings,
                                       carvings, log)
            else:
                carving = carve_model(model, calibration, CMoEConfig.parse(name), k_act=settings.k_act,
                                      balance_steps=settings.balance_steps, bias_speed=settings.bias_speed,
                                      router=router)
            carvings[key] = carving
            log(f"{'trained' if router in SMOLLM_METHODS else 'carved'} {name} ({router}) in {carving.seconds:.1f} s "
                f"wall, {carving.cpu_seconds:.1f} s CPU")
            for spec in specs:
                if spec.carving_key == key:
                    submit(spec)
        rtl_checks = _rtl_checks(model, held_out[0][:settings.rtl_tokens], carvings, settings, log, rtl_check)
        if settings.gguf and settings.rtl_tiles:
            rtl_checks += gguf_tile_checks(settings.gguf, held_out[0][:settings.rtl_tokens], settings.array_activations,
                                           settings.rows, settings.cols, count=settings.rtl_tiles,
                                           seed=settings.rtl_seed, check_sampled_tiles=rtl_check, log=log)
        concurrent.futures.wait(futures)

    records = []
    for spec in specs:
        config = CMoEConfig.parse(spec.model) if spec.carving_key else None
        carving = carvings.get(spec.carving_key)
        records.append({"model": spec.model, "activation": spec.activation,
                        "active_ratio": config.activation_ratio if config else 1.0,
                        **(method_fields(carving) if spec.router in SMOLLM_METHODS else {}),
                        "router": spec.router, "down_mode": spec.down_mode, "eval_tokens": settings.eval_tokens,
                        "carving_seconds": carving.seconds if carving else None,
                        "carving_cpu_seconds": carving.cpu_seconds if carving else None,
                        "perplexity": None, "cycles_per_token": None, **results[spec]})
    meta = {
        "model_file": SMOLLM_FILE, "python": platform.python_version(), "torch": torch.__version__,
        "libraries": _library_versions(), "machine": platform.machine(),
        "array": {"rows": settings.rows, "cols": settings.cols, "row_groups": settings.row_groups,
                  "weight_bits": 4, "group_size": 32, "zero_mode": "float_offset"},
        "settings": dataclasses.asdict(settings),
        "calibration": {"modules": list(CALIBRATION_MODULES), "sha256": text_digest(calibration_text),
                        "tokens": settings.calibration_windows * settings.calibration_length},
        "evaluation": {"modules": list(EVALUATION_MODULES), "sha256": text_digest(eval_text),
                       "tokens": settings.eval_tokens, "long_tokens": settings.eval_tokens * settings.float_windows},
        **({"training": {"modules": list(TRAINING_MODULES), "sha256": text_digest(training_text),
                         "tokens": settings.train_windows * settings.calibration_length}} if settings.methods else {}),
        "rtl_checks": rtl_checks, "total_seconds": time.perf_counter() - begin,
    }
    write_reports(out_dir, records, meta)
    ok = all("error" not in record for record in records) and all(check["passed"] for check in rtl_checks)
    return records, ok


def _library_versions() -> dict[str, str]:
    """Versions of the libraries whose kernels or algorithms the numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version
    versions = {}
    for package in ("torch", "numpy", "scipy", "gguf", "tokenizers"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _rtl_checks(model: SmolLM, tokens: torch.Tensor, carvings: dict[str, CarvedModel], settings: EvalSettings,
                log, check_sampled_tiles: RtlTileCheck) -> list[dict]:
    """``check_sampled_tiles`` for every array activation, on the dense model and on the sparsest
    carving (its experts, re-quantized down included); [] if ``rtl_tiles`` is 0."""
    if not settings.rtl_tiles:
        return []
    sources: list[tuple[str, list | None]] = [("dense", None)]
    array_carvings = [name for name in settings.configs if CMoEConfig.parse(name).active < CMoEConfig.parse(name).routed]
    if array_carvings:
        name = min(array_carvings, key=lambda n: CMoEConfig.parse(n).activation_ratio)
        router = "fitted" if "fitted" in settings.routers else "analytic"
        sources.append((f"{name} ({router} router)", carvings[name, router].ffns(model, "requantized")))
    checks = []
    for activation in settings.array_activations:
        for source, ffns in sources:
            config = array_config(activation, settings.rows, settings.cols)
            try:
                check = check_sampled_tiles(config, model, tokens, count=settings.rtl_tiles, seed=settings.rtl_seed,
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


def main_report(out_dir: Path, settings: EvalSettings, rtl_check: RtlTileCheck | None = None) -> int:
    """CLI entry: run, print where the reports are, exit 1 if any row failed."""
    records, ok = run_eval(out_dir, settings, rtl_check=rtl_check)
    print(f"wrote {out_dir / 'report.md'}, {out_dir / 'report.json'}, {out_dir / 'perplexity_vs_cycles.png'}")
    if not ok:
        failed = [f"{r['model']} {r['activation']}" for r in records if "error" in r]
        print(f"mixpe eval-smollm: {len(failed)} row(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 0 if ok else 1
