"""Liberty files: validation, the NAND2 reference cell for library gate equivalents, and the buffer
and tie cells the timing netlist needs. Parsed with regular expressions (the flow only needs names,
areas, pin directions and functions)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import NamedTuple

from gen.synth.errors import SynthError

__all__ = ["Liberty", "Buffer", "OSU018_PATH", "resolve_liberty"]

#: Debian's ``qflow-tech-osu018`` (installed by ``make tools``), selected by ``--liberty osu018``.
OSU018_PATH = Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")
OSU018_PACKAGE = "qflow-tech-osu018"

_CELL_RE = re.compile(r"\bcell\s*\(\s*\"?([^\s\"\)]+)\"?\s*\)\s*\{")
_PIN_RE = re.compile(r"\bpin\s*\(\s*\"?([^\s\"\)]+)\"?\s*\)\s*\{")
_AREA_RE = re.compile(r"\barea\s*:\s*([-+0-9.eE]+)\s*;")
_FUNCTION_RE = re.compile(r"\bfunction\s*:\s*\"([^\"]*)\"")
_DIRECTION_RE = re.compile(r"\bdirection\s*:\s*\"?(\w+)\"?\s*;")
_CAPACITANCE_RE = re.compile(r"\bcapacitance\s*:\s*([-+0-9.eE]+)\s*;")
#: A delay table of a timing arc (NLDM ``cell_rise``/``cell_fall``, or a linear model's intrinsic delay).
_DELAY_RE = re.compile(r"\b(?:cell_rise|cell_fall|intrinsic_rise|intrinsic_fall)\b")
#: NAND2X1 (OSU), NAND2_X1 (Nangate), sky130_fd_sc_hd__nand2_1; not nand2b (an inverted input).
_NAND2_NAME_RE = re.compile(r"(?:.*[_\W])?nand2(?:x\d+|_x?\d+)?", re.IGNORECASE)
_NAND2_FUNCTIONS = {"!(A&B)", "!(A*B)", "(A&B)'", "(A*B)'", "(AB)'", "!(AB)", "!(B&A)", "!(B*A)",
                    "(B&A)'", "(B*A)'", "!A+!B", "!A|!B", "(!A)|(!B)", "(!A)+(!B)"}
#: Comments and strings (skipped whole), braces, and the start of an unterminated comment or string.
_LIBERTY_TOKEN_RE = re.compile(r'/\*.*?\*/|"(?:[^"\\]|\\.)*"|[{}]|/\*|"', re.DOTALL)


class Buffer(NamedTuple):
    """A non-inverting buffer cell: its name, pins and input capacitance (the library's unit, pF for OSU018)."""

    cell: str
    input: str
    output: str
    input_capacitance: float


class _Cell(NamedTuple):
    name: str
    area: float | None
    function: str | None                    # the first pin function in the cell (its output's, for gates)
    has_ff: bool
    pins: tuple[tuple[str, str, str | None, float], ...]   # (name, direction, function, capacitance)


@dataclasses.dataclass(frozen=True)
class Liberty:
    """A validated Liberty file, its NAND2 reference cell, and the cells a timing netlist uses.

    Members
    -------
    buffer : the smallest :class:`Buffer`, or None.
    tie_high, tie_low : (cell, output pin) of the smallest constant-1 / constant-0 cell, or None
        (OSU018 has none: constants then stay literal connections, which OpenSTA takes).
    has_timing : whether any cell has a delay table (``cell_rise``...); static timing needs them.
    """

    path: Path
    name: str           # library name
    sha256: str
    nand2_cell: str
    nand2_area: float
    cell_count: int
    buffer: Buffer | None = None
    tie_high: tuple[str, str] | None = None
    tie_low: tuple[str, str] | None = None
    has_timing: bool = False

    @property
    def tag(self) -> str:
        return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.name)}-{self.sha256[:10]}"

    @classmethod
    def load(cls, path: str | Path) -> "Liberty":
        path = Path(path)
        if not path.exists():
            raise SynthError(f"liberty file {str(path)!r} not found")
        if not path.is_file():
            raise SynthError(f"liberty file {str(path)!r} is not a regular file")
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise SynthError(f"liberty file {str(path)!r} cannot be read: {error}") from None
        text = raw.decode("utf-8", errors="replace")
        problem = _liberty_problem(text)
        if problem:
            raise SynthError(f"liberty file {str(path)!r} is malformed: {problem}")
        library = re.search(r"\blibrary\s*\(\s*\"?([^\s\"\)]+)\"?\s*\)\s*\{", text)
        cells = _liberty_cells(text)
        nand2 = _find_nand2(cells)
        if nand2 is None:
            raise SynthError(f"liberty file {str(path)!r} has no NAND2 cell with a positive area (looked for a "
                             f"cell named like NAND2 or with function !(A&B)); GE cannot be computed")
        if not any(cell.has_ff for cell in cells):
            raise SynthError(f"liberty file {str(path)!r} has no flip-flop cell (no ff group); "
                             "dfflibmap cannot map the registers")
        return cls(path=path.resolve(), name=library.group(1), sha256=hashlib.sha256(raw).hexdigest(),
                   nand2_cell=nand2[0], nand2_area=nand2[1], cell_count=len(cells), buffer=_find_buffer(cells),
                   tie_high=_find_tie(cells, "1"), tie_low=_find_tie(cells, "0"),
                   has_timing=bool(_DELAY_RE.search(text)))


def _liberty_problem(text: str) -> str | None:
    """A short description of what makes ``text`` unusable as a Liberty file, or None."""
    if not re.search(r"\blibrary\s*\([^)]*\)\s*\{", text):
        return "no 'library (name) {' group"
    depth = 0
    for token in _LIBERTY_TOKEN_RE.finditer(text):
        value = token.group()
        if value == "/*":
            return "unterminated /* comment"
        if value == '"':
            return "unterminated string"
        if value == "{":
            depth += 1
        elif value == "}":
            depth -= 1
            if depth < 0:
                return f"unbalanced '}}' at line {text.count(chr(10), 0, token.start()) + 1}"
    if depth != 0:
        return f"{depth} unclosed '{{' group(s) (truncated file?)"
    if not _CELL_RE.search(text):
        return "no cell groups"
    return None


def _sections(pattern: re.Pattern, text: str) -> list[tuple[str, str]]:
    """(name, text up to the next match) for every match of ``pattern`` in ``text``."""
    starts = [(match.start(), match.group(1)) for match in pattern.finditer(text)]
    return [(name, text[start:starts[index + 1][0] if index + 1 < len(starts) else len(text)])
            for index, (start, name) in enumerate(starts)]


def _liberty_cells(text: str) -> list[_Cell]:
    cells = []
    for name, body in _sections(_CELL_RE, text):
        area = _AREA_RE.search(body)
        function = _FUNCTION_RE.search(body)
        pins = []
        for pin, pin_body in _sections(_PIN_RE, body):
            direction = _DIRECTION_RE.search(pin_body)
            pin_function = _FUNCTION_RE.search(pin_body)
            capacitance = _CAPACITANCE_RE.search(pin_body)
            pins.append((pin, direction.group(1).lower() if direction else "",
                         pin_function.group(1) if pin_function else None,
                         float(capacitance.group(1)) if capacitance else 0.0))
        cells.append(_Cell(name, float(area.group(1)) if area else None, function.group(1) if function else None,
                           bool(re.search(r"\bff\s*\(", body)), tuple(pins)))
    return cells


def _find_nand2(cells: list[_Cell]) -> tuple[str, float] | None:
    by_name = [(cell.area, cell.name) for cell in cells
               if cell.area and cell.area > 0 and _NAND2_NAME_RE.fullmatch(cell.name)]
    if not by_name:
        by_name = [(cell.area, cell.name) for cell in cells if cell.area and cell.area > 0 and cell.function
                   and re.sub(r"\s", "", cell.function) in _NAND2_FUNCTIONS]
    if not by_name:
        return None
    area, name = min(by_name)
    return name, area


def _smallest(candidates):
    """The candidate of the smallest (area, name); candidates are (area, name, value)."""
    return min(candidates)[2] if candidates else None


def _find_buffer(cells: list[_Cell]) -> Buffer | None:
    found = []
    for cell in cells:
        inputs = [(name, capacitance) for name, direction, _, capacitance in cell.pins if direction == "input"]
        outputs = [(name, function) for name, direction, function, _ in cell.pins if direction == "output"]
        if not cell.has_ff and len(inputs) == 1 and len(outputs) == 1 and outputs[0][1] \
                and re.sub(r"[\s()]", "", outputs[0][1]) == inputs[0][0]:
            found.append((cell.area or 0.0, cell.name, Buffer(cell.name, inputs[0][0], outputs[0][0], inputs[0][1])))
    return _smallest(found)


def _find_tie(cells: list[_Cell], value: str) -> tuple[str, str] | None:
    found = []
    for cell in cells:
        inputs = [name for name, direction, _, _ in cell.pins if direction == "input"]
        outputs = [(name, function) for name, direction, function, _ in cell.pins if direction == "output"]
        if not inputs and len(outputs) == 1 and outputs[0][1] is not None and outputs[0][1].strip() == value:
            found.append((cell.area or 0.0, cell.name, (cell.name, outputs[0][0])))
    return _smallest(found)


def resolve_liberty(spec: str | None) -> Liberty | None:
    """``None`` -> no library; ``"osu018"`` -> Debian's OSU 0.18 µm library; else a path.

    Nothing is installed here: a missing OSU018 file is a :class:`SynthError` that says to run
    ``make tools`` (as root) or to pass a path."""
    if not spec:
        return None
    if spec.lower() == "osu018":
        if not OSU018_PATH.is_file():
            raise SynthError(f"LIBERTY=osu018: {OSU018_PATH} is missing (Debian package {OSU018_PACKAGE}); "
                             f"run 'make tools' as root, or pass LIBERTY=path (--liberty PATH)")
        return Liberty.load(OSU018_PATH)
    return Liberty.load(spec)
