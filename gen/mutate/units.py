"""Mutants of a sub-block, tested on the sub-block's own bench first (as the unit tests of
``make test`` test it), the way mcy tests a mutated sub-module in isolation.

A mutated cell inside a sub-block (``$flatten\\gdu_0.\\scale_mul.$486``) changes that sub-block's
module. When a *unit bench*'s design (e.g. ``fp32``, the GDU's FP32 units side by side) holds a
module with the same body (same class, same parameters: the RTLIL agrees up to port order), the
mutation applies there in the same way (:func:`unit_mutations`), and a test of the unit bench that
fails on it kills the mutant. The unit bench's netlist of these mutations keeps every mutant's
index, so ``+mutsel=<i>`` selects mutant i in both netlists. A cell that Amaranth named (``$486``)
has the same name in both designs. A cell that Yosys made (``proc``'s ``$procmux$<n>``) is numbered
across the whole design, so it is found in the unit design by what it is instead: its type,
parameters and attributes and the sub-block's public wires its output ``Y`` drives
(:func:`prepared_module`, :func:`_yosys_cell`); a cell that drives no public wire, or whose
description two cells share, or none, skips the unit bench.
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from gen.mutate.netlist import Mutation, _prepare, _yosys

__all__ = ["module_bodies", "prepared_module", "unit_mutations"]

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


def prepared_module(work: Path, design: str, toplevel: str) -> dict:
    """Module ``toplevel`` of RTLIL file ``work/design`` after the preparation that names the cells of
    ``mutate -list`` (:data:`gen.mutate.netlist.PREPARE`), as Yosys' JSON (``cells``, ``netnames``)."""
    _yosys(work, _prepare(design) + "write_json prepared.json\n", "prepared")
    return json.loads((work / "prepared.json").read_text())["modules"][toplevel]


def _flattened(path: str) -> str:
    """``gdu_0.scale_mul`` -> ``gdu_0.\\scale_mul``: Yosys escapes each level of a nested path."""
    return ".\\".join(path.split("."))


def _cell_descriptions(module: dict, path: str) -> dict[str, tuple | None]:
    """The cells of flattened sub-block ``path`` of ``module`` (Yosys JSON), each (by its name within the
    sub-block) -> its type, parameters, attributes and, per bit of ``Y``, the sub-block's public wire
    bits that carry it (named within the sub-block); None when ``Y`` drives no public wire."""
    wires = defaultdict(list)
    for name, net in module["netnames"].items():
        if not net["hide_name"] and name.startswith(f"{path}."):
            for offset, bit in enumerate(net["bits"]):
                wires[bit].append((name.removeprefix(f"{path}."), offset))
    prefix = f"$flatten\\{_flattened(path)}."
    descriptions = {}
    for name, cell in module["cells"].items():
        if name.startswith(prefix):
            y = tuple(tuple(sorted(wires[bit])) if isinstance(bit, int) else bit
                      for bit in cell["connections"].get("Y", ()))
            descriptions[name.removeprefix(prefix)] = (
                (cell["type"], tuple(sorted(cell["parameters"].items())), tuple(sorted(cell["attributes"].items())), y)
                if any(isinstance(bit, tuple) and bit for bit in y) else None)
    return descriptions


def _yosys_cell(cell: str, descriptions: dict[str, tuple | None], unit_descriptions: dict[str, tuple | None]
                ) -> str | None:
    """The cell of the unit's sub-block that ``cell`` of the design's is: the one cell with its description
    on either side; None when there is none or more than one, or ``cell`` drives no public wire."""
    description = descriptions.get(cell)
    if description is None or list(descriptions.values()).count(description) != 1:
        return None
    matches = [name for name, other in unit_descriptions.items() if other == description]
    return matches[0] if len(matches) == 1 else None


def unit_mutations(mutations: list[Mutation], toplevel: str, design: str, unit_toplevel: str, unit_design: str,
                   prepared: Callable[[], tuple[dict, dict]] | None = None) -> list[Mutation]:
    """The mutations whose cell lies in a sub-block of ``toplevel`` (RTLIL ``design``) that the unit
    bench's design (``unit_toplevel``, RTLIL ``unit_design``) holds too, rewritten for the flattened
    unit design (same index). ``prepared``: both designs' top modules as :func:`prepared_module`
    gives them, asked for (once) when a mutation names a cell that Yosys made; without it such
    mutations are left out."""
    units = {body: name for name, body in module_bodies(unit_design).items() if name.startswith(f"{unit_toplevel}.")}
    if not units:
        return []
    bodies = module_bodies(design)
    prepared = functools.cache(prepared) if prepared else None
    descriptions = functools.cache(lambda side, path: _cell_descriptions(prepared()[side], path))
    mapped = []
    for mutation in mutations:
        local = mutation.submodule(toplevel)
        if local is None or local[0] not in bodies or bodies[local[0]] not in units:
            continue
        path, local_mutation = local[0].removeprefix(f"{toplevel}."), local[1]
        unit_path = units[bodies[local[0]]].removeprefix(f"{unit_toplevel}.")
        cell = local_mutation.option("cell") or ""
        if not _AMARANTH_CELL.fullmatch(cell):
            if prepared is None or (cell := _yosys_cell(cell, descriptions(0, path),
                                                        descriptions(1, unit_path))) is None:
                continue
        values = {"module": unit_toplevel, "cell": f"$flatten\\{_flattened(unit_path)}.{cell}"}
        if local_mutation.option("wire"):
            values["wire"] = f"{unit_path}.{local_mutation.option('wire')}"
        mapped.append(local_mutation.with_options(**values))
    return mapped
