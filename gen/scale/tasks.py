"""Run jobs as Dask tasks; stream their records to a JSON-lines file as they finish; resume a rerun.

A task is a pure function ``function(config, spec, payload) -> dict`` (JSON-able): ``config`` holds the
settings shared by every job of a run (JSON-able), ``spec`` names one job (JSON-able: what a record
keeps), ``payload`` is its data (tensors or None; never recorded), or a function of no arguments that makes it,
called only shortly before the task is submitted (a bounded window of tasks is in flight). Functions
must be importable module-level functions (workers import them by name).

One line per job in the results file::

    {"key": "...", "job": {spec}, "config_digest": "...", "result": {...}, "seconds": 1.2, "worker": "host:pid"}

or, when the function raised (or its worker died too often), ``"error": "Type: message"`` instead
of ``result``. A rerun on the same file skips every job whose key has a ``result`` under the same
``config_digest`` (a changed ``config`` runs everything again); failed jobs run again.

Faults: a worker that dies mid-task (killed, out of memory) loses only its running task, which the
scheduler hands to another worker (up to Dask's ``distributed.scheduler.allowed-failures``, then the
job records a ``KilledWorker`` error); a record is written only when a task's result reaches the
client, once per job, so nothing is lost or counted twice. What a task prints is captured on its
worker (kept in the record only when it fails) so it does not cross the client's progress display.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import itertools
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from sw.progress import format_duration, progress

__all__ = ["Job", "TaskRun", "run_tasks", "execute", "read_records", "config_digest"]

#: Lines of a failed task's output kept in its record.
OUTPUT_TAIL_LINES = 20
#: Tasks submitted ahead per worker (each worker has its next task at hand while one runs).
IN_FLIGHT_PER_WORKER = 2


@dataclasses.dataclass(frozen=True)
class Job:
    """One task: ``key`` unique in its run (what a rerun matches), ``spec`` JSON-able, ``payload`` anything."""
    key: str
    spec: dict
    payload: object = None


@dataclasses.dataclass
class TaskRun:
    """What :func:`run_tasks` did: the records of every job (in job order), how many ran now and how
    many were taken from an earlier run, the wall time of this run's tasks (after the warm-up) and the
    cluster's workers."""
    records: list[dict]
    ran: int
    reused: int
    wall_seconds: float
    workers: int
    #: Seconds every worker spent on the first pending job before the timed tasks (imports, builds).
    warmup_seconds: float = 0.0

    @property
    def failed(self) -> list[dict]:
        return [record for record in self.records if "error" in record]


def config_digest(config: dict) -> str:
    """Short hash of a run's shared ``config`` (sorted JSON)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_records(path: Path) -> list[dict]:
    """Every record of a results file (none if it does not exist; a line cut short by a crash is skipped)."""
    records = []
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                records.append(json.loads(line))
    return records


def execute(function: Callable, config: dict, spec: dict, payload) -> dict:
    """Worker side of one task: the function's result, or its error with the tail of its output."""
    from sw.progress import set_quiet
    set_quiet(True)
    output = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(output):
            record = {"result": function(config, spec, payload)}
    except Exception as error:               # noqa: BLE001 - the job records it and the run goes on
        message = (str(error).splitlines() or [""])[0]
        record = {"error": f"{type(error).__name__}: {message}",
                  "output": output.getvalue().splitlines()[-OUTPUT_TAIL_LINES:]}
    record["seconds"] = round(time.perf_counter() - start, 4)
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return record


def _label(record: dict) -> str:
    return f"{record['key']}: " + (f"FAILED {record['error']}" if "error" in record else "done")


def run_tasks(client, function: Callable, config: dict, jobs: list[Job], results: Path, *,
              desc: str, unit: str = "task", label: Callable[[dict], str] = _label) -> TaskRun:
    """Run ``function(config, job.spec, job.payload)`` for every job not yet done in ``results`` on
    ``client``'s cluster; append each record to ``results`` as it arrives (progress on stderr,
    ``label(record)`` naming each finished job); return every job's record."""
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"job key {duplicate!r} appears twice: every job of a run needs its own key")
    results = Path(results)
    results.parent.mkdir(parents=True, exist_ok=True)
    digest = config_digest(config)
    done = {record["key"]: record for record in read_records(results)
            if "result" in record and record.get("config_digest") == digest and record.get("key") in set(keys)}
    # Keep only what counts as done, so the file never holds two records of one job.
    results.write_text("".join(json.dumps(record) + "\n" for record in done.values()))
    pending = [job for job in jobs if job.key not in done]
    workers = len(client.nthreads())
    warmup = 0.0
    if pending:
        # Each worker runs the first job once, untimed and unrecorded: its imports, Verilog emission
        # and builds (cached per machine) then do not count as the tasks' wall time.
        warm_start = time.perf_counter()
        first = pending[0].payload() if callable(pending[0].payload) else pending[0].payload
        with contextlib.suppress(Exception):       # a worker lost here: the tasks record what goes wrong
            client.run(execute, function, config, pending[0].spec, first)
        warmup = time.perf_counter() - warm_start
    start = time.perf_counter()
    if pending:
        from distributed import as_completed
        futures: dict = {}
        queue = iter(pending)

        def submit(job: Job):
            payload = job.payload() if callable(job.payload) else job.payload
            future = client.submit(execute, function, config, job.spec, payload, pure=False)
            futures[future] = job
            return future

        # A bounded window of submitted tasks: payloads are made (and held) only shortly before they run.
        window = max(2, IN_FLIGHT_PER_WORKER * workers)
        completed = as_completed([submit(job) for job in itertools.islice(queue, window)])
        with progress(total=len(pending), desc=desc, unit=unit) as bar, results.open("a") as out:
            for finished, future in enumerate(completed, 1):
                job = futures.pop(future)
                try:
                    outcome = future.result()
                except Exception as error:   # noqa: BLE001 - KilledWorker, a lost scheduler: the job records it
                    outcome = {"error": f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"}
                future.release()
                following = next(queue, None)
                if following is not None:
                    completed.add(submit(following))
                record = {"key": job.key, "job": job.spec, "config_digest": digest, **outcome}
                out.write(json.dumps(record) + "\n")
                out.flush()
                done[job.key] = record
                elapsed = time.perf_counter() - start
                eta = elapsed / finished * (len(pending) - finished)
                bar.step(f"{label(record)} (ETA {format_duration(eta)})")
    return TaskRun(records=[done[key] for key in keys], ran=len(pending), reused=len(jobs) - len(pending),
                   wall_seconds=time.perf_counter() - start, workers=workers, warmup_seconds=warmup)
