"""Choices and defaults of the synthesis commands, importable without Amaranth or Yosys
(``mixpe synth --help`` lists them; the synthesis flow imports them from here)."""

__all__ = ["DESIGNS", "BLOCKS", "DEFAULT_BLOCKS", "DEFAULT_GUARD_SWEEP"]

#: MixPE and the baseline PEs of the area comparison (``hw/baselines/``).
DESIGNS = ("mixpe", "dequant_fp", "int8_mult", "int4x8_mult", "fp16_fp16")
#: Blocks a design may have; ``top`` is the whole mpgemm core.
BLOCKS = ("pe", "fp_align", "act_sum", "gdu", "acc_memory", "edge", "array", "top")
#: Blocks synthesized by default (what the array-level comparison needs); ``--array`` adds ``array``.
DEFAULT_BLOCKS = ("pe", "fp_align", "act_sum", "gdu", "acc_memory", "edge")
#: Guard bits of the default PE-area sweep for floating-point activations (the accuracy table's).
DEFAULT_GUARD_SWEEP = (0, 2, 4, 6, 8, 10)
