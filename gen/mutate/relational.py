"""Equivalence of a mutant by induction strengthened with invariants over both designs' registers.

``equiv_induct`` pairs internal signals by name, and the port miter of
:func:`gen.mutate.netlist.prove_equivalent` starts its induction from any pair of states: both fail
when an unreachable state tells the original from the mutant (the mutated bit of a counter that
only its idle value sets). Here the two designs run side by side in one harness whose asserts are
"the outputs agree" and the given invariants, Verilog expressions over exposed internal signals
(``gold_<name>``, ``gate_<name>``); ``sat -tempinduct`` proves them all together from the
registers' ``init`` values, so the invariants are proven too, never assumed.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from gen.mutate.errors import MutateError
from gen.mutate.netlist import PREPARE, Mutation, _yosys

__all__ = ["RelationalProof", "module_wires", "prove_relational"]

_WIRE = re.compile(r"^\s*wire (?:width (\d+) )?(?:(input|output) \d+ +)?(?:signed )?\\(\S+)$")


@dataclasses.dataclass(frozen=True)
class RelationalProof:
    """``signals``: internal wires of the module exposed in both designs (``gold_<s>``, ``gate_<s>``);
    ``invariants``: Verilog expressions over them (and the ports, ``gold_<p>``/``gate_<p>`` for outputs,
    plain names for inputs) that must hold every cycle; ``depth``: the induction's maximal length."""
    signals: tuple[str, ...]
    invariants: tuple[str, ...]
    depth: int = 4


def module_wires(rtlil: str, module: str) -> list[tuple[str, int, str]]:
    """(name, width, ``input``/``output``/``""``) of every named wire of ``module`` in the RTLIL text."""
    wires, inside = [], False
    for line in rtlil.splitlines():
        if line.startswith("module "):
            inside = line.split()[1] == f"\\{module}"
        elif inside and (match := _WIRE.match(line)):
            wires.append((match[3], int(match[1] or 1), match[2] or ""))
        elif inside and line == "end":
            break
    return wires


def _harness(wires: list[tuple[str, int, str]], proof: RelationalProof) -> str:
    """Verilog of module ``proof``: ``gold`` and ``gate`` on the same inputs, one assert per output and
    per invariant."""
    inputs = [(name, width) for name, width, direction in wires if direction == "input"]
    outputs = [(name, width) for name, width, direction in wires if direction == "output"]
    widths = {name: width for name, width, _ in wires}
    missing = [name for name in proof.signals if name not in widths]
    if missing:
        raise MutateError(f"signals={missing}: no such wire in the module")
    declared = outputs + [(name, widths[name]) for name in proof.signals]
    wires = [f"  wire [{width - 1}:0] {side}_{name};" for name, width in declared for side in ("gold", "gate")]
    lines = ["module proof(" + ", ".join(f"input [{width - 1}:0] {name}" for name, width in inputs) + ");", *wires]
    for side in ("gold", "gate"):
        connections = [f".\\{name} ({name})" for name, _ in inputs]
        connections += [f".\\{name} ({side}_{name})" for name, _ in outputs]
        connections += [f".\\{name} ({side}_{name})" for name in proof.signals]
        lines.append(f"  {side} {side}_design(" + ", ".join(connections) + ");")
    checks = [f"gold_{name} == gate_{name}" for name, _ in outputs] + list(proof.invariants)
    lines += ["  always @* begin"] + [f"    assert ({check});" for check in checks] + ["  end", "endmodule", ""]
    return "\n".join(lines)


def prove_relational(work: Path, design: str, module: str, mutation: Mutation, proof: RelationalProof,
                     timeout: float = 600.0) -> tuple[bool, str]:
    """Prove that ``mutation`` (of ``module``, a module of the RTLIL file ``work/design`` taken alone)
    keeps ``module``'s port behaviour, with the invariants of ``proof``; returns (proven, Yosys' verdict)."""
    wires = module_wires((work / design).read_text(), module)
    if not wires:
        raise MutateError(f"module={module!r}: not in {work / design}")
    tag = f"relational_{mutation.index}"
    (work / f"{tag}.v").write_text(_harness(wires, proof))
    expose = " ".join(f"{module}/{signal}" for signal in proof.signals)
    script = (f"read_rtlil {design}\nhierarchy -top {module}\n" + "\n".join(PREPARE) + f"\nexpose {expose}\n"
              f"design -save base\n{mutation.spec}\nrename {module} gate\ndesign -stash gate\n"
              f"design -load base\nrename {module} gold\ndesign -copy-from gate -as gate gate\n"
              f"read_verilog -formal {tag}.v\nhierarchy -top proof\nproc\nchformal -lower\nflatten\nmemory_map\nopt -fast\n"
              f"sat -tempinduct -prove-asserts -maxsteps {proof.depth} -show-ports -dump_vcd {tag}.vcd proof\n")
    try:
        log = _yosys(work, script, tag, timeout=timeout)
    except MutateError as error:
        return False, str(error).splitlines()[0]
    if "SUCCESS!" in log:
        return True, f"proven by induction with {len(proof.invariants)} invariants ({tag}.log)"
    return False, ("counterexample or no induction within "
                   f"{proof.depth} steps ({tag}.log, {tag}.vcd)")
