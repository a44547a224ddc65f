"""Bench of one processing element (``pe``): exhaustive products and group accumulation."""
