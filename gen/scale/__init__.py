"""The execution layer of the heavy, embarrassingly parallel jobs (``mixpe sweep``, ``mixpe verify-model``) on Dask.

* :mod:`~gen.scale.cluster`: a ``LocalCluster`` sized to the machine, or an existing cluster by
  address (``--scheduler``, ``DASK_SCHEDULER_ADDRESS``); :class:`SchedulerUnreachable` when none answers;
* :mod:`~gen.scale.tasks`: jobs as tasks (pure functions of a shared config and one job), records
  streamed to a JSON-lines file as they finish, reruns resumed, failures recorded;
* :mod:`~gen.scale.sweep` and :mod:`~gen.scale.sweep_report`: the design-space sweep;
* :mod:`~gen.scale.verify_model`: every GEMM of a SmolLM2 forward pass on the RTL, tile by tile.

``docs/scale-out.md`` shows how to run them on a workstation and on a Slurm/PBS cluster.
"""

from gen.scale.cluster import (SCHEDULER_ENV, ClusterError, SchedulerUnreachable, add_cluster_options, connect,
                               default_workers)
from gen.scale.tasks import Job, TaskRun, read_records, run_tasks

__all__ = ["SCHEDULER_ENV", "ClusterError", "SchedulerUnreachable", "add_cluster_options", "connect", "default_workers",
           "Job", "TaskRun", "read_records", "run_tasks"]
