"""``mixpe sweep``: a design space of MixPE configurations, every point measured in its own Dask task.

A space is a JSON file (``docs/scale-out.md``)::

    {"base": {"rows": 8, "cols": 8},                       # parameters every point shares
     "grid": {"activation": ["int8", "fp16"], "group_size": [32, 128]},   # their product ...
     "points": [{"activation": "fp8_e4m3", "guard_bits": 2}],             # ... and/or a list
     "metrics": ["area", "cycles", "accuracy"],            # optional: the default metrics
     "workload": {"m": 256, "n": 576, "k": 1536}}          # optional: the cycle-model GEMM

or a bare JSON list of points. Parameters are :class:`hw.config.MixPEConfig` fields (``rows``, ``cols``,
``weight_bits``, ``activation``, ``group_size``, ``guard_bits``, ``gdu_lanes``, ...). Metrics (the
fields each adds to a point's record):

``area``      Yosys (generic gates, cached in ``build/synth``): ``area_ge`` of the R x C array of PEs
              with its edge blocks, ``area_per_mac_ge`` (:func:`gen.synth.area.array_summary`);
``timing``    OpenSTA on the OSU018 library: ``fmax_mhz`` of the slowest block (minutes per point);
``power``     ``make power``'s flow (cached in ``build/power``), uniform workload: ``energy_pj_per_mac``, ``power_mw``;
``cycles``    the cycle model on the workload GEMM (:func:`golden.cycles.predict_cycles`): ``cycles``,
              ``utilization``, ``dequant_stalls``, and ``gemm_us`` when ``fmax_mhz`` is known;
``accuracy``  ``make accuracy``'s method on random RTN weights and LLM-like activations (64 x 256 x
              1024, seed 2026): ``relative_error`` (vs float64 on the same quantized operands, the
              accumulation error) and ``quantization_error`` (vs float64 on the unquantized ones).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from pathlib import Path

from hw.config import ConfigError, MixPEConfig
from hw.errors import MixPEError

__all__ = ["SweepError", "METRICS", "METRIC_FIELDS", "run_sweep", "DEFAULT_METRICS", "DEFAULT_SPACE",
           "DEFAULT_WORKLOAD", "Space", "load_space",
           "point_key", "measure_point"]

METRICS = ("area", "timing", "power", "cycles", "accuracy")
DEFAULT_METRICS = ("area", "cycles", "accuracy")
#: The cycle-model GEMM: SmolLM2's FFN down projection on a 256-token prefill.
DEFAULT_WORKLOAD = {"m": 256, "n": 576, "k": 1536}
#: Runs in a few minutes on 2 cores (Yosys on each point's GDU takes most of it).
DEFAULT_SPACE = {"base": {"rows": 8, "cols": 8, "weight_bits": 4},
                 "grid": {"activation": ["int8", "fp16", "fp8_e4m3"], "group_size": [32, 128]}}
#: The accuracy GEMM (tokens x channels x K) and its seed, as ``make accuracy`` uses.
ACCURACY_SHAPE = (64, 256, 1024)
ACCURACY_SEED = 2026
SPACE_KEYS = ("base", "grid", "points", "metrics", "workload")
#: The metric fields of a point's record (table and plot order) and their headings.
METRIC_FIELDS = {"area_ge": "area (GE)", "area_per_mac_ge": "GE/MAC", "fmax_mhz": "fmax (MHz)",
                 "energy_pj_per_mac": "pJ/MAC", "cycles": "cycles", "utilization": "utilization",
                 "gemm_us": "GEMM (us)", "relative_error": "rel. error", "quantization_error": "quant. error"}
COLUMNS_HELP = ", ".join(METRIC_FIELDS)


class SweepError(MixPEError, ValueError):
    """The design space or a sweep option is invalid."""


@dataclasses.dataclass(frozen=True)
class Space:
    """The points (parameter dicts), the metrics and the workload of a sweep."""
    points: tuple[dict, ...]
    metrics: tuple[str, ...]
    workload: dict


def _check_metrics(metrics, where: str) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = [name.strip() for name in metrics.split(",") if name.strip()]
    unknown = [name for name in metrics if name not in METRICS]
    if not metrics or unknown:
        raise SweepError(f"{where}={metrics!r}: choose one or more of {', '.join(METRICS)}")
    return tuple(dict.fromkeys(metrics))


def load_space(data: dict | list | None = None, *, path: Path | None = None, metrics=None) -> Space:
    """The :class:`Space` of ``data`` (the JSON of ``path``, or :data:`DEFAULT_SPACE` with neither);
    ``metrics`` (a list or ``"area,cycles"``) overrides the space's own."""
    where = "space" if path is None else f"space {path}"
    if path is not None:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SweepError(f"space={str(path)!r}: file not found") from None
        except json.JSONDecodeError as error:
            raise SweepError(f"space={str(path)!r}: not valid JSON ({error})") from None
    if data is None:
        data = DEFAULT_SPACE
    if isinstance(data, list):
        data = {"points": data}
    if not isinstance(data, dict) or set(data) - set(SPACE_KEYS):
        raise SweepError(f"{where}: expected a JSON list of points or an object with keys {', '.join(SPACE_KEYS)}")
    base, grid = data.get("base", {}), data.get("grid", {})
    if not isinstance(grid, dict) or any(not isinstance(values, list) or not values for values in grid.values()):
        raise SweepError(f"{where}: 'grid' must map each parameter to a non-empty list of values")
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else []
    points += list(data.get("points", []))
    if not points and base:
        points = [{}]
    known = {field.name for field in dataclasses.fields(MixPEConfig)} - {"name"}
    for point in [base, *points]:
        if not isinstance(point, dict):
            raise SweepError(f"{where}: point {point!r}: expected an object of parameters")
        if set(point) - known:
            raise SweepError(f"{where}: point {point!r} has unknown parameter(s) {sorted(set(point) - known)}; "
                             f"allowed: {sorted(known)}")
    points = [{**base, **point} for point in points]
    keys = [point_key(point) for point in points]
    if not points or len(set(keys)) != len(keys):
        raise SweepError(f"{where}: needs at least one point and no point twice ({len(points)} points, "
                         f"{len(set(keys))} distinct)")
    workload = {**DEFAULT_WORKLOAD, **data.get("workload", {})}
    if set(workload) != set(DEFAULT_WORKLOAD) or any(not isinstance(v, int) or v < 1 for v in workload.values()):
        raise SweepError(f"{where}: workload={workload!r}: expected positive integers m, n, k")
    chosen = _check_metrics(metrics if metrics is not None else data.get("metrics", DEFAULT_METRICS),
                            "metrics" if metrics is not None else f"{where} metrics")
    return Space(tuple(points), chosen, workload)


def point_key(point: dict) -> str:
    """The point's parameters as ``name=value`` pairs in name order: its key in ``results.jsonl``."""
    return ",".join(f"{name}={point[name]}" for name in sorted(point))


# -- the metrics of one point (worker side) ------------------------------------------------------

def _edge_blocks(config: MixPEConfig) -> tuple[str, ...]:
    from gen.synth.area import array_needs
    needs, _ = array_needs("mixpe", config)
    return ("pe", *(block for _, block, _ in needs))


def _synthesized(config: MixPEConfig, block: str, synth_root: str, liberty=None) -> dict:
    """:func:`gen.synth.synthesize` of the MixPE ``block``, locked: two tasks of one configuration never
    share Yosys's work directory."""
    from gen.synth import synthesize
    from verif.runner import build_lock
    with build_lock(Path(synth_root) / "locks" / f"mixpe-{block}-{config.hash}"):
        return synthesize(config, "mixpe", block, liberty, out_root=synth_root)


def _area(config: MixPEConfig, synth_root: str) -> dict:
    from gen.synth.area import array_summary
    records = [_synthesized(config, block, synth_root) for block in _edge_blocks(config)]
    (mixpe,) = [row for row in array_summary(config, records) if row["design"] == "mixpe"]
    return {"area_ge": mixpe["total_area_ge"], "area_per_mac_ge": mixpe["per_mac_area_ge"],
            "pe_area_ge": mixpe["pes_area_ge"] / mixpe["pes"]}


def _timing(config: MixPEConfig, synth_root: str) -> dict:
    from gen.synth import resolve_liberty
    from gen.synth.timing import block_timing
    liberty = resolve_liberty("osu018")
    paths = {}
    for block in _edge_blocks(config):
        _synthesized(config, block, synth_root, liberty)
        paths[block] = block_timing(config, "mixpe", block, liberty, synth_root=synth_root)["critical_path_ns"]
    slowest = max(paths, key=paths.get)
    return {"fmax_mhz": 1000.0 / paths[slowest], "limiting_block": slowest}


def _power(config: MixPEConfig, synth_root: str) -> dict:
    from gen.power.flow import PowerSettings, run_power
    from gen.synth import resolve_liberty
    records = run_power(config, resolve_liberty("osu018"), PowerSettings(workloads=("uniform",)), designs=["mixpe"],
                        synth_root=synth_root, log=lambda *args: None)
    (array,) = [r for r in records if r["design"] == "mixpe" and r["block"] == "array"]
    return {"energy_pj_per_mac": array["energy_pj_per_mac"], "power_mw": array["power_mw"]}


def _cycles(config: MixPEConfig, workload: dict) -> dict:
    from golden.cycles import predict_cycles
    from sw.packer import tile_grid
    m, n, k = workload["m"], workload["n"], workload["k"]
    groups = math.ceil(k / config.group_size)
    report = predict_cycles(config, [groups] * len(tile_grid(config, m, n)), useful_macs=m * n * k)
    return {"cycles": report.cycles, "utilization": report.utilization(config),
            "dequant_stalls": report.dequant_stalls}


def _accuracy(config: MixPEConfig) -> dict:
    import torch
    from gen.accuracy import llm_like_activations
    from golden.fp_activations import encode_activations
    from golden.mpgemm import bitexact_mpgemm, float_reference
    from golden.operands import quantize_activations_int8, quantize_weights_rtn
    m, n, k = ACCURACY_SHAPE
    k = config.group_size * math.ceil(k / config.group_size)
    generator = torch.Generator().manual_seed(ACCURACY_SEED)
    w_float = torch.randn((n, k), generator=generator, dtype=torch.float64) * 0.02
    weights = quantize_weights_rtn(config, w_float)
    values = llm_like_activations(m, k, ACCURACY_SEED + 1)
    if config.fp_activation:
        limit = config.act_format.max_finite
        x, act_scale = encode_activations(config, values.clamp(-limit, limit)), None
    else:
        x, act_scale = quantize_activations_int8(values)
    y = bitexact_mpgemm(config, x, act_scale, weights).double()
    reference = float_reference(config, x, act_scale, weights)
    exact = values @ w_float.T
    return {"relative_error": float((y - reference).norm() / reference.norm()),
            "quantization_error": float((y - exact).norm() / exact.norm())}


def measure_point(settings: dict, point: dict, payload=None) -> dict:
    """The task of one point: ``settings`` holds ``metrics``, ``workload`` and ``synth_root``; returns
    the configuration's name and hash and every requested metric's fields."""
    try:
        config = MixPEConfig(**point)
    except TypeError as error:
        raise ConfigError(f"point {point_key(point)}: {error}") from None
    config = config.replace(name=f"sweep-{config.hash}")
    metrics = settings["metrics"]
    record = {"config_hash": config.hash, "lanes": config.lanes}
    if "area" in metrics:
        record.update(_area(config, settings["synth_root"]))
    if "timing" in metrics:
        record.update(_timing(config, settings["synth_root"]))
    if "power" in metrics:
        record.update(_power(config, settings["synth_root"]))
    if "cycles" in metrics:
        record.update(_cycles(config, settings["workload"]))
        if "fmax_mhz" in record:
            record["gemm_us"] = record["cycles"] / record["fmax_mhz"]
    if "accuracy" in metrics:
        record.update(_accuracy(config))
    return record


# -- the command (client side) --------------------------------------------------------------------

def _point_label(record: dict) -> str:
    if "error" in record:
        return f"{record['key']}: FAILED {record['error']}"
    shown = {name: record["result"][name] for name in ("area_ge", "cycles", "quantization_error")
             if name in record["result"]}
    return f"{record['key']}: " + ", ".join(f"{name} {value:.4g}" for name, value in shown.items())


def run_sweep(space_path: Path | None, *, metrics=None, x: str | None = None, y: str | None = None,
              out: Path = Path("build/sweep"), synth_root: str = "build/synth", fresh: bool = False,
              scheduler: str | None = None, workers: int | None = None) -> int:
    """Measure the space of ``space_path`` (None: :data:`DEFAULT_SPACE`) on a Dask cluster; write
    ``results.jsonl``, ``summary.md`` and ``pareto.png`` (``y`` against ``x``) in ``out``. Returns 0, or 1
    when a point failed (its record holds the error; every other point is measured and reported)."""
    from gen.scale.cluster import connect
    from gen.scale.sweep_report import write_plot, write_summary
    from gen.scale.tasks import Job, run_tasks
    space = load_space(path=space_path, metrics=metrics)
    x = x or ("area_ge" if "area" in space.metrics else "cycles")
    y = y or ("quantization_error" if "accuracy" in space.metrics else "utilization")
    for axis, name in (("x", x), ("y", y)):
        if name not in METRIC_FIELDS:
            raise SweepError(f"{axis}={name!r}: choose a metric field: {COLUMNS_HELP}")
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    if fresh:
        results.unlink(missing_ok=True)
    settings = {"metrics": list(space.metrics), "workload": space.workload, "synth_root": synth_root}
    jobs = [Job(point_key(point), point) for point in space.points]
    with connect(scheduler, workers) as client:
        run = run_tasks(client, measure_point, settings, jobs, results, desc="sweep", unit="point",
                        label=_point_label)
    summary = write_summary(out / "summary.md", run.records, x=x, y=y, metrics=space.metrics,
                            workload=space.workload, run=run)
    plot = write_plot(out / "pareto.png", run.records, x, y)
    print(f"sweep: {len(jobs)} points ({run.ran} measured on {run.workers} workers in {run.wall_seconds:.1f} s "
          f"after a {run.warmup_seconds:.1f} s warm-up, "
          f"{run.reused} from an earlier run); wrote {results}, {summary}" + (f", {plot}" if plot else ""))
    if run.failed:
        print(f"mixpe sweep: {len(run.failed)} point(s) failed: " + "; ".join(
            f"{record['key']}: {record['error']}" for record in run.failed), file=sys.stderr)
    return 1 if run.failed else 0
