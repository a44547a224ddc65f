"""``mixpe verify-model``'s report (``report.json``): totals, failures, the resumed runs (segments) and the
projection of the whole forward pass; and ``--compare-workers``, the same tasks on 1, 2, ... local workers
side by side."""

from __future__ import annotations

import json
import math
import os
import time

__all__ = ["PROJECTED_WORKERS", "build_report", "segments", "projection", "compare_workers"]

#: Worker counts of the projection in the report.
PROJECTED_WORKERS = (1, 2, 8, 64, 256)
#: Result fields that differ from run to run (timing, which process built the bench).
UNSTABLE_FIELDS = ("sim_seconds", "cold")


def segments(records: list[dict]) -> list[dict]:
    """Per run of the command that wrote ``records`` (their ``segment``; records of runs before it was
    recorded form one segment with ``started`` None): tasks, tiles, the wall time of its timed tasks,
    the tasks' wall and CPU seconds on the workers, the client's CPU seconds, workers."""
    runs: dict = {}
    for record in records:
        mark = record.get("segment") or {}
        run = runs.setdefault(mark.get("started"), {
            "started": mark.get("started"), "workers": mark.get("workers"), "warmup_seconds": mark.get("warmup_seconds"),
            "tasks": 0, "tiles": 0, "task_wall_seconds": 0.0, "task_seconds": 0.0, "worker_cpu_seconds": 0.0,
            "client_cpu_seconds": 0.0})
        run["tasks"] += 1
        run["tiles"] += record.get("result", {}).get("tiles", 0)
        run["task_seconds"] += record.get("seconds", 0.0)
        run["worker_cpu_seconds"] += record.get("cpu_seconds", 0.0)
        run["task_wall_seconds"] = max(run["task_wall_seconds"], mark.get("elapsed_seconds", 0.0))
        run["client_cpu_seconds"] = max(run["client_cpu_seconds"], mark.get("client_cpu_seconds", 0.0))
    return sorted(runs.values(), key=lambda run: run["started"] or "")


def projection(config, gemms: list, records: list[dict]) -> dict:
    """Every tile of the pass and its model cycles; the measured task seconds (and CPU seconds) per
    model cycle (warm tasks: no build, no Verilog emission) and the time of the whole pass on N
    workers at that cost; how much of the pass the records hold, and the runs (segments) that made
    them with their summed wall and CPU time."""
    from golden.cycles import predict_cycles
    from sw.packer import tile_grid
    measured = [r for r in records if "result" in r]
    warm = [r for r in measured if not r["result"].get("cold")] or measured
    seconds = sum(r["seconds"] for r in warm)
    cpu = sum(r.get("cpu_seconds", 0.0) for r in warm)
    cycles = sum(r["result"]["model_cycles"] for r in warm)
    warm_tiles = sum(r["result"]["tiles"] for r in warm)
    total_cycles = total_tiles = 0
    for _, x, weight in gemms:
        grid = tile_grid(config, x.shape[0], weight.shape[0])
        per_row_block = len(grid) // math.ceil(x.shape[0] / config.rows)
        groups = math.ceil(weight.shape[1] / config.group_size)
        total_cycles += predict_cycles(config, [groups] * per_row_block).cycles * (len(grid) // per_row_block)
        total_tiles += len(grid)
    per_cycle = seconds / cycles if cycles else None
    runs = segments(records)
    done_tiles = sum(r["result"]["tiles"] for r in measured)
    return {"tiles": total_tiles, "model_cycles": total_cycles, "task_seconds_per_cycle": per_cycle,
            "warm_tasks": len(warm),
            "task_seconds_per_tile": seconds / warm_tiles if warm else None,
            "worker_cpu_seconds_per_tile": cpu / warm_tiles if warm and cpu else None,
            "worker_cpu_seconds_per_cycle": cpu / cycles if cycles and cpu else None,
            "projected_seconds": {str(n): per_cycle * total_cycles / n for n in PROJECTED_WORKERS} if per_cycle else {},
            "done_tiles": done_tiles, "done_fraction": done_tiles / total_tiles if total_tiles else None,
            "done_model_cycles": sum(r["result"]["model_cycles"] for r in measured),
            "segments": runs,
            "task_wall_seconds_total": sum(run["task_wall_seconds"] for run in runs),
            "worker_cpu_seconds_total": sum(run["worker_cpu_seconds"] for run in runs),
            "client_cpu_seconds_total": sum(run["client_cpu_seconds"] for run in runs)}


def build_report(run, task_run, sampled: dict, seed: int, total_seconds: float, *, running: bool = False) -> dict:
    """``report.json`` of :class:`gen.scale.verify_model._Run` ``run`` after ``task_run`` (a
    :class:`gen.scale.tasks.TaskRun`; ``running``: a checkpoint while its tasks still run)."""
    from gen.scale.verify_model import GemmTiles
    config, settings = run.config, run.settings
    done = [r for r in task_run.records if "result" in r]
    failures, errors = [], []
    for record in task_run.records:
        result = record.get("result")
        bad = result is not None and (result["mismatches"] or result["cycles"] != result["model_cycles"])
        if result is not None and not bad:
            continue
        pieces = record["job"].get("pieces", [record["job"]])
        for piece in pieces:
            where = {"layer": piece["stage"].split(".")[0], "projection": piece["projection"], "row0": piece["row0"]}
            if result is None:
                errors.append({**where, "cols": piece["cols"], "problem": record["error"]})
                continue
            cols = (result["mismatched"].get(GemmTiles.from_spec(piece).key, []) if "mismatched" in result
                    else result["mismatched_cols"])
            if result["mismatches"] and not cols and len(pieces) > 1:
                continue                                   # the batch's wrong beats are in other pieces
            failures.append({**where, "cols": cols or piece["cols"],
                             "problem": f"{result['mismatches']} mismatching result beats, {result['cycles']} cycles "
                                        f"(model {result['model_cycles']})" + (
                                            f" in a stream of {len(pieces)} row blocks" if len(pieces) > 1 else "")})
    now = [r for r in done if (r.get("segment") or {}).get("started") == _latest(task_run.records)]
    tiles_now = sum(r["result"]["tiles"] for r in now)
    return {
        "model": run.model, "config": config.name, "config_hash": config.hash, "config_params": settings["config"],
        **{key: value for key, value in settings.items() if key != "config"}, "seed": seed,
        "sampled": sampled, "status": "running" if running else "finished",
        "tasks": len(task_run.records), "tasks_selected": len(run.tasks), "workers": task_run.workers,
        "tiles": sum(r["result"]["tiles"] for r in done),
        "tiles_selected": sum(task.tiles for task in run.tasks),
        "result_beats": sum(r["result"]["result_beats"] for r in done),
        "mismatches": sum(r["result"]["mismatches"] for r in done),
        "cycles": sum(r["result"]["cycles"] for r in done),
        "model_cycles": sum(r["result"]["model_cycles"] for r in done),
        "cycle_mismatches": sum(r["result"]["cycles"] != r["result"]["model_cycles"] for r in done),
        "macs": sum(r["result"]["macs"] for r in done),
        "task_wall_seconds": task_run.wall_seconds, "warmup_seconds": task_run.warmup_seconds,
        "task_cpu_seconds": sum(r["seconds"] for r in done),
        "worker_cpu_seconds": sum(r.get("cpu_seconds", 0.0) for r in done),
        "client_cpu_seconds": task_run.client_cpu_seconds,
        "client_cpu_seconds_per_tile": task_run.client_cpu_seconds / tiles_now if tiles_now else None,
        "worker_cpu_seconds_per_tile": sum(r.get("cpu_seconds", 0.0) for r in now) / tiles_now if tiles_now else None,
        "sim_seconds": sum(r["result"]["sim_seconds"] for r in done), "wall_seconds": total_seconds,
        "tasks_run_now": task_run.ran, "tasks_reused": task_run.reused,
        "failures": failures, "errors": errors, "full_pass": projection(config, run.gemms, task_run.records),
    }


def _latest(records: list[dict]) -> str | None:
    """``started`` of the newest segment among ``records``."""
    return max(((r.get("segment") or {}).get("started") or "" for r in records), default=None) or None


def _stable(record: dict) -> dict:
    """A record's result without its timing fields (what two runs of the same task must agree on)."""
    return {key: value for key, value in record.get("result", {"error": record.get("error")}).items()
            if key not in UNSTABLE_FIELDS}


def compare_workers(run, counts, function, log) -> int:
    """The tasks of ``run`` once on a local cluster of each worker count in ``counts`` (fresh each
    time, records in ``<out>/compare/workers-<n>/``): task wall time after the warm-up, speedup over
    the first count, client and worker CPU per tile, the load average, and whether every task's
    result is identical; printed side by side and written to ``<out>/compare/compare.json``. 0 when
    the results are identical and bit- and cycle-exact."""
    from gen.scale.cluster import connect
    from gen.scale.tasks import run_tasks
    rows, results = [], {}
    tiles = sum(task.tiles for task in run.tasks)
    for count in counts:
        directory = run.out / "compare" / f"workers-{count}"
        (directory / "tiles.jsonl").unlink(missing_ok=True)
        load_before = os.getloadavg()[0]
        with connect(None, count) as client:
            task_run = run_tasks(client, function, run.settings, run.jobs(), directory / "tiles.jsonl",
                                 desc=f"verify-model, {count} workers", unit="task")
        records = task_run.records
        results[count] = {record["key"]: _stable(record) for record in records}
        done = [r for r in records if "result" in r]
        rows.append({"workers": count, "task_wall_seconds": task_run.wall_seconds,
                     "warmup_seconds": task_run.warmup_seconds,
                     "client_cpu_seconds": task_run.client_cpu_seconds,
                     "worker_cpu_seconds": sum(r.get("cpu_seconds", 0.0) for r in records),
                     "client_cpu_ms_per_tile": 1e3 * task_run.client_cpu_seconds / tiles,
                     "worker_cpu_ms_per_tile": 1e3 * sum(r.get("cpu_seconds", 0.0) for r in records) / tiles,
                     "mismatches": sum(r["result"]["mismatches"] for r in done),
                     "cycle_mismatches": sum(r["result"]["cycles"] != r["result"]["model_cycles"] for r in done),
                     "errors": len(records) - len(done), "load": [round(load_before, 2), round(os.getloadavg()[0], 2)]})
    base = rows[0]["task_wall_seconds"]
    for row in rows:
        row["speedup"] = base / row["task_wall_seconds"] if row["task_wall_seconds"] else None
    first = results[counts[0]]
    identical = all(result == first for result in results.values())
    exact = all(not (row["mismatches"] or row["cycle_mismatches"] or row["errors"]) for row in rows)
    summary = {"model": run.model, "config": run.config.name, "tasks": len(run.tasks), "tiles": tiles,
               "identical_results": identical, "runs": rows,
               "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (run.out / "compare").mkdir(parents=True, exist_ok=True)
    (run.out / "compare" / "compare.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"verify-model {run.model}: {tiles} tiles in {len(run.tasks)} tasks; task wall after each worker's warm-up")
    log(f"{'workers':>7} {'task wall':>10} {'speedup':>8} {'client CPU/tile':>16} {'worker CPU/tile':>16} "
        f"{'mismatches':>10} {'load':>11}")
    for row in rows:
        log(f"{row['workers']:>7} {row['task_wall_seconds']:>8.2f} s {row['speedup']:>7.2f}x "
            f"{row['client_cpu_ms_per_tile']:>13.1f} ms {row['worker_cpu_ms_per_tile']:>13.1f} ms "
            f"{row['mismatches'] + row['cycle_mismatches'] + row['errors']:>10} "
            f"{row['load'][0]:>5.1f}-{row['load'][1]:<5.1f}")
    log(f"identical results: {'yes (every task record)' if identical else 'NO'}; "
        f"wrote {run.out / 'compare' / 'compare.json'}")
    return 0 if identical and exact else 1
