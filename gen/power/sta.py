"""OpenSTA ``report_power`` of one netlist with measured switching activity on every pin.

This OpenSTA (Debian ``opensta``, 2019) has no VCD or SAIF reader and its ``set_power_activity
-pins`` is broken, so each activity goes in through the command underneath:
``sta::set_power_pin_activity <pin> <transitions per clock> <duty>``, on every cell pin of a net
(it does not carry a driver pin's activity to the pins the net drives: an unannotated input pin
keeps the default 0.1 transitions per clock), and ``sta::set_power_input_port_activity`` on the
input ports. The clock net is left to OpenSTA (two transitions per period of the created clock). The totals come
from ``sta::design_power``: internal, switching, leakage and total power in watts, for the whole
design and split into sequential and combinational cells.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from hw.errors import MixPEError
from verif.gate_level import CLOCK, Activity, Netlist

__all__ = ["PowerError", "PowerInputError", "PowerResult", "check_power_tables", "pin_annotations", "report_power"]


class PowerError(MixPEError, RuntimeError):
    """The power flow cannot produce a report; the message says what is missing and how to fix it."""


class PowerInputError(MixPEError, ValueError):
    """A power-flow setting is invalid; the message names it and what is allowed."""


@dataclasses.dataclass(frozen=True)
class PowerResult:
    """``report_power`` of one netlist at one clock, in watts, and how many of its nets (all but
    the clock) got measured activity on all their pins."""
    internal_w: float
    switching_w: float
    leakage_w: float
    total_w: float
    sequential_w: float
    combinational_w: float
    annotated_nets: int
    nets: int

    @property
    def annotated_fraction(self) -> float:
        return self.annotated_nets / self.nets if self.nets else 0.0


def check_power_tables(liberty: Path) -> None:
    """:class:`PowerError` unless ``liberty`` has internal-power and leakage data for its cells."""
    text = Path(liberty).read_text(errors="replace")
    missing = [what for what, pattern in (("internal_power groups", r"\binternal_power\s*\("),
                                          ("leakage power", r"\b(cell_)?leakage_power\b"))
               if not re.search(pattern, text)]
    if missing:
        raise PowerError(f"liberty file {str(liberty)!r} has no power tables (no {' and no '.join(missing)}): "
                         f"report_power would be empty; use a library with power data, e.g. --liberty osu018")


def pin_annotations(netlist: Netlist, activity: Activity) -> tuple[list[tuple[str, str, float, float]], int, int]:
    """(kind "port"/"pin", OpenSTA name, transitions per clock, duty) for every input port and every
    cell pin on a net with measured activity (this OpenSTA takes each pin's activity as given and
    does not carry a driver's activity to the pins it drives), the number of measured nets, and the
    number of nets that can carry activity (all but the clock)."""
    density, duty = activity.density(), activity.duty()
    measured = {net: (float(density[i]), float(np.clip(duty[i], 0.0, 1.0)))
                for i, net in enumerate(activity.nets) if net != CLOCK}
    annotations = []
    for port in netlist.ports:
        if port.direction != "input":
            continue
        for name in ([port.name] if port.width == 1 else [f"{port.name}[{bit}]" for bit in range(port.width)]):
            if name in measured:
                annotations.append(("port", name, *measured[name]))
    for instance, (_, pins) in netlist.cells.items():
        for pin, net in pins.items():
            if net in measured:
                annotations.append(("pin", f"{instance}/{pin}", *measured[net]))
    return annotations, len(measured), sum(net != CLOCK for net in netlist.nets)


#: Tcl run after :class:`gen.synth.sta.StaSession`'s setup: the activities from ``$mixpe_activity``
#: (lines ``port|pin NAME density duty``) onto the ports and pins, then the totals.
_POWER_TCL = r"""
set annotated 0
if {$mixpe_activity ne ""} {
  set activity [dict create]
  set handle [open $mixpe_activity]
  while {[gets $handle line] >= 0} { dict set activity [lindex $line 0],[lindex $line 1] [lrange $line 2 3] }
  close $handle
  foreach port [all_inputs] {
    set key port,[get_full_name $port]
    if {[dict exists $activity $key]} {
      lassign [dict get $activity $key] density duty
      sta::set_power_input_port_activity $port $density $duty
      incr annotated
    }
  }
  foreach pin [get_pins -of_objects [get_cells *]] {
    set key pin,[get_full_name $pin]
    if {[dict exists $activity $key]} {
      lassign [dict get $activity $key] density duty
      sta::set_power_pin_activity $pin $density $duty
      incr annotated
    }
  }
}
puts "MIXPE_STA annotated=$annotated"
puts "MIXPE_STA power=[sta::design_power [sta::cmd_corner]]"
"""


def report_power(netlist: Netlist, liberty, period_ns: float, annotations, measured_nets: int, nets: int,
                 work: Path) -> PowerResult:
    """Run OpenSTA on ``netlist`` (the synthesis flow's session: Liberty, link, constraints) at a
    clock of ``period_ns`` with ``annotations`` (from :func:`pin_annotations`; None leaves OpenSTA's
    default activity); returns the power."""
    from gen.synth.sta import Constraints, StaSession
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    activity_file = ""
    if annotations is not None:
        path = work / "activity.txt"
        path.write_text("".join(f"{kind} {{{name}}} {density!r} {duty!r}\n"
                                for kind, name, density, duty in annotations))
        activity_file = str(path.resolve())
    session = StaSession(liberty, netlist.path, netlist.top, Constraints(clock_period_ns=period_ns, clock_port=CLOCK))
    _, values = session.run(f"set mixpe_activity {{{activity_file}}}\n{_POWER_TCL}", work)
    if "power" not in values or "annotated" not in values:
        raise PowerError(f"OpenSTA printed no power for {netlist.path} (log {work / 'sta.log'})")
    power = [float(value) for value in values["power"][0].split()]
    annotated = int(values["annotated"][0])
    if annotations is not None and annotated != len(annotations):
        raise PowerError(f"OpenSTA found {annotated} of the {len(annotations)} annotated pins of {netlist.path} "
                         f"(log {work / 'sta.log'})")
    internal, switching, leakage, total = power[0:4]
    return PowerResult(internal_w=internal, switching_w=switching, leakage_w=leakage, total_w=total,
                       sequential_w=power[7], combinational_w=power[11],
                       annotated_nets=measured_nets if annotations is not None else 0, nets=nets)
