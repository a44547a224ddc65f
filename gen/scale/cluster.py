"""Where the tasks run: a Dask ``LocalCluster`` sized to this machine, or an existing cluster by address.

``--scheduler tcp://host:port`` (or the environment variable ``DASK_SCHEDULER_ADDRESS``) connects
to a running scheduler, e.g. one started by ``dask-jobqueue`` on Slurm/PBS (``docs/scale-out.md``);
without either, a ``LocalCluster`` of one single-threaded worker process per core starts and stops
with the command. Workers run in the client's working directory, so their build caches are the
usual ``build/...`` paths (on a cluster: each node's own working directory).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from hw.errors import MixPEError

__all__ = ["SchedulerUnreachable", "ClusterError", "SCHEDULER_ENV", "scheduler_address", "default_workers", "connect",
           "add_cluster_options"]

#: Environment variable naming the scheduler of an existing cluster (Dask's own name for it).
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT_S = 10


class SchedulerUnreachable(MixPEError, RuntimeError):
    """No Dask scheduler answers at the address given."""


class ClusterError(MixPEError, ValueError):
    """A cluster option is invalid (worker count, address)."""


def scheduler_address(option: str | None) -> str | None:
    """The scheduler to use: ``option``, else ``$DASK_SCHEDULER_ADDRESS``, else None (a local cluster)."""
    address = option if option is not None else os.environ.get(SCHEDULER_ENV)
    if address is not None and not address.strip():
        raise ClusterError(f"scheduler={address!r}: expected an address like tcp://host:8786")
    return address.strip() if address else None


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                       # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int | None = None,
            timeout: float | None = None) -> Iterator[object]:
    """A ``distributed.Client``: connected to ``scheduler`` (see :func:`scheduler_address`), or to a
    ``LocalCluster`` of ``workers`` (default: one per core) single-threaded worker processes. A
    scheduler that does not answer within ``timeout`` seconds (default :data:`CONNECT_TIMEOUT_S`) raises
    :class:`SchedulerUnreachable`."""
    from distributed import Client, LocalCluster
    address = scheduler_address(scheduler)
    if address is not None:
        if workers is not None:
            raise ClusterError(f"workers={workers}: the size of an existing cluster ({address}) is its own; "
                               f"give --workers only for the local cluster")
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S if timeout is None else timeout)
        except (OSError, TimeoutError, ValueError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SchedulerUnreachable(f"scheduler {address}: no Dask scheduler answers ({reason})") from None
        with client:
            yield client
        return
    count = default_workers() if workers is None else workers
    if not isinstance(count, int) or count < 1:
        raise ClusterError(f"workers={workers!r}: must be a positive integer")
    # Worker processes (the tasks hold the GIL: torch, Verilator's output parsing); one thread each.
    with LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as local, Client(local) as client:
        yield client


def add_cluster_options(parser) -> None:
    """``--scheduler`` and ``--workers``, for every command that runs on this layer."""
    group = parser.add_argument_group("cluster")
    group.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help=f"run on an existing Dask cluster (default ${SCHEDULER_ENV}, else a local cluster)")
    group.add_argument("--workers", type=int, default=None,
                       help="worker processes of the local cluster (default: one per core)")
