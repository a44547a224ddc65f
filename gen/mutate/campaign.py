"""One mutation campaign per block: list mutations, build one netlist holding all of them, run the
tests on every mutant in worker processes, try to prove the survivors equivalent.

A mutant is *killed* when a test fails on it (or its simulation breaks), *equivalent* when Yosys
proves it has the original's port behaviour (:func:`gen.mutate.netlist.prove_equivalent`), else a
*hole*. Tests run in two stages (:class:`gen.mutate.blocks.BlockPlan`): the fast subset on every
mutant, the rest only on its survivors. Before any mutant, the unmutated netlist (``+mutsel=0``)
must pass every test of both stages, or the campaign stops.

Parallelism is a seam: :func:`run_block` takes ``map_tasks(function, tasks)``, an iterator of the
results in any order, e.g. a Dask client's; the default is a local process pool
(:func:`process_pool_map`). Every task is a picklable tuple and every result names its mutant.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from gen.mutate.blocks import TESTS, BlockPlan
from gen.mutate.errors import MutateError
from gen.mutate.netlist import Mutation, list_mutations, mutants_verilog, prove_equivalent, rtlil_with_src
from hw.config import MixPEConfig

__all__ = ["MutantRecord", "BlockResult", "run_block", "process_pool_map", "MapTasks"]

MapTasks = Callable[[Callable, list], Iterable]
#: Default time limit (s) of one equivalence proof.
EQUIV_TIMEOUT = 60.0


@dataclasses.dataclass
class MutantRecord:
    """One mutant's outcome: ``status`` is ``killed``, ``equivalent`` or ``hole``; ``killed_by`` the first
    failing test (``<stage>:<test>``); ``detail`` the equivalence check's verdict for survivors."""
    index: int
    mutation: str
    mode: str
    sources: list[str]
    status: str
    killed_by: str | None = None
    detail: str = ""


@dataclasses.dataclass
class BlockResult:
    block: str
    bench: str
    config: str
    mutants: int
    killed: int
    equivalent: int
    holes: int
    seconds: float
    records: list[MutantRecord]

    @property
    def score(self) -> float:
        """killed / (mutants - equivalent); 1.0 when every mutant is equivalent."""
        relevant = self.mutants - self.equivalent
        return self.killed / relevant if relevant else 1.0


def _quiet_worker(log_path: str) -> None:
    """Send a worker's output (and its simulators') to ``log_path``: the console keeps the summary."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def process_pool_map(jobs: int, log_path: Path) -> MapTasks:
    """``map_tasks`` of a local pool of ``jobs`` processes, their output appended to ``log_path``."""
    def map_tasks(function: Callable, tasks: list) -> Iterator:
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, initializer=_quiet_worker,
                                                    initargs=(str(log_path),)) as pool:
            futures = [pool.submit(function, task) for task in tasks]
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
    return map_tasks


@functools.lru_cache(maxsize=4)
def _read(path: str) -> str:
    return Path(path).read_text()


def run_tests(task: tuple) -> tuple[int, str | None]:
    """Worker: run the tests ``runs`` ((name, seed) pairs, in order) on mutant ``index`` of the netlist at
    ``verilog_path``; returns (index, the first failing ``test (seed)`` with its error if any, or None)."""
    bench, verilog_path, build_dir, config_dict, index, runs = task
    from verif.sims import NetlistOverride, netlist_override
    config = MixPEConfig.from_dict(config_dict)
    override = NetlistOverride(bench, _read(verilog_path), Path(build_dir), (f"+mutsel={index}",))
    with netlist_override(override):
        for name, seed in runs:
            try:
                if not TESTS[name](config, seed):
                    return index, f"{name} (seed {seed})"
            except Exception as error:  # a mutant may break the simulation itself: that kills it too
                return index, f"{name} (seed {seed}): {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return index, None


def _prove(task: tuple) -> tuple[int, object]:
    """Worker: prove mutant ``index`` equivalent, first at the ports of the sub-block holding its cell
    (:meth:`gen.mutate.netlist.Mutation.submodule`; equivalent there means equivalent anywhere, and
    the problem is far smaller), then at the ports of the whole design in ``work``."""
    work, toplevel, index, spec, timeout = task
    mutation = Mutation(index, spec)
    local = mutation.submodule(toplevel)
    if local is not None:
        module, local_mutation = local
        verdict = prove_equivalent(Path(work), "design.il", module, local_mutation, timeout=timeout, submodule=True)
        if verdict.equivalent:
            return index, dataclasses.replace(verdict, detail=f"{verdict.detail} at the ports of {module}")
    return index, prove_equivalent(Path(work), "design.il", toplevel, mutation, timeout=timeout)


def _prepare(plan: BlockPlan, config: MixPEConfig, work: Path, count: int, seed: int) -> tuple[list[Mutation], Path]:
    """Emit the bench design, list ``count`` mutations and write the netlist of them all."""
    from verif.benches import BENCHES
    from verif.runner import write_if_changed
    bench = BENCHES[plan.bench]
    write_if_changed(work / "design.il", rtlil_with_src(bench.host().component(config), bench.toplevel))
    mutations = list_mutations(work, "design.il", count, seed, plan.sources)
    if not mutations:
        raise MutateError(f"block={plan.block}: Yosys found no cell to mutate in {', '.join(plan.sources)}")
    mutants_verilog(work, "design.il", bench.toplevel, mutations)
    return mutations, work / "mutants.v"


def _cache_key(plan: BlockPlan, verilog_path: Path, seed: int) -> str:
    """What a block's result depends on: the mutated netlist, the plan, the seed, the bench's sources."""
    from verif.benches import BENCHES
    bench_dir = Path(BENCHES[plan.bench].host().__file__).parent
    digest = hashlib.sha256(verilog_path.read_bytes() + repr((plan, seed)).encode())
    for path in sorted(bench_dir.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _simulate(plan: BlockPlan, config: MixPEConfig, work: Path, mutations: list[Mutation], verilog_path: Path,
              seed: int, map_tasks: MapTasks, log: Callable[[str], None]) -> dict[int, str]:
    """Run the unmutated netlist, then every mutant through the fast and full stages; returns the
    killed mutants' indices and the test that killed each."""
    stages = (("fast", tuple((name, seed) for name in plan.fast)),
              ("full", tuple((name, seed + 1) for name in plan.full)))
    start = time.monotonic()

    def stage(indices: list[int], runs: tuple[tuple[str, int], ...]) -> dict[int, str | None]:
        tasks = [(plan.bench, str(verilog_path), str(work), config.to_dict(), i, runs) for i in indices]
        return dict(map_tasks(run_tests, tasks))

    log(f"{plan.block}: {len(mutations)} mutants of {plan.bench} on {config.name}; checking the unmutated netlist")
    baseline = stage([0], stages[0][1] + stages[1][1])[0]
    if baseline is not None:
        raise MutateError(f"block={plan.block}: the unmutated netlist fails {baseline}; see {work / 'workers.log'}")
    killed = {}
    survivors = [m.index for m in mutations]
    for label, runs in stages:
        outcome = stage(survivors, runs)
        killed.update({i: f"{label}: {test}" for i, test in outcome.items() if test is not None})
        survivors = sorted(i for i, test in outcome.items() if test is None)
        log(f"{plan.block}: {label} stage ({', '.join(name for name, _ in runs)}): {len(killed)} killed, "
            f"{len(survivors)} survive ({time.monotonic() - start:.0f} s)")
    return killed


def run_block(plan: BlockPlan, config: MixPEConfig, *, mutants: int, seed: int, out_root: Path, jobs: int = 2,
              map_tasks: MapTasks | None = None, log: Callable[[str], None] | None = None,
              use_cache: bool = True, equiv_timeout: float = EQUIV_TIMEOUT) -> BlockResult:
    """Mutation campaign of ``plan.block`` on ``config``: ``mutants`` mutations (Yosys ``-seed seed``),
    files under ``out_root/<block>-<config hash>/`` (the Verilator build in its ``sim*/``). The test
    outcome is cached in ``tests.json`` there, keyed by :func:`_cache_key`; the equivalence proofs of
    the survivors always run, ``equiv_timeout`` seconds each at most (``seconds`` counts the cached
    simulation time too)."""
    from verif.benches import BENCHES
    log = log or functools.partial(print, flush=True)
    start = time.monotonic()
    work = (Path(out_root) / f"{plan.block}-{config.hash}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    map_tasks = map_tasks or process_pool_map(jobs, work / "workers.log")
    mutations, verilog_path = _prepare(plan, config, work, mutants, seed)
    key, cache = _cache_key(plan, verilog_path, seed), work / "tests.json"
    cached = json.loads(cache.read_text()) if use_cache and cache.exists() else {}
    if cached.get("key") == key:
        killed = {int(index): test for index, test in cached["killed"].items()}
        simulated = cached["seconds"]
        log(f"{plan.block}: test outcome of {len(mutations)} mutants from {cache}: {len(killed)} killed")
    else:
        killed = _simulate(plan, config, work, mutations, verilog_path, seed, map_tasks, log)
        simulated = time.monotonic() - start
        cache.write_text(json.dumps({"key": key, "killed": killed, "seconds": round(simulated, 1)}, indent=1) + "\n")
    by_index = {m.index: m for m in mutations}
    survivors = sorted(set(by_index) - set(killed))
    toplevel = BENCHES[plan.bench].toplevel
    proving = time.monotonic()
    verdicts = dict(map_tasks(_prove, [(str(work), toplevel, i, by_index[i].spec, equiv_timeout) for i in survivors]))
    records = []
    for mutation in mutations:
        verdict = verdicts.get(mutation.index)
        status = "killed" if mutation.index in killed else "equivalent" if verdict.equivalent else "hole"
        records.append(MutantRecord(mutation.index, mutation.description, mutation.mode, mutation.sources, status,
                                    killed.get(mutation.index), verdict.detail if verdict else ""))
    count = {status: sum(r.status == status for r in records) for status in ("killed", "equivalent", "hole")}
    result = BlockResult(plan.block, plan.bench, config.name, len(records), count["killed"], count["equivalent"],
                         count["hole"], round(simulated + time.monotonic() - proving, 1), records)
    log(f"{plan.block}: score {result.score:.3f} ({result.killed} killed, {result.equivalent} equivalent, "
        f"{result.holes} holes of {result.mutants}) in {result.seconds:.0f} s")
    return result
