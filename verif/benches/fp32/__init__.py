"""Bench of the FP32 units (``fp32``): each unit the GDU builds, driven directly, bit-exact against
:mod:`golden.fp32` on directed edge cases and seeded random operands."""
