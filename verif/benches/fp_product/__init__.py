"""Bench of the floating-point product path (aligner + PEs, :mod:`.harness`): every code exact."""
