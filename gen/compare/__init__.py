"""``make compare``: MixPE against INT8, FP16 and dequantize-then-multiply arrays at equal silicon
area and equal memory bandwidth, on LLM and MoE decoder layers (issue 15).

* :mod:`~gen.compare.workloads`: the layers' GEMMs per phase (prefill, decode);
* :mod:`~gen.compare.designs`: each design's area model, clock and energy per cycle, from the
  synthesis, timing and power flows;
* :mod:`~gen.compare.model`: the iso-area shape search and the bandwidth-aware model
  (:mod:`golden.memory`) on one design and phase;
* :mod:`~gen.compare.run`: every design on every workload phase; :mod:`~gen.compare.report`:
  ``build/compare/report.md``, ``report.json`` and ``compare.png``.

``docs/compare.md`` describes the method and the measured tables.
"""

from gen.compare.run import CompareSettings, load_costs, run_compare

__all__ = ["CompareSettings", "load_costs", "run_compare"]
