"""One mutation campaign per block: list mutations, build one netlist holding all of them, run the
tests on every mutant in parallel tasks, try to prove the survivors equivalent.

A mutant is *killed* when a test fails on it (or its simulation breaks), *equivalent* when Yosys
proves it has the original's port behaviour (:func:`gen.mutate.netlist.prove_equivalent`), else a
*hole*. Tests run in stages (:class:`gen.mutate.blocks.BlockPlan`): a mutant of a sub-block that the
plan's unit bench holds first runs that bench (:mod:`gen.mutate.units`), then the fast subset runs
on every mutant still alive, the rest only on its survivors. Before any mutant, the unmutated
netlists (``+mutsel=0``) must pass every test, or the campaign stops.

Parallelism: :func:`run_block` takes ``map_tasks(function, tasks)``, an iterator of the results in
any order; :func:`dask_map` runs them on the Dask layer of :mod:`gen.scale` (a local cluster, or
one by address), the default. Every task is a picklable tuple and every result names its mutant;
each stage's results are appended to ``progress.jsonl`` as they arrive, so an interrupted
campaign resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import json
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from gen.mutate.blocks import TESTS, BlockPlan
from gen.mutate.core_proofs import prove_on_small_core, small_core_proof
from gen.mutate.stream_proofs import prove_valid_beats, row_valid_proof
from gen.mutate.errors import MutateError
from gen.mutate.netlist import (PREPARE, EquivalenceResult, Mutation, _yosys, list_mutations, mutants_verilog,
                                prove_equivalent, rtlil_with_src)
from gen.mutate.relational import prove_relational
from gen.mutate.subblocks import prove_folding, prove_operand
from gen.mutate.units import prepared_module, unit_mutations
from hw.config import MixPEConfig

__all__ = ["MutantRecord", "BlockResult", "run_block", "dask_map", "MapTasks", "WORKERS_LOG"]

MapTasks = Callable[[Callable, list], Iterable]
#: The tasks' output (simulators, Yosys), in the campaign's output directory.
WORKERS_LOG = "workers.log"
#: Default time limit (s) of one equivalence proof.
EQUIV_TIMEOUT = 60.0


@dataclasses.dataclass
class MutantRecord:
    """One mutant's outcome: ``status`` is ``killed``, ``equivalent`` or ``hole``; ``killed_by`` the first
    failing test (``<stage>:<test>``); ``detail`` the equivalence check's verdict for survivors;
    ``equivalent_by`` the proof that settled an equivalent mutant and where (``<method> at <module>``)."""
    index: int
    mutation: str
    mode: str
    sources: list[str]
    status: str
    killed_by: str | None = None
    detail: str = ""
    equivalent_by: str = ""


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


@contextlib.contextmanager
def _output_to(log_path: str):
    """Send this process's output (and its simulators') to ``log_path`` while a task runs: the
    console keeps the campaign's summary."""
    saved = [os.dup(1), os.dup(2)]
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for target, copy in zip((1, 2), saved):
            os.dup2(copy, target)
            os.close(copy)
        os.close(fd)


def _logged(function: Callable, task: tuple, log_path: str):
    with _output_to(log_path):
        return function(task)


def dask_map(client, log_path: Path) -> MapTasks:
    """``map_tasks`` on a ``distributed.Client`` (:func:`gen.scale.cluster.connect`): one Dask task per
    item, results as they finish, the tasks' output appended to ``log_path``."""
    def map_tasks(function: Callable, tasks: list) -> Iterator:
        from distributed import as_completed
        futures = [client.submit(_logged, function, task, str(log_path), pure=False) for task in tasks]
        for future in as_completed(futures):
            yield future.result()
            future.release()
    return map_tasks


@functools.lru_cache(maxsize=4)
def _read(path: str) -> str:
    return Path(path).read_text()


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the simulators), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _first_failure(config: MixPEConfig, runs: tuple) -> str | None:
    for name, seed in runs:
        try:
            if not TESTS[name](config, seed):
                return f"{name} (seed {seed})"
        except Exception as error:  # a mutant may break the simulation itself: that kills it too
            return f"{name} (seed {seed}): {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return None


def run_tests(task: tuple) -> tuple[int, str | None, float]:
    """Worker: run the tests ``runs`` ((name, seed) pairs, in order) on mutant ``index`` of the netlist at
    ``verilog_path``; returns (index, the first failing ``test (seed)`` with its error if any, or None,
    the CPU seconds it took)."""
    bench, verilog_path, build_dir, config_dict, index, runs = task
    from verif.sims import NetlistOverride, netlist_override
    start = _cpu_seconds()
    config = MixPEConfig.from_dict(config_dict)
    override = NetlistOverride(bench, _read(verilog_path), Path(build_dir), (f"+mutsel={index}",))
    with netlist_override(override):
        failed = _first_failure(config, runs)
    return index, failed, round(_cpu_seconds() - start, 2)


#: Clock ports of Yosys' flip-flop and memory cells. A mutation there (an inverted clock makes a
#: negative-edge flip-flop, which updates half a cycle early) is invisible to the prover's methods,
#: which read every flip-flop as a one-cycle delay; such a survivor stays a hole.
CLOCK_PORTS = frozenset({"CLK", "RD_CLK", "WR_CLK"})


def _prove(task: tuple) -> tuple[int, object]:
    """Worker: prove mutant ``index`` equivalent. A mutant of a sub-block's cell: first at the ports of
    that sub-block (:meth:`gen.mutate.netlist.Mutation.submodule`; equivalent there means equivalent
    anywhere, and the problem is far smaller; a third of ``timeout`` when the plan names invariants
    for the sub-block), then with those invariants. A mutant of
    the top module's own cell: first with the sub-blocks kept apart (:mod:`gen.mutate.subblocks`:
    as black boxes, a third of ``timeout``; then the cell's fan-out into one sub-block). Last, at
    the ports of the whole design in ``work``. Each attempt has its own time limit. With a
    ``small_core`` configuration (the plan's :attr:`~gen.mutate.blocks.BlockPlan.small_core`), a
    twin of the cell's role on that core is tried before all of these; with a ``stream_core``
    configuration (:attr:`~gen.mutate.blocks.BlockPlan.valid_beats`), a stuck ``row_valid`` is proven
    to keep every valid beat (:mod:`gen.mutate.stream_proofs`) before anything else."""
    work, toplevel, index, spec, timeout, invariants, small_core, stream_core = task
    mutation = Mutation(index, spec)
    if stream_core is not None and (twin := row_valid_proof(mutation, stream_core, Path(work))) is not None:
        verdict = prove_valid_beats(Path(work) / f"valid_beats_{index}", twin, timeout=timeout)
        if verdict.equivalent:
            return index, dataclasses.replace(verdict, method=f"{verdict.method} at {toplevel}")
    if small_core is not None and (twin := small_core_proof(mutation, small_core, Path(work))) is not None:
        verdict = prove_on_small_core(Path(work) / f"small_core_{index}", twin, timeout=timeout)
        if verdict.equivalent:
            return index, dataclasses.replace(verdict, method=f"{verdict.method} at {toplevel}")
    local = mutation.submodule(toplevel)
    tried = []  # the details of the attempts that failed, for a hole's record
    if local is not None:
        module, local_mutation = local
        # With the plan's invariants for the sub-block to come, its generic proofs get a third.
        verdict = prove_equivalent(Path(work), "design.il", module, local_mutation,
                                   timeout=timeout / 3 if module in invariants else timeout, submodule=True)
        if verdict.equivalent:
            return index, dataclasses.replace(verdict, detail=f"{verdict.detail} at the ports of {module}",
                                              method=f"{verdict.method} at {module}")
        tried.append(f"{verdict.detail} at the ports of {module}")
        if module in invariants:  # the block's plan names invariants for this sub-block
            proven, detail = prove_relational(Path(work), "design.il", module, local_mutation, invariants[module],
                                              timeout=timeout)
            if proven:
                return index, EquivalenceResult(True, f"{detail} at the ports of {module}",
                                                f"invariants + sat -tempinduct at {module}")
            tried.append(f"invariants: {detail}")
    else:
        for prove, limit in ((prove_folding, timeout / 3), (prove_operand, timeout)):
            verdict = prove(Path(work), "design.il", toplevel, mutation, limit)
            if verdict.equivalent:
                method = verdict.method if " at " in verdict.method else f"{verdict.method} at {toplevel}"
                return index, dataclasses.replace(verdict, method=method)
            tried.append(verdict.detail)
    verdict = prove_equivalent(Path(work), "design.il", toplevel, mutation, timeout=timeout)
    if verdict.equivalent:
        return index, dataclasses.replace(verdict, method=f"{verdict.method} at {toplevel}")
    return index, dataclasses.replace(verdict, detail="; ".join([*tried, verdict.detail]))


#: The modules of :mod:`gen.mutate` whose functions :func:`_prove` calls: a change to one of them (or to
#: :func:`_prove`) proves the survivors again (:func:`_proof_key`). The plans' invariants count by
#: their value, so an edit elsewhere in ``blocks.py`` keeps the proofs.
_PROVER_SOURCES = ("netlist.py", "relational.py", "subblocks.py")
#: An ``src`` attribute line of the RTLIL: a line moved in ``hw/`` changes no proof.
_SRC_LINE = re.compile(rb"^\s*attribute \\src .*\n", re.MULTILINE)


def _proof_key(netlist_key: str, design: Path, invariants: dict, small_core: MixPEConfig | None, spec: str,
               stream_core: MixPEConfig | None = None) -> str:
    """What a proof of mutation ``spec`` depends on: the mutants (:func:`_netlist_key`), the design the
    proofs read (without source locations), the plan's invariants, small core and stream core, the
    prover's own source (:data:`_PROVER_SOURCES`, ``core_proofs.py`` for a plan with a small core,
    ``stream_proofs.py`` for one with a stream core, and :func:`_prove`) and the mutation."""
    core = small_core.to_dict() if small_core is not None else None
    stream = f"{stream_core.to_dict()!r}\n" if stream_core is not None else ""  # absent: the keys of before
    digest = hashlib.sha256(f"{netlist_key}\n{spec}\n{sorted(invariants.items())!r}\n{core!r}\n{stream}".encode())
    digest.update(_SRC_LINE.sub(b"", design.read_bytes()))
    for name in (_PROVER_SOURCES + (("core_proofs.py",) if small_core is not None else ())
                 + (("stream_proofs.py",) if stream_core is not None else ())):
        digest.update((Path(__file__).parent / name).read_bytes())
    digest.update(inspect.getsource(_prove).encode())
    return digest.hexdigest()[:16]


def _cached_proofs(path: Path, keys: dict[int, list[str]]) -> dict[int, dict]:
    """The records of proven verdicts in ``path`` (``proofs.jsonl``) whose key is one of the mutant's in
    ``keys``, one under its first key (the current one) when there is one."""
    cached = {}
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError, KeyError):
                record = json.loads(line)
                own = keys.get(record["index"], [])
                if record["key"] in own and cached.get(record["index"], {}).get("key") != own[0]:
                    cached[record["index"]] = record
    return cached


@dataclasses.dataclass(frozen=True)
class Netlist:
    """The mutants' netlist of one bench: ``verilog`` (every mutation, selected by ``+mutsel``), built
    in ``build_dir``; ``indices``: the mutants it holds."""
    bench: str
    verilog: Path
    build_dir: Path
    indices: tuple[int, ...]


def _prepare(plan: BlockPlan, config: MixPEConfig, work: Path, count: int,
             seed: int) -> tuple[list[Mutation], list[Netlist]]:
    """Emit the bench design, list ``count`` mutations and write the netlist of them all; with a unit
    bench, also the unit bench's netlist of the mutations it holds (first in the list)."""
    from verif.benches import BENCHES
    from verif.runner import write_if_changed
    bench = BENCHES[plan.bench]
    write_if_changed(work / "design.il", rtlil_with_src(bench.host().component(config), bench.toplevel))
    mutations = list_mutations(work, "design.il", count, seed, plan.sources)
    if not mutations:
        raise MutateError(f"block={plan.block}: Yosys found no cell to mutate in {', '.join(plan.sources)}")
    mutants_verilog(work, "design.il", bench.toplevel, mutations)
    netlists = [Netlist(plan.bench, work / "mutants.v", work, tuple(m.index for m in mutations))]
    if plan.unit_bench:
        unit = BENCHES[plan.unit_bench]
        unit_work = work / f"unit-{plan.unit_bench}"
        unit_work.mkdir(exist_ok=True)
        unit_design = rtlil_with_src(unit.host().component(config), unit.toplevel)
        write_if_changed(unit_work / "design.il", unit_design)
        mapped = unit_mutations(mutations, bench.toplevel, (work / "design.il").read_text(), unit.toplevel, unit_design,
                                lambda: (prepared_module(work, "design.il", bench.toplevel),
                                         prepared_module(unit_work, "design.il", unit.toplevel)))
        if mapped:
            mutants_verilog(unit_work, "design.il", unit.toplevel, mapped)
            netlists.insert(0, Netlist(plan.unit_bench, unit_work / "mutants.v", unit_work,
                                       tuple(m.index for m in mapped)))
    return mutations, netlists


#: A source-location attribute left in the Verilog: a line moved in ``hw/`` changes no mutant.
_SRC_ATTRIBUTE = re.compile(rb'\(\* src = "[^"]*" \*\)')


def _netlist_key(plan: BlockPlan, netlists: list[Netlist], seed: int) -> str:
    """The mutants themselves: the mutated netlists (without source locations), the plan and the seed."""
    digest = hashlib.sha256(repr((plan, seed)).encode())
    for netlist in netlists:
        digest.update(_SRC_ATTRIBUTE.sub(b"", netlist.verilog.read_bytes()))
    return digest.hexdigest()[:16]


def _cache_key(plan: BlockPlan, netlists: list[Netlist], seed: int) -> str:
    """What a block's result depends on: the mutants (:func:`_netlist_key`), the benches' sources, the
    golden models that make their operands and expected results (``golden/``) and, for the core's
    blocks, the scenarios their tests run (:mod:`verif.scenarios`)."""
    import golden
    from verif import scenarios
    from verif.benches import BENCHES
    digest = hashlib.sha256(_netlist_key(plan, netlists, seed).encode())
    for netlist in netlists:
        for path in sorted(Path(BENCHES[netlist.bench].host().__file__).parent.glob("*.py")):
            digest.update(path.read_bytes())
    for path in sorted(Path(golden.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    if plan.bench == "mpgemm":
        digest.update(Path(scenarios.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _stages(plan: BlockPlan, netlists: list[Netlist], seed: int) -> list[tuple[str, Netlist, tuple]]:
    """(label, netlist, (test, seed) runs) of each stage in order: the unit bench's, fast, full."""
    main = netlists[-1]
    stages = [("unit", netlists[0], ((f"{plan.unit_bench}_bench", seed),))] if len(netlists) > 1 else []
    return stages + [("fast", main, tuple((name, seed) for name in plan.fast)),
                     ("full", main, tuple((name, seed + 1) for name in plan.full))]


def _stage_keys(plan: BlockPlan, netlist: Netlist, seed: int) -> dict[str, str]:
    """What a stage's outcome for a mutant depends on: its own netlist's :func:`_cache_key` (``key``) and
    :func:`_netlist_key` (``netlist``), as ``progress.jsonl`` records them. With one netlist these are the
    block's keys; with a unit bench, a changed unit netlist keeps the core stages' outcomes."""
    return {"key": _cache_key(plan, [netlist], seed), "netlist": _netlist_key(plan, [netlist], seed)}


def _earlier_keys(plan: BlockPlan, work: Path, seed: int) -> dict[str, dict[str, dict[str, str]]]:
    """For a block with a unit bench, the keys under which versions before :func:`_stage_keys` recorded
    outcomes (``progress.jsonl``) and proofs for the netlists that the last run left in ``work``: both
    netlists' keys together -> per stage, :func:`_stage_keys` of its netlist alone; by record field.
    Read before the netlists are written again ({} when there are not two)."""
    if not plan.unit_bench:
        return {}
    unit_work = work / f"unit-{plan.unit_bench}"
    both = [Netlist(plan.unit_bench, unit_work / "mutants.v", unit_work, ()),
            Netlist(plan.bench, work / "mutants.v", work, ())]
    if not all(netlist.verilog.exists() for netlist in both):
        return {}
    stages = {label: _stage_keys(plan, netlist, seed) for label, netlist, _ in _stages(plan, both, seed)}
    return {"key": {_cache_key(plan, both, seed): {label: keys["key"] for label, keys in stages.items()}},
            "netlist": {_netlist_key(plan, both, seed): {label: keys["netlist"] for label, keys in stages.items()}}}


def _simulate(plan: BlockPlan, config: MixPEConfig, work: Path, mutations: list[Mutation], netlists: list[Netlist],
              seed: int, map_tasks: MapTasks, log: Callable[[str], None],
              earlier: dict[str, dict[str, dict[str, str]]] | None = None) -> dict[int, str]:
    """Run the unmutated netlists, then every mutant through the stages; returns the killed mutants'
    indices and the test that killed each. Each outcome goes to ``progress.jsonl`` (with its stage's
    ``key`` and ``netlist`` key, :func:`_stage_keys`) as it arrives; outcomes already there under the
    stage's key are not run again, and a mutant killed on the stage's netlist by an earlier version
    of the benches stays killed (bench changes add checks: only the survivors run again). ``earlier``
    (:func:`_earlier_keys`) reads the records of an earlier version; those used are written again
    under the stages' keys (``cpu_s`` 0)."""
    stages, earlier = _stages(plan, netlists, seed), earlier or {}
    keys = {label: _stage_keys(plan, netlist, seed) for label, netlist, _ in stages}
    progress_path = work / "progress.jsonl"
    done, own = {}, set()
    if progress_path.exists():
        for line in progress_path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError, KeyError):
                record = json.loads(line)
                label = record["stage"]
                key, netlist_key = (earlier.get(field, {}).get(record.get(field), {}).get(label, record.get(field))
                                    for field in ("key", "netlist"))
                if label in keys and (key == keys[label]["key"]
                                      or (netlist_key == keys[label]["netlist"] and record["failed"])):
                    done[(label, record["index"])] = record["failed"]
                    if (key, netlist_key) == (record.get("key"), record.get("netlist")):
                        own.add((label, record["index"]))
        with progress_path.open("a") as out:
            out.writelines(json.dumps({**keys[label], "stage": label, "index": index, "failed": failed, "cpu_s": 0.0})
                           + "\n" for (label, index), failed in done.items() if (label, index) not in own)
    start = time.monotonic()

    def run_stage(label: str, netlist: Netlist, indices: list[int], runs: tuple) -> tuple[dict[int, str | None], float]:
        outcome = {i: done[(label, i)] for i in indices if (label, i) in done}
        tasks = [(netlist.bench, str(netlist.verilog), str(netlist.build_dir), config.to_dict(), i, runs)
                 for i in indices if i not in outcome]
        cpu = 0.0
        with progress_path.open("a") as out:
            for index, failed, seconds in map_tasks(run_tests, tasks):
                outcome[index], cpu = failed, cpu + seconds
                out.write(json.dumps({**keys[label], "stage": label, "index": index, "failed": failed,
                                      "cpu_s": seconds}) + "\n")
                out.flush()
        return outcome, cpu

    log(f"{plan.block}: {len(mutations)} mutants of {plan.bench} on {config.name}; checking the unmutated netlist"
        + ("s" if len(netlists) > 1 else ""))
    for netlist in netlists:
        runs = tuple(run for _, stage_netlist, stage_runs in stages if stage_netlist is netlist for run in stage_runs)
        [(_, baseline, _)] = list(map_tasks(run_tests, [(netlist.bench, str(netlist.verilog), str(netlist.build_dir),
                                                         config.to_dict(), 0, runs)]))
        if baseline is not None:
            raise MutateError(f"block={plan.block}: the unmutated {netlist.bench} netlist fails {baseline}; "
                              f"see {work.parent / WORKERS_LOG}")
    killed = {}
    survivors = [m.index for m in mutations]
    for label, netlist, runs in stages:
        outcome, cpu = run_stage(label, netlist, [i for i in survivors if i in netlist.indices], runs)
        killed.update({i: f"{label}: {test}" for i, test in outcome.items() if test is not None})
        survivors = [i for i in survivors if i not in killed]
        log(f"{plan.block}: {label} stage ({netlist.bench}: {', '.join(name for name, _ in runs)}): "
            f"{len(killed)} killed, {len(survivors)} survive ({time.monotonic() - start:.0f} s; "
            f"{cpu:.0f} CPU s in the tasks run now)")
    return killed


def _mutant_invariants(plan: BlockPlan, config: MixPEConfig, work: Path, toplevel: str, invariants: dict,
                       mutation: Mutation) -> dict:
    """``invariants`` (per sub-block module), with the sub-block of ``mutation`` given the mutant's own
    when the plan's :attr:`~gen.mutate.blocks.BlockPlan.mutant_invariants` make some."""
    local = mutation.submodule(toplevel)
    for path, make in plan.mutant_invariants:
        module = f"{toplevel}.{path}"
        if local is not None and local[0] == module:
            cells = work / f"{module}.cells"
            if not cells.exists():
                _yosys(work, f"read_rtlil design.il\nhierarchy -top {module}\n" + "\n".join(PREPARE)
                       + f"\ntee -q -o {cells.name} dump {module}\n", f"{module}.cells")
            if (proof := make(config, local[1], cells.read_text())) is not None:
                return {**invariants, module: proof}
    return invariants


def _prove_survivors(work: Path, toplevel: str, survivors: list[Mutation], invariants: Callable[[Mutation], dict],
                     small_core: MixPEConfig | None, timeout: float, netlist_key: str, use_cache: bool,
                     map_tasks: MapTasks, log: Callable[[str], None],
                     earlier_netlist_keys: tuple[str, ...] = (),
                     stream_core: MixPEConfig | None = None) -> dict[int, EquivalenceResult]:
    """Each survivor's verdict (:func:`_prove` on ``map_tasks``, with ``invariants(survivor)``: per
    sub-block module, its invariants). A proven verdict is appended to
    ``work/proofs.jsonl`` under :func:`_proof_key` (with ``netlist_key``, the mutated design's netlist:
    the proofs read that design alone) as it arrives and taken from there next time (unless not
    ``use_cache``), as is one recorded under ``earlier_netlist_keys`` (an earlier version's keys of
    the same netlist; written again under the current key); a verdict that is not a proof (a time
    limit) is tried again. A mutation of a clock input (:data:`CLOCK_PORTS`) is not tried. With
    ``stream_core`` (the campaign's configuration), a survivor that ties ``row_valid`` to 1 is given the
    stream core's "same valid beats" proof (:mod:`gen.mutate.stream_proofs`) first."""
    proofs_path = work / "proofs.jsonl"
    own = {m.index: invariants(m) for m in survivors}
    # The stream core counts for the mutants it may prove alone: the other survivors keep their proofs.
    streams = {m.index: stream_core if stream_core is not None and row_valid_proof(m, stream_core) else None
               for m in survivors}
    keys = {m.index: [_proof_key(key, work / "design.il", own[m.index], small_core, m.spec, streams[m.index])
                      for key in (netlist_key, *earlier_netlist_keys)] for m in survivors}
    if not use_cache:
        proofs_path.unlink(missing_ok=True)
    cached = _cached_proofs(proofs_path, keys)
    verdicts = {index: EquivalenceResult(True, f"{record['detail']} (cached proof)", record["method"])
                for index, record in cached.items()}
    if verdicts:
        log(f"{len(verdicts)} of {len(survivors)} survivors proven equivalent by an earlier run ({proofs_path})")
    for m in survivors:
        if m.option("port") in CLOCK_PORTS:
            verdicts[m.index] = EquivalenceResult(False, f"a clock input ({m.option('port')}): Yosys' sat and equiv "
                                                         f"passes step every flip-flop once a cycle whatever its "
                                                         f"clock edge, so no method here can prove it")
    with proofs_path.open("a") as out:
        out.writelines(json.dumps({**record, "key": keys[index][0]}) + "\n"
                       for index, record in cached.items() if record["key"] != keys[index][0])
        tasks = [(str(work), toplevel, m.index, m.spec, timeout, own[m.index], small_core, streams[m.index])
                 for m in survivors if m.index not in verdicts]
        for index, verdict in map_tasks(_prove, tasks):
            verdicts[index] = verdict
            if verdict.equivalent:
                out.write(json.dumps({"key": keys[index][0], "index": index, "detail": verdict.detail,
                                      "method": verdict.method}) + "\n")
                out.flush()
    return verdicts


def run_block(plan: BlockPlan, config: MixPEConfig, *, mutants: int, seed: int, out_root: Path, jobs: int = 2,
              map_tasks: MapTasks | None = None, log: Callable[[str], None] | None = None,
              use_cache: bool = True, equiv_timeout: float = EQUIV_TIMEOUT) -> BlockResult:
    """Mutation campaign of ``plan.block`` on ``config``: ``mutants`` mutations (Yosys ``-seed seed``),
    files under ``out_root/<block>-<config hash>/`` (the Verilator builds in its ``sim*/``), the
    tasks on ``map_tasks`` (default: :func:`dask_map` on a local cluster of ``jobs`` workers). The
    test outcome is cached in ``tests.json`` there, keyed by :func:`_cache_key`; the equivalence
    proofs of the survivors run with ``equiv_timeout`` seconds per attempt (:func:`_prove`), and a
    proven verdict is kept in ``proofs.jsonl`` there, keyed by :func:`_proof_key`, so a resumed
    campaign does not prove it again (``seconds`` counts the cached simulation time too)."""
    if map_tasks is None:
        from gen.scale.cluster import connect
        with connect(workers=jobs) as client:
            return run_block(plan, config, mutants=mutants, seed=seed, out_root=out_root, log=log,
                             map_tasks=dask_map(client, Path(out_root) / WORKERS_LOG), use_cache=use_cache,
                             equiv_timeout=equiv_timeout)
    from verif.benches import BENCHES
    log = log or functools.partial(print, flush=True)
    start = time.monotonic()
    work = (Path(out_root) / f"{plan.block}-{config.hash}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    earlier = _earlier_keys(plan, work, seed) if use_cache else {}
    mutations, netlists = _prepare(plan, config, work, mutants, seed)
    key, cache = _cache_key(plan, netlists, seed), work / "tests.json"
    cached = json.loads(cache.read_text()) if use_cache and cache.exists() else {}
    if cached.get("key") == key:
        killed = {int(index): test for index, test in cached["killed"].items()}
        simulated = cached["seconds"]
        log(f"{plan.block}: test outcome of {len(mutations)} mutants from {cache}: {len(killed)} killed")
    else:
        if not use_cache:
            (work / "progress.jsonl").unlink(missing_ok=True)
        killed = _simulate(plan, config, work, mutations, netlists, seed, map_tasks, log, earlier)
        simulated = time.monotonic() - start
        cache.write_text(json.dumps({"key": key, "killed": killed, "seconds": round(simulated, 1)}, indent=1) + "\n")
    by_index = {m.index: m for m in mutations}
    survivors = sorted(set(by_index) - set(killed))
    toplevel = BENCHES[plan.bench].toplevel
    proving = time.monotonic()
    invariants = {f"{toplevel}.{path}": make(config) for path, make in plan.invariants}
    design_key = _stage_keys(plan, netlists[-1], seed)["netlist"]
    verdicts = _prove_survivors(work, toplevel, [by_index[i] for i in survivors],
                                functools.partial(_mutant_invariants, plan, config, work, toplevel, invariants),
                                config if plan.small_core else None, equiv_timeout, design_key, use_cache, map_tasks,
                                lambda line: log(f"{plan.block}: {line}"),
                                tuple(combined for combined, stages in earlier.get("netlist", {}).items()
                                      if stages["full"] == design_key), config if plan.valid_beats else None)
    records = []
    for mutation in mutations:
        verdict = verdicts.get(mutation.index)
        status = "killed" if mutation.index in killed else "equivalent" if verdict.equivalent else "hole"
        records.append(MutantRecord(mutation.index, mutation.description, mutation.mode, mutation.sources, status,
                                    killed.get(mutation.index), verdict.detail if verdict else "",
                                    verdict.method if verdict and status == "equivalent" else ""))
    count = {status: sum(r.status == status for r in records) for status in ("killed", "equivalent", "hole")}
    result = BlockResult(plan.block, plan.bench, config.name, len(records), count["killed"], count["equivalent"],
                         count["hole"], round(simulated + time.monotonic() - proving, 1), records)
    log(f"{plan.block}: score {result.score:.4f} ({result.killed} killed, {result.equivalent} equivalent, "
        f"{result.holes} holes of {result.mutants}) in {result.seconds:.0f} s")
    return result
