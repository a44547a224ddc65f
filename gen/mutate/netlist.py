"""The Yosys side of mutation testing: list mutations, write the mutated netlist, prove equivalence.

The design is a bench's top level emitted as RTLIL with ``src`` attributes (``hw/<file>.py:<line>``),
then ``proc; flatten`` so that every cell of every block is in one module. ``mutate -list`` picks
mutations (coverage-balanced over source lines and cells); all of them go into one netlist, each
active only when the control signal ``mutsel`` equals its 1-based index (as mcy does), so one
Verilator build serves every mutant. ``mutsel`` is not a port: the netlist reads it from the
plusarg ``+mutsel=<n>`` (0, the default, is the original design), so the benches drive the same
ports as always.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

from gen.mutate.errors import MutateError
from gen.yosys_run import run_yosys

__all__ = ["REPO_ROOT", "Mutation", "PREPARE", "CONTROL", "rtlil_with_src", "list_mutations", "mutants_verilog",
           "EquivalenceResult", "prove_equivalent"]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Yosys commands that turn Amaranth's RTLIL into one flat module of cells (mutations act on cells).
PREPARE = ("proc", "flatten", "memory_collect", "opt_clean")
#: The control signal of the mutated netlist and its width (up to 65535 mutants).
CONTROL, CONTROL_WIDTH = "mutsel", 16


@dataclasses.dataclass(frozen=True)
class Mutation:
    """One line of ``mutate -list``: ``spec`` is the ``mutate`` argument list that applies it."""
    index: int
    spec: str

    def option(self, name: str) -> str | None:
        words = self.spec.split()
        return next((words[i + 1] for i, word in enumerate(words[:-1]) if word == f"-{name}"), None)

    @property
    def mode(self) -> str:
        return self.option("mode") or "?"

    @property
    def sources(self) -> list[str]:
        """Source locations of the mutated cell and wire, repository-relative (``hw/pe.py:87``)."""
        words = self.spec.split()
        return [_relative(words[i + 1]) for i, word in enumerate(words[:-1]) if word == "-src"]

    def submodule(self, toplevel: str) -> "tuple[str, Mutation] | None":
        """The RTLIL module of the sub-block whose flattened cell this mutation changes
        (``$flatten\\<path>.<cell>`` -> ``<toplevel>.<path>``) and the mutation rewritten for that
        module alone; None for a cell of the top module itself."""
        cell, wire = self.option("cell") or "", self.option("wire")
        if not cell.startswith("$flatten\\"):
            return None
        path, _, inner = cell[len("$flatten\\"):].rpartition(".")
        path = path.replace("\\", "")  # nested flattening escapes each level: gdu_0.\scale_mul
        module = f"{toplevel}.{path}"
        return module, self.with_options(module=module, cell=inner,
                                         **({"wire": wire.removeprefix(f"{path}.")} if wire else {}))

    def with_options(self, **values: str) -> "Mutation":
        """This mutation with the values of the named options (``module``, ``cell``, ``wire``) replaced."""
        words = self.spec.split()
        for i, word in enumerate(words[:-1]):
            if word.startswith("-") and word[1:] in values:
                words[i + 1] = values[word[1:]]
        return Mutation(self.index, " ".join(words))

    @property
    def description(self) -> str:
        """The mutation without its source locations (mode, cell, port, bit, wire)."""
        return re.sub(r"\s*-src \S+", "", re.sub(r"^mutate\s+", "", self.spec))


def _relative(src: str) -> str:
    """``<repository>/hw/pe.py:87`` -> ``hw/pe.py:87``."""
    return src.removeprefix(f"{REPO_ROOT}/")


def rtlil_with_src(component, toplevel: str) -> str:
    """RTLIL of ``component`` with top module ``toplevel`` and ``src`` attributes."""
    from amaranth.back import rtlil
    return rtlil.convert(component, name=toplevel, emit_src=True)


def _yosys(work: Path, script: str, log: str, timeout: float | None = None) -> str:
    """Run ``script`` in ``work`` as ``<log>.ys``; returns the log, ``<log>.log``."""
    (work / f"{log}.ys").write_text(script)
    run = run_yosys(work, f"{log}.ys", f"{log}.log", timeout, MutateError)
    if run.returncode != 0:
        raise MutateError(f"Yosys failed (exit {run.returncode}) running {work / log}.ys:\n"
                          + "\n".join(run.log.splitlines()[-15:] or run.output.splitlines()[-15:]))
    return run.log


def _prepare(design: str, top: str | None = None) -> str:
    """Read ``design`` (keeping only module ``top`` and what it instantiates, when given) and flatten it."""
    return f"read_rtlil {design}\n" + (f"hierarchy -top {top}\n" if top else "") + "\n".join(PREPARE) + "\n"


def list_mutations(work: Path, design: str, count: int, seed: int, sources: tuple[str, ...]) -> list[Mutation]:
    """``count`` mutations (Yosys ``mutate -list``, seeded) of the cells of RTLIL file ``work/design``
    whose ``src`` lies in one of ``sources`` (repository-relative file names; empty: every cell)."""
    selection = " ".join(f"a:src=*{source}:*" for source in sources)
    _yosys(work, _prepare(design) + f"mutate -list {count} -seed {seed} -o mutations.txt {selection}\n", "list")
    lines = [line.strip() for line in (work / "mutations.txt").read_text().splitlines() if line.strip()]
    return [Mutation(index, line) for index, line in enumerate(lines, start=1)]


def mutants_verilog(work: Path, design: str, toplevel: str, mutations: list[Mutation]) -> str:
    """Verilog of ``design`` with every mutation, mutation i active when ``+mutsel=i`` (see the module
    docstring); written to ``work/mutants.v`` and returned."""
    if len(mutations) >= 2 ** CONTROL_WIDTH:
        raise MutateError(f"mutants={len(mutations)}: at most {2 ** CONTROL_WIDTH - 1} per netlist")
    apply = "".join(f"{m.spec} -ctrl {CONTROL} {CONTROL_WIDTH} {m.index}\n" for m in mutations)
    _yosys(work, _prepare(design) + apply + f"delete -port {toplevel}/{CONTROL}\n"
           "attrmap -remove src\nwrite_verilog -norename mutants_raw.v\n", "mutants")
    text = (work / "mutants_raw.v").read_text()
    declaration = f"wire [{CONTROL_WIDTH - 1}:0] {CONTROL};"
    if text.count(declaration) != 1:
        raise MutateError(f"{work / 'mutants_raw.v'}: expected one '{declaration}', found {text.count(declaration)}")
    text = text.replace(declaration, f"reg [{CONTROL_WIDTH - 1}:0] {CONTROL};\n"
                        f"  initial if (!$value$plusargs(\"{CONTROL}=%d\", {CONTROL})) {CONTROL} = 0;")
    (work / "mutants.v").write_text(text)
    return text


@dataclasses.dataclass(frozen=True)
class EquivalenceResult:
    """``equivalent``: proven (see :func:`prove_equivalent`); ``detail`` says how, or why not."""
    equivalent: bool
    detail: str


def _gold_and_gate(design: str, toplevel: str, mutation: Mutation, submodule: bool) -> str:
    """Script that leaves modules ``gold`` (original) and ``gate`` (mutant), flat, memories as registers;
    ``submodule``: ``toplevel`` is a module below the design's top, taken alone."""
    top = toplevel if submodule else None
    return (_prepare(design, top) + f"{mutation.spec}\nrename {toplevel} gate\ndesign -stash gate\n"
            + _prepare(design, top) + f"rename {toplevel} gold\ndesign -copy-from gate -as gate gate\n"
            "memory_map\nopt -fast\nopt_clean\n")


#: Time steps of ``equiv_simple``/``equiv_induct``.
EQUIV_STEPS = 4


def prove_equivalent(work: Path, design: str, toplevel: str, mutation: Mutation,
                     timeout: float = 120.0, submodule: bool = False) -> EquivalenceResult:
    """Try to prove the mutant equivalent to the original at the ports of ``toplevel``.

    ``equiv_make`` (signals matched by name), ``equiv_struct`` (merges the identical logic, all but the
    mutated cone), ``equiv_simple`` and ``equiv_induct``: the two never diverge once their matched
    signals agree, and both start from the same register values (a mutation changes a cell, never an
    initial value). Yosys' own caveat: ``equiv_induct`` assumes the first :data:`EQUIV_STEPS` cycles
    agree; a mutation that differs only in those would pass, which is why the report lists every
    proof. Memories become registers (``memory_map``), so keep the configuration small. With
    ``submodule``, ``toplevel`` names a module below the design's top (:meth:`Mutation.submodule`):
    equivalent at its ports means equivalent in any context.

    ``equiv_make`` also pairs the internal signals of the same name, and an internal signal may
    differ where the ports never show it (a leading-zero count used only for a nonzero value). So
    a sub-block that fails there gets a second try at its ports alone: a miter of the two, proven by
    ``sat -tempinduct`` from any pair of initial states (which covers equal ones); it succeeds for
    combinational units and seldom for others."""
    log = f"equiv_{mutation.index}" + ("_local" if submodule else "")
    start = time.monotonic()
    try:
        _yosys(work, _gold_and_gate(design, toplevel, mutation, submodule)
               + f"equiv_make gold gate equiv\nhierarchy -top equiv\nequiv_struct\nequiv_simple -seq {EQUIV_STEPS}\n"
               f"equiv_induct -seq {EQUIV_STEPS}\nequiv_status -assert\n", log, timeout=timeout)
    except MutateError as error:
        reason = "timed out" if "timed out" in str(error) else f"unproven $equiv cells in {log}.log"
        left = timeout - (time.monotonic() - start)
        if submodule and "timed out" not in reason and left > 1:
            try:
                _yosys(work, _gold_and_gate(design, toplevel, mutation, submodule)
                       + "miter -equiv -flatten -make_assert gold gate miter\nhierarchy -top miter\n"
                       f"sat -verify -prove-asserts -tempinduct -maxsteps {EQUIV_STEPS} miter\n", f"{log}_miter",
                       timeout=left)
            except MutateError:
                return EquivalenceResult(False, f"not proven equivalent ({reason}; no port-level induction)")
            return EquivalenceResult(True, "proven equivalent (miter at the ports, sat -tempinduct)")
        return EquivalenceResult(False, f"not proven equivalent ({reason})")
    return EquivalenceResult(True, "proven equivalent (equiv_struct + equiv_simple + equiv_induct)")
