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
           "EquivalenceResult", "prove_equivalent", "CUT_POINTS", "MITER", "EQUIV"]

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
    """``equivalent``: proven (see :func:`prove_equivalent`); ``detail`` says how, or why not; ``method``
    names the proof that succeeded (:data:`MITER`, :data:`EQUIV`; "" when none did)."""
    equivalent: bool
    detail: str
    method: str = ""


#: The proof methods of :func:`prove_equivalent`, as named in the reports' ``equivalent_by``.
CUT_POINTS = "registers as cut points + sat"
MITER, EQUIV = "miter + sat -tempinduct", "equiv_struct + equiv_simple + equiv_induct"


def _gold_and_gate(design: str, toplevel: str, mutation: Mutation, submodule: bool, zero_init: bool = False) -> str:
    """Script that leaves modules ``gold`` (original) and ``gate`` (mutant), flat, memories as registers;
    ``submodule``: ``toplevel`` is a module below the design's top, taken alone; ``zero_init``: every
    ``init`` attribute removed, then every register given the initial value 0 (only for a design
    whose initial values are all 0: Yosys' ``opt_clean`` rejects the ``init`` that a mutated register
    output leaves on a wire now driven by a constant; the registers still need an initial value for
    ``opt_dff -sat``)."""
    top = toplevel if submodule else None
    return (_prepare(design, top) + f"{mutation.spec}\nrename {toplevel} gate\ndesign -stash gate\n"
            + _prepare(design, top) + f"rename {toplevel} gold\ndesign -copy-from gate -as gate gate\n"
            + ("attrmap -remove init\nmemory_map\nsetundef -zero -init\n" if zero_init else "memory_map\n")
            + "opt -fast\nopt_clean\n")


#: Time steps of ``equiv_simple``/``equiv_induct``.
EQUIV_STEPS = 4
#: Longest temporal induction of the port-level miter (cycles): deeper than any FP32 unit's pipeline.
MITER_STEPS = 12
_INIT = re.compile(r"attribute \\init \d+'([01x]+)")


def _all_init_zero(work: Path, design: str) -> bool:
    """Every ``init`` attribute of ``work/design`` is all zeros (then dropping them all changes nothing
    for ``sat -set-init-zero``)."""
    return all(set(value) == {"0"} for value in _INIT.findall((work / design).read_text()))


#: Port-level miter (:func:`_prove_at_ports`) proven by temporal induction.
_MITER_SCRIPT = ("miter -equiv -flatten -make_assert gold gate miter\nhierarchy -top miter\nopt -fast -full\nopt_clean\n"
                 f"sat -verify -prove-asserts -set-init-zero -tempinduct -maxsteps {MITER_STEPS} miter\n")
def _cut_points_script(constant_registers: bool) -> str:
    """Every register bit a cut point (its output an input, its next value an output) in one
    combinational SAT problem. Per design, enables and resets become logic (``dffunmap``) and bits
    nobody reads go (``opt_clean``); ``splitnets`` gives each remaining bit a wire of its own, as
    ``expose -evert-dff`` wants, and only the registers are exposed, so internal wires need not
    agree. ``constant_registers``: first, the bits that never leave their initial value become
    constants (``opt_dff -sat``: a bit whose next value equals its initial value whenever it holds
    it, e.g. one whose input is a constant that only SAT sees; the pass also merges bits proven
    equal by induction). That costs a SAT call per register bit (minutes on a whole GDU), hence the
    second attempt only."""
    return ("simplemap\n" + ("opt_dff -nodffe -nosdff -sat\n" if constant_registers else "")
            + "dffunmap\nopt_clean\nsplitnets\nexpose -evert-dff t:$_DFF_*\nmiter -equiv -flatten -make_assert gold gate miter\n"
            "hierarchy -top miter\nopt -fast -full\nopt_clean\nsat -verify -prove-asserts miter\n")


def _prove_at_ports(work: Path, design: str, toplevel: str, mutation: Mutation, timeout: float, submodule: bool,
                    log: str, method: str) -> EquivalenceResult:
    """A miter of original and mutant at the ports of ``toplevel`` (``miter -equiv -flatten``), their
    common logic merged and constants folded (``opt -fast -full``: what the mutation does not reach
    becomes one copy, and a mutation of a constant or unread bit folds away), proven one of two ways.

    :data:`CUT_POINTS`: the registers of both become ports of the same names, so the miter says
    "from any equal state and inputs, equal outputs and equal next state"; with equal initial
    values that holds forever (induction with "every register equal" as the invariant). Closes
    feedback loops (an accumulator memory), which the merging cannot, and a mutation of a register
    bit nobody reads; when that fails, a second attempt first turns the register bits that never
    leave their initial value into constants (:func:`_cut_points_script`), so a bit held at its
    value only by the logic before it closes too. :data:`MITER`: ``sat -tempinduct``,
    base case from equal initial states (``init`` values, else zero, as the simulator starts),
    induction step from any pair of states, up to :data:`MITER_STEPS` cycles (a pipeline of n
    stages after the mutated cell closes at n + 1); a base-case counterexample is final."""
    start = time.monotonic()

    def run(script: str) -> None:
        try:
            _yosys(work, _gold_and_gate(design, toplevel, mutation, submodule) + script, log,
                   timeout=timeout - (time.monotonic() - start))
        except MutateError as error:
            if "Conflicting init values" not in str(error) or not _all_init_zero(work, design):
                raise
            _yosys(work, _gold_and_gate(design, toplevel, mutation, submodule, zero_init=True) + script, log,
                   timeout=timeout - (time.monotonic() - start))

    verdict = EquivalenceResult(False, f"{method}: timed out")
    for script in [_MITER_SCRIPT] if method == MITER else [_cut_points_script(False), _cut_points_script(True)]:
        if time.monotonic() - start > timeout - 1:
            break
        try:
            run(script)
        except MutateError as error:
            text = (work / f"{log}.log").read_text(errors="replace") if (work / f"{log}.log").exists() else ""
            if method == MITER and "model found for base case: FAIL" in text:
                return EquivalenceResult(False, f"not equivalent: counterexample from equal initial states ({log}.log)")
            timed_out = "timed out" in str(error)
            verdict = EquivalenceResult(False, f"{method}: {'timed out' if timed_out else 'not proven'}")
            if timed_out:
                break
            continue
        return EquivalenceResult(True, f"proven equivalent ({method})", method)
    return verdict


def prove_equivalent(work: Path, design: str, toplevel: str, mutation: Mutation,
                     timeout: float = 120.0, submodule: bool = False) -> EquivalenceResult:
    """Try to prove the mutant equivalent to the original at the ports of ``toplevel`` within
    ``timeout`` seconds, three ways in turn.

    First two port-level miters (:func:`_prove_at_ports`), each within a third of the time: registers
    as cut points, then temporal induction. They need no internal signal to agree, so a leading-zero
    count read only for a nonzero value, an unread low sum bit or a constant row bit close in
    seconds. A counterexample of the induction's base case is final (the mutant differs there).

    Then, with the last third, ``equiv_make`` (signals matched by name), ``equiv_struct`` (merges the
    identical logic, all but the mutated cone), ``equiv_simple`` and ``equiv_induct``: the two never
    diverge once their matched signals agree, and both start from the same register values (a
    mutation changes a cell, never an initial value). Yosys' own caveat: ``equiv_induct`` assumes the
    first :data:`EQUIV_STEPS` cycles agree. Memories become registers (``memory_map``), so keep the
    configuration small. With ``submodule``, ``toplevel`` names a module below the design's top
    (:meth:`Mutation.submodule`): equivalent at its ports means equivalent in any context."""
    log = f"equiv_{mutation.index}" + ("_local" if submodule else "")
    start = time.monotonic()
    cut = _prove_at_ports(work, design, toplevel, mutation, timeout / 3, submodule, f"{log}_cut", CUT_POINTS)
    if cut.equivalent:
        return cut
    miter = _prove_at_ports(work, design, toplevel, mutation, 2 * timeout / 3 - (time.monotonic() - start), submodule,
                            f"{log}_miter", MITER)
    if miter.equivalent or miter.detail.startswith("not equivalent"):
        return miter
    left = timeout - (time.monotonic() - start)
    if left < 1:
        return EquivalenceResult(False, f"not proven equivalent ({cut.detail}; {miter.detail})")
    try:
        _yosys(work, _gold_and_gate(design, toplevel, mutation, submodule)
               + f"equiv_make gold gate equiv\nhierarchy -top equiv\nequiv_struct\nequiv_simple -seq {EQUIV_STEPS}\n"
               f"equiv_induct -seq {EQUIV_STEPS}\nequiv_status -assert\n", log, timeout=left)
    except MutateError as error:
        reason = "timed out" if "timed out" in str(error) else f"unproven $equiv cells in {log}.log"
        return EquivalenceResult(False, f"not proven equivalent ({cut.detail}; {miter.detail}; equiv: {reason})")
    return EquivalenceResult(True, f"proven equivalent ({EQUIV})", EQUIV)
