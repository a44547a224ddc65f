"""Verification infrastructure: Verilator toolchain set-up, the cocotb runner and cocotb testbenches."""
