"""Names of the RTL scenarios behind ``make sim TEST=<name>``, importable without torch or Amaranth
(``mixpe sim --help`` lists them; :mod:`verif.scenarios` runs them)."""

__all__ = ["SCENARIO_HELP"]

#: scenario name -> one-line description
SCENARIO_HELP = {
    "mpgemm": "a GEMM with partial tiles over 4 groups, stall-free (cycle-exact) then with random stalls",
    "array": "random shapes: K of one group and of many groups, edge operands, full and partial tiles",
    "bands": "banded tiles (one weight matrix per row band): full bands over one group, partial and missing "
             "bands over three, a single band over two; stall-free (cycle-exact) then with random stalls",
    "pe": "exhaustive INT8 x code products and group accumulation of one PE",
    "gdu": "group-dequant unit edge cases: zero, largest |D|, sign changes, overflow",
    "fp_product": "floating-point activations: every code x every weight code through aligner and PE",
    "fp32": "the GDU's FP32 units driven directly: special values, every leading-zero position, ties, random",
}
