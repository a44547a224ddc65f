"""OpenSTA sessions on the library-mapped netlists of :mod:`gen.synth.yosys`.

A :class:`StaSession` is one ``sta`` run: read the Liberty file, read and link the netlist, apply
the :class:`Constraints`, then run the caller's Tcl commands (the worst path for
:mod:`gen.synth.timing`; ``set_power_activity``/``report_power`` for a power flow). OpenSTA reports
most problems as ``Error:``/``Warning:`` lines and carries on with exit code 0, so :meth:`StaSession.run`
treats any error, and any warning that a module or cell was not found, as a failed link.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import subprocess
from pathlib import Path

from gen.synth.errors import TimingError
from gen.synth.liberty import Buffer, Liberty

__all__ = ["Constraints", "DEFAULT_CONSTRAINTS", "StaSession", "sta_version", "require_sta", "STA_COMMAND"]

#: The OpenSTA executable (Debian package ``opensta``, installed by ``make tools``).
STA_COMMAND = "sta"
#: Lines of Tcl output the analysis scripts print for Python to read: ``MIXPE_STA key=value``.
RESULT_PREFIX = "MIXPE_STA "
_LINK_PROBLEM_RE = re.compile(r"^(Error:.*|Warning:.*(?:not found|black box|unknown|undefined).*)$",
                              re.MULTILINE | re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Constraints:
    """The timing setup of every block, for ABC's timing-driven mapping and for OpenSTA alike
    (``docs/synthesis.md``, "Timing").

    Parameters
    ----------
    clock_period_ns : period of the clock on ``clock_port`` (a virtual clock of this period when the
        block has no such port, e.g. the combinational aligner), and ABC's delay target. The worst
        path measured does not depend on it: the critical path is ``period - worst setup slack``.
    io_delay_ns : input and output delay of every data port against that clock: 0 means the block's
        inputs come straight from registers and its outputs go straight to registers, so the paths
        measured are the block's own.
    clock_port : name of the clock input of the RTL (Amaranth's ``sync`` domain).

    Every data input is driven by the library's smallest buffer and every output drives one
    buffer input (:meth:`tcl` with a :class:`~gen.synth.liberty.Buffer`); no wire-load model (OSU018
    defines none and there is no placement: net delay is pin capacitance only) and an ideal clock.
    """

    clock_period_ns: float = 10.0
    io_delay_ns: float = 0.0
    clock_port: str = "clk"

    def tcl(self, clocked: bool, buffer: Buffer | None) -> str:
        """The SDC commands for a netlist with (``clocked``) or without the clock port."""
        period, delay = f"{self.clock_period_ns:g}", f"{self.io_delay_ns:g}"
        clock = self.clock_port if clocked else "virtual"
        data_inputs = f"[delete_from_list [all_inputs] [get_ports {self.clock_port}]]" if clocked else "[all_inputs]"
        lines = [f"create_clock -name {clock} -period {period}" + (f" [get_ports {clock}]" if clocked else ""),
                 f"set_input_delay {delay} -clock {clock} {data_inputs}",
                 f"set_output_delay {delay} -clock {clock} [all_outputs]"]
        if buffer is not None:
            lines += [f"set_driving_cell -lib_cell {buffer.cell} -pin {buffer.output} {data_inputs}",
                      f"set_load {buffer.input_capacitance:g} [all_outputs]"]
        return "\n".join(lines)

    def abc_constraints(self, buffer: Buffer) -> str:
        """The same drive and load for ``abc -constr`` (which then buffers, upsizes and downsizes)."""
        return f"set_driving_cell {buffer.cell}\nset_load {buffer.input_capacitance:g}\n"

    @property
    def abc_delay_ps(self) -> int:
        """ABC's delay target ``-D``: the clock period in picoseconds."""
        return round(self.clock_period_ns * 1000)

    def describe(self, buffer: Buffer | None) -> dict:
        """The setup as record fields."""
        return {"clock_period_ns": self.clock_period_ns, "input_delay_ns": self.io_delay_ns,
                "output_delay_ns": self.io_delay_ns, "wire_load": "none", "clock_tree": "ideal",
                "input_drive": buffer.cell if buffer else "ideal",
                "output_load": buffer.input_capacitance if buffer else 0.0}


DEFAULT_CONSTRAINTS = Constraints()


def require_sta() -> str:
    """The path of ``sta``; :class:`TimingError` saying how to install it when it is missing."""
    path = shutil.which(STA_COMMAND)
    if path is None:
        raise TimingError(f"OpenSTA ('{STA_COMMAND}') is not installed: run 'make tools' as root "
                          f"(Debian package opensta)")
    return path


@functools.cache
def sta_version() -> str:
    """``sta -version`` (e.g. ``2.0.17``); part of the timing cache key."""
    result = subprocess.run([require_sta(), "-version"], capture_output=True, text=True, timeout=60)
    return (result.stdout or result.stderr).strip() or "unknown"


def has_port(netlist: Path, port: str) -> bool:
    """Whether the netlist's module has the input ``port`` (a Yosys ``input name;`` line)."""
    return re.search(rf"^\s*input\s+{re.escape(port)}\s*;", netlist.read_text(), re.MULTILINE) is not None


class StaSession:
    """One OpenSTA run on a netlist: Liberty, netlist, link, constraints, then the caller's commands.

    ``liberty`` must have delay tables (:attr:`Liberty.has_timing`); the netlist is a
    :func:`gen.synth.yosys.netlist_path` file whose top module is ``top``."""

    def __init__(self, liberty: Liberty, netlist: Path, top: str, constraints: Constraints = Constraints()):
        if not liberty.has_timing:
            raise TimingError(f"liberty file {str(liberty.path)!r} has no delay tables (cell_rise/cell_fall); "
                              f"static timing needs a characterized library: pass LIBERTY=osu018 or another path")
        self.liberty, self.netlist, self.top, self.constraints = liberty, Path(netlist), top, constraints
        self.clocked = has_port(self.netlist, constraints.clock_port)

    def setup_tcl(self) -> str:
        """Read the Liberty file and the netlist, link ``top``, apply the constraints."""
        return "\n".join([
            f"read_liberty {{{self.liberty.path}}}",
            f"read_verilog {{{self.netlist.resolve()}}}",
            f"link_design {self.top}",
            self.constraints.tcl(self.clocked, self.liberty.buffer),
        ]) + "\n"

    def run(self, commands: str, work: Path, timeout: float | None = 600) -> tuple[str, dict[str, list[str]]]:
        """Run the setup and ``commands`` in ``work``; returns (OpenSTA's output, the values of the
        ``MIXPE_STA key=value`` lines by key). :class:`TimingError` when OpenSTA reports an error
        or a missing cell, or exits non-zero."""
        sta = require_sta()
        work.mkdir(parents=True, exist_ok=True)
        script = work / "session.tcl"
        script.write_text(self.setup_tcl() + commands.rstrip("\n") + "\n")
        try:
            result = subprocess.run([sta, "-no_init", "-no_splash", "-exit", script.name], cwd=work,
                                    capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimingError(f"OpenSTA timed out after {timeout} s on {self.netlist}") from None
        output = result.stdout + result.stderr
        (work / "sta.log").write_text(output)
        problems = _LINK_PROBLEM_RE.findall(output)
        if problems or result.returncode != 0:
            first = problems[0] if problems else f"exit code {result.returncode}"
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise TimingError(f"OpenSTA cannot use netlist {self.netlist} (top {self.top}): {first.strip()}{more}; "
                              f"log {work / 'sta.log'}. Resynthesize it with --no-cache; if it persists, the "
                              f"netlist commands in gen/synth/yosys.py do not suit this Liberty file")
        values: dict[str, list[str]] = {}
        for line in result.stdout.splitlines():
            if line.startswith(RESULT_PREFIX):
                key, _, value = line[len(RESULT_PREFIX):].partition("=")
                values.setdefault(key, []).append(value)
        return output, values
