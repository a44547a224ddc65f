"""The Dask execution layer (gen/scale) and ``mixpe sweep``: a two-worker local cluster on a tiny space,
a worker killed mid-task, a task that raises, a rerun that resumes, an unreachable scheduler."""

import json
import os
import signal
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

from gen.cli import main
from gen.scale import Job, SchedulerUnreachable, connect, read_records, run_tasks
from gen.scale.sweep import SweepError, load_space, point_key, run_sweep
from gen.scale.sweep_report import pareto_front

# The workers unpickle this module's task functions by value: they cannot import a test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.xdist_group("dask-cluster")


@pytest.fixture(scope="module")
def client():
    with connect(workers=2) as dask_client:
        yield dask_client


def flaky_square(config: dict, spec: dict, payload) -> dict:
    """Kills its own worker process the first time it sees job ``kill`` (marker file), raises on ``raise``."""
    marker = Path(config["marker"])
    if spec["name"] == "kill" and not marker.exists():
        marker.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    if spec["name"] == "raise":
        raise ValueError("this point is broken")
    time.sleep(0.05)
    return {"square": spec["n"] ** 2, "payload": payload}


def test_faults_are_recorded_retried_and_resumed(client, tmp_path):
    results = tmp_path / "results.jsonl"
    config = {"marker": str(tmp_path / "marker")}
    names = ["a", "kill", "raise", "b", "c"]
    jobs = [Job(name, {"name": name, "n": n}, payload=lambda n=n: n + 100) for n, name in enumerate(names)]
    run = run_tasks(client, flaky_square, config, jobs, results, desc="test")
    assert (tmp_path / "marker").exists()                 # the worker really died once
    assert run.ran == 5 and run.reused == 0 and run.workers == 2
    by_key = {record["key"]: record for record in run.records}
    assert by_key["kill"]["result"] == {"square": 1, "payload": 101}      # retried on a live worker
    assert by_key["raise"]["error"] == "ValueError: this point is broken"
    assert [r["result"]["square"] for k, r in by_key.items() if k in "abc"] == [0, 9, 16]
    lines = read_records(results)
    assert sorted(record["key"] for record in lines) == sorted(names)   # nothing lost, nothing twice

    rerun = run_tasks(client, flaky_square, config, jobs, results, desc="test")
    assert rerun.ran == 1 and rerun.reused == 4                           # only the failed job runs again
    assert sorted(record["key"] for record in read_records(results)) == sorted(names)
    changed = run_tasks(client, flaky_square, {**config, "other": 1}, jobs[:1], results, desc="test")
    assert changed.ran == 1                                               # another config: measured again


def test_sweep_on_two_workers(client, tmp_path, monkeypatch):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"base": {"rows": 4, "cols": 4}, "grid": {"activation": ["int8", "fp16"]},
                                 "points": [{"group_size": 12}], "workload": {"m": 32, "n": 32, "k": 256}}))
    monkeypatch.setattr("gen.scale.cluster.connect", lambda scheduler, workers: _reuse(client))
    status = run_sweep(space, metrics="cycles,accuracy", out=tmp_path / "sweep")
    assert status == 1                                                    # the invalid point failed ...
    records = {r["key"]: r for r in read_records(tmp_path / "sweep" / "results.jsonl")}
    assert "group_size=12" in records["cols=4,group_size=12,rows=4"]["error"]
    good = records["activation=int8,cols=4,rows=4"]["result"]             # ... the others are measured
    assert good["cycles"] > 0 and 0 < good["utilization"] <= 1 and good["relative_error"] < 1e-6
    summary = (tmp_path / "sweep" / "summary.md").read_text()
    assert "Failed points (1)" in summary and "activation=fp16,cols=4,rows=4" in summary
    assert (tmp_path / "sweep" / "pareto.png").stat().st_size > 0


class _reuse:
    """The module's client as a context manager that leaves it open."""

    def __init__(self, client):
        self.client = client

    def __enter__(self):
        return self.client

    def __exit__(self, *exc):
        return False


def test_space_grid_points_and_errors(tmp_path):
    space = load_space({"base": {"rows": 8}, "grid": {"activation": ["int8", "fp16"], "group_size": [32, 64]},
                        "points": [{"weight_bits": 2}]}, metrics="cycles")
    assert len(space.points) == 5 and space.metrics == ("cycles",)
    assert point_key(space.points[0]) == "activation=int8,group_size=32,rows=8"
    assert len(load_space().points) == 6                                   # the default space
    with pytest.raises(SweepError, match="unknown parameter"):
        load_space([{"colums": 4}])
    with pytest.raises(SweepError, match="metrics"):
        load_space([{}], metrics="area,speed")
    with pytest.raises(SweepError, match="file not found"):
        load_space(path=tmp_path / "missing.json")


def test_pareto_front_keeps_the_undominated():
    records = [{"key": k, "result": {"area_ge": a, "quantization_error": e}}
               for k, a, e in (("small", 1, 0.3), ("big", 3, 0.1), ("worse", 3, 0.2), ("mid", 2, 0.2))]
    assert [r["key"] for r in pareto_front(records, "area_ge", "quantization_error")] == ["small", "mid", "big"]


def test_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("gen.scale.cluster.CONNECT_TIMEOUT_S", 1)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:9")
    with pytest.raises(SchedulerUnreachable, match="tcp://127.0.0.1:9"):
        with connect(timeout=1):
            pass
    assert main(["sweep", "--metrics", "cycles", "--out", str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("mixpe sweep: scheduler tcp://127.0.0.1:9: no Dask scheduler answers") and "\n" not in error
