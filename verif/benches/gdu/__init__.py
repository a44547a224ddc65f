"""Bench of one group-dequant unit (``gdu``): edge cases bit-exact against the golden FP32 chain."""
