"""``make power``: OpenSTA power and energy per MAC of MixPE and the baselines, per PE and per array,
from the gate-level switching activity of real work.

* :mod:`~gen.power.flow`: the run (synthesis and timing records, workloads, gate-level simulations,
  power at each design's clock, array composition, cache);
* :mod:`~gen.power.sta`: OpenSTA ``report_power`` with the measured activity on every pin;
* :mod:`~gen.power.report`: ``report.md``, ``report.json``, ``summary.json`` and ``power.png``.

The simulations are in :mod:`verif.gate_level` (testbench, simulators, activity),
:mod:`verif.core_trace` (the core's RTL on the workload) and :mod:`verif.power_workloads`.
"""

from gen.power.flow import FLOW_VERSION, PowerSettings, run_power
from gen.power.report import PAPER_CLAIMS, comparisons, write_reports
from gen.power.sta import PowerError, PowerInputError, PowerResult, check_power_tables, pin_annotations, report_power

__all__ = ["FLOW_VERSION", "PowerSettings", "run_power", "PAPER_CLAIMS", "comparisons", "write_reports",
           "PowerError", "PowerInputError", "PowerResult", "check_power_tables", "pin_annotations", "report_power"]
