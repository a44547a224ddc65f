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

__all__ = ["RelationalProof", "module_wires", "harness", "prove_relational"]

_WIRE = re.compile(r"^\s*wire (?:width (\d+) )?(?:(input|output) \d+ +)?(?:signed )?\\(\S+)$")


@dataclasses.dataclass(frozen=True)
class RelationalProof:
    """``signals``: internal wires of the module exposed in both designs (``gold_<s>``, ``gate_<s>``), a
    wire of a sub-block by its flattened name (``pe_7_1.psum``: wire ``psum`` of the module's
    ``pe_7_1``); ``invariants``: Verilog expressions over them (and the ports, ``gold_<p>``/``gate_<p>``
    for outputs, plain names for inputs) that must hold every cycle, every character of a name that
    is not a letter, digit or ``_`` written as ``_`` (:func:`harness_name`); ``depth``: the
    induction's maximal length; ``streams``: (payload, valid) output pairs whose payload is compared
    only on the cycles the original's valid is set (the stream protocol: a payload without valid
    means nothing; the valids are compared every cycle as the other outputs)."""
    signals: tuple[str, ...]
    invariants: tuple[str, ...]
    depth: int = 4
    streams: tuple[tuple[str, str], ...] = ()


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


def harness_name(name: str) -> str:
    """``name`` (a port or a flattened wire such as ``pe_7_1.psum``) as a Verilog identifier."""
    return re.sub(r"\W", "_", name)


def _signal_widths(rtlil: str, module: str, signals: tuple[str, ...]) -> dict[str, int]:
    """Width of each of ``signals``: a wire of ``module``, or ``<path>.<wire>``, a wire of its sub-block
    ``<path>`` (Amaranth names that block's module ``<module>.<path>``); absent names are left out."""
    owners = {}
    for signal in signals:
        path, _, wire = signal.rpartition(".")
        owners.setdefault(f"{module}.{path}" if path else module, {})[wire] = signal
    return {wires[name]: width for owner, wires in owners.items()
            for name, width, _ in module_wires(rtlil, owner) if name in wires}


def harness(wires: list[tuple[str, int, str]], proof: RelationalProof, signal_widths: dict[str, int]) -> str:
    """Verilog of module ``proof``: ``gold`` and ``gate`` on the same inputs, one assert per output (a
    stream's payload only under its valid) and per invariant."""
    inputs = [(name, width) for name, width, direction in wires if direction == "input"]
    outputs = [(name, width) for name, width, direction in wires if direction == "output"]
    missing = [name for name in proof.signals if name not in signal_widths]
    if missing:
        raise MutateError(f"signals={missing}: no such wire in the module")
    declared = outputs + [(name, signal_widths[name]) for name in proof.signals]
    wires = [f"  wire [{width - 1}:0] {side}_{harness_name(name)};" for name, width in declared for side in ("gold", "gate")]
    lines = ["module proof(" + ", ".join(f"input [{width - 1}:0] {name}" for name, width in inputs) + ");", *wires]
    for side in ("gold", "gate"):
        connections = [f".\\{name} ({name})" for name, _ in inputs]
        connections += [f".\\{name} ({side}_{harness_name(name)})" for name, _ in outputs]
        connections += [f".\\{name} ({side}_{harness_name(name)})" for name in proof.signals]
        lines.append(f"  {side} {side}_design(" + ", ".join(connections) + ");")
    valid_of = dict(proof.streams)
    if absent := [name for pair in proof.streams for name in pair if name not in dict(outputs)]:
        raise MutateError(f"streams={list(proof.streams)}: {absent} are not outputs of the module")
    checks = [(f"!gold_{harness_name(valid_of[name])} || " if name in valid_of else "")
              + f"gold_{harness_name(name)} == gate_{harness_name(name)}" for name, _ in outputs]
    checks += proof.invariants
    lines += ["  always @* begin"] + [f"    assert ({check});" for check in checks] + ["  end", "endmodule", ""]
    return "\n".join(lines)


def prove_relational(work: Path, design: str, module: str, mutation: Mutation, proof: RelationalProof,
                     timeout: float = 600.0) -> tuple[bool, str]:
    """Prove that ``mutation`` (of ``module``, a module of the RTLIL file ``work/design`` taken alone)
    keeps ``module``'s port behaviour, with the invariants of ``proof``; returns (proven, Yosys' verdict)."""
    rtlil = (work / design).read_text()
    wires = module_wires(rtlil, module)
    if not wires:
        raise MutateError(f"module={module!r}: not in {work / design}")
    tag = f"relational_{mutation.index}"
    (work / f"{tag}.v").write_text(harness(wires, proof, _signal_widths(rtlil, module, proof.signals)))
    expose = " ".join(f"{module}/{signal}" for signal in proof.signals)
    # Exposed before PREPARE's opt_clean, which drops a sub-block's port wire that merely aliases another.
    assert PREPARE[-1] == "opt_clean"
    script = (f"read_rtlil {design}\nhierarchy -top {module}\n" + "\n".join(PREPARE[:-1]) + f"\nexpose {expose}\nopt_clean\n"
              f"design -save base\n{mutation.spec}\nrename {module} gate\ndesign -stash gate\n"
              f"design -load base\nrename {module} gold\ndesign -copy-from gate -as gate gate\n"
              f"read_verilog -formal {tag}.v\nhierarchy -top proof\nproc\nchformal -lower\nflatten\nmemory_map\nopt -fast\n"
              f"sat -tempinduct -prove-asserts -maxsteps {proof.depth} -show-ports -dump_vcd {tag}.vcd proof\n")
    try:
        log = _yosys(work, script, tag, timeout=timeout)
    except MutateError as error:
        return False, str(error).splitlines()[0]
    if "did not match any object" in log:
        raise MutateError(f"signals={list(proof.signals)}: not all are wires of {module} once flattened ({work / tag}.log)")
    if "SUCCESS!" in log:
        return True, f"proven by induction with {len(proof.invariants)} invariants ({tag}.log)"
    return False, ("counterexample or no induction within "
                   f"{proof.depth} steps ({tag}.log, {tag}.vcd)")
