"""Mutants of a sub-block, tested on the sub-block's own bench first (as the unit tests of
``make test`` test it), the way mcy tests a mutated sub-module in isolation.

A mutated cell inside a sub-block (``$flatten\\gdu_0.\\scale_mul.$486``) changes that sub-block's
module. When a *unit bench*'s design (e.g. ``fp32``, the GDU's FP32 units side by side) holds a
module with the same body (same class, same parameters: the RTLIL agrees up to port order), the
mutation applies there in the same way (:func:`unit_mutations`), and a test of the unit bench that
fails on it kills the mutant. The unit bench's netlist of these mutations keeps every mutant's
index, so ``+mutsel=<i>`` selects mutant i in both netlists. Cells that Yosys creates (``proc``'s
``$procmux$<n>``) are numbered across the whole design, so they have no counterpart to name: their
mutants skip the unit bench.
"""

from __future__ import annotations

import re

from gen.mutate.netlist import Mutation

__all__ = ["module_bodies", "unit_mutations"]

_PORT_INDEX = re.compile(r"\b(input|output|inout) \d+\b")
#: A cell named in Amaranth's RTLIL (``$486``): numbered within its module, so the same in both designs.
_AMARANTH_CELL = re.compile(r"\$\d+")


def module_bodies(rtlil: str) -> dict[str, tuple[str, ...]]:
    """Module name (without the leading backslash) -> its body in a form that ignores the order of
    its declarations and port numbers (two elaborations of one component differ only there)."""
    bodies, name, lines = {}, None, []
    for line in rtlil.splitlines():
        if line.startswith("module "):
            name, lines = line.split()[1].removeprefix("\\"), []
        elif line == "end" and name is not None:
            chunks = "\n".join(_PORT_INDEX.sub(r"\1", text) for text in lines).split("\n\n")
            bodies[name] = tuple(sorted(chunk.strip() for chunk in chunks if chunk.strip()))
            name = None
        elif name is not None:
            lines.append(line)
    return bodies


def unit_mutations(mutations: list[Mutation], toplevel: str, design: str, unit_toplevel: str,
                   unit_design: str) -> list[Mutation]:
    """The mutations whose cell lies in a sub-block of ``toplevel`` (RTLIL ``design``) that the unit
    bench's design (``unit_toplevel``, RTLIL ``unit_design``) holds too, rewritten for the flattened
    unit design (same index)."""
    units = {body: name for name, body in module_bodies(unit_design).items() if name.startswith(f"{unit_toplevel}.")}
    if not units:
        return []
    bodies = module_bodies(design)
    mapped = []
    for mutation in mutations:
        local = mutation.submodule(toplevel)
        if local is None or local[0] not in bodies or bodies[local[0]] not in units:
            continue
        if not _AMARANTH_CELL.fullmatch(local[1].option("cell") or ""):
            continue  # a cell Yosys made ($procmux$75): numbered across the whole design, no name to map
        unit_path = units[bodies[local[0]]].removeprefix(f"{unit_toplevel}.")
        local_mutation = local[1]
        flattened = ".\\".join(unit_path.split("."))  # Yosys escapes each level of a nested path
        values = {"module": unit_toplevel, "cell": f"$flatten\\{flattened}.{local_mutation.option('cell')}"}
        if local_mutation.option("wire"):
            values["wire"] = f"{unit_path}.{local_mutation.option('wire')}"
        mapped.append(local_mutation.with_options(**values))
    return mapped
