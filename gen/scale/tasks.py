"""Run jobs as Dask tasks; stream their records to a JSON-lines file as they finish; resume a rerun.

A task is a pure function ``function(config, spec, payload) -> dict`` (JSON-able): ``config`` holds the
settings shared by every job of a run (JSON-able), ``spec`` names one job (JSON-able: what a record
keeps), ``payload`` is its data (tensors or None; never recorded), or a function of no arguments that makes it,
called only shortly before the task is submitted (a bounded window of tasks is in flight). Functions
must be importable module-level functions (workers import them by name).

One line per job in the results file::

    {"key": "...", "job": {spec}, "config_digest": "...", "result": {...}, "seconds": 1.2, "cpu_seconds": 1.1,
     "worker": "host:pid"}

(``seconds``: the task's wall time on its worker; ``cpu_seconds``: the worker process's CPU time in
the task, its subprocesses' included), and ``segment``: which run of the command wrote it
(``started``, UTC) with ``workers`` and, when the record arrived, the run's ``elapsed_seconds`` of
timed tasks and its client's ``client_cpu_seconds``, so resumed runs add up from the file alone.

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
import resource
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
    #: CPU seconds of the client process during the timed tasks (submitting, the local scheduler, records).
    client_cpu_seconds: float = 0.0

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


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds of this process (``RUSAGE_SELF``) or of its finished subprocesses."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def execute(function: Callable, config: dict, spec: dict, payload) -> dict:
    """Worker side of one task: the function's result, or its error with the tail of its output."""
    from sw.progress import set_quiet
    set_quiet(True)
    output = io.StringIO()
    start = time.perf_counter()
    cpu_start = cpu_seconds() + cpu_seconds(resource.RUSAGE_CHILDREN)
    try:
        with contextlib.redirect_stdout(output):
            record = {"result": function(config, spec, payload)}
    except Exception as error:               # noqa: BLE001 - the job records it and the run goes on
        message = (str(error).splitlines() or [""])[0]
        record = {"error": f"{type(error).__name__}: {message}",
                  "output": output.getvalue().splitlines()[-OUTPUT_TAIL_LINES:]}
    record["seconds"] = round(time.perf_counter() - start, 4)
    record["cpu_seconds"] = round(cpu_seconds() + cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_start, 4)
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return record


def _label(record: dict) -> str:
    return f"{record['key']}: " + (f"FAILED {record['error']}" if "error" in record else "done")


def run_tasks(client, function: Callable, config: dict, jobs: list[Job], results: Path, *,
              desc: str, unit: str = "task", label: Callable[[dict], str] = _label, keep_unrelated: bool = False,
              on_record: Callable[[dict, "TaskRun"], None] | None = None, identity: dict | None = None) -> TaskRun:
    """Run ``function(config, job.spec, job.payload)`` for every job not yet done in ``results`` on
    ``client``'s cluster; append each record to ``results`` as it arrives (progress on stderr,
    ``label(record)`` naming each finished job); return every job's record. ``keep_unrelated``: the
    file keeps the records of jobs not in ``jobs`` (another selection of the same run), else they are
    dropped. ``on_record(done, run so far)`` is called after each record (``done``: key -> record).
    ``identity``: the part of ``config`` that decides whether an earlier record still counts (default
    all of it; e.g. without a path that may move)."""
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"job key {duplicate!r} appears twice: every job of a run needs its own key")
    results = Path(results)
    results.parent.mkdir(parents=True, exist_ok=True)
    digest = config_digest(config if identity is None else identity)
    wanted = set(keys)
    earlier = read_records(results)
    done = {record["key"]: record for record in earlier
            if "result" in record and record.get("config_digest") == digest and record.get("key") in wanted}
    unrelated = {record.get("key"): record for record in earlier if keep_unrelated and record.get("key") not in wanted}
    # Keep only what counts as done, so the file never holds two records of one job.
    results.write_text("".join(json.dumps(record) + "\n" for record in [*unrelated.values(), *done.values()]))
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
    start, client_cpu_start = time.perf_counter(), cpu_seconds()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def so_far() -> TaskRun:
        return TaskRun(records=[done[key] for key in keys if key in done], ran=len(done) - (len(jobs) - len(pending)),
                       reused=len(jobs) - len(pending), wall_seconds=time.perf_counter() - start, workers=workers,
                       warmup_seconds=warmup, client_cpu_seconds=cpu_seconds() - client_cpu_start)

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
                record = {"key": job.key, "job": job.spec, "config_digest": digest, **outcome,
                          "segment": {"started": started, "workers": workers, "warmup_seconds": round(warmup, 3),
                                      "elapsed_seconds": round(time.perf_counter() - start, 3),
                                      "client_cpu_seconds": round(cpu_seconds() - client_cpu_start, 3)}}
                out.write(json.dumps(record) + "\n")
                out.flush()
                done[job.key] = record
                elapsed = time.perf_counter() - start
                eta = elapsed / finished * (len(pending) - finished)
                bar.step(f"{label(record)} (ETA {format_duration(eta)})")
                if on_record is not None:
                    on_record(done, so_far())
    return so_far()
