"""Choices of the power flow's simulations, importable without torch, numpy or Amaranth
(``mixpe power --help`` lists them; :mod:`verif.power_workloads` and :mod:`verif.gate_level` use them)."""

__all__ = ["WORKLOADS", "SIMULATORS"]

#: Workloads of ``make power``: SmolLM2-135M tiles and a uniform random stream (:mod:`verif.power_workloads`).
WORKLOADS = ("smollm2", "uniform")
#: Gate-level simulators (:func:`verif.gate_level.simulate`).
SIMULATORS = ("verilator", "icarus")
