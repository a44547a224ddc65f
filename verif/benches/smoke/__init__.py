"""Toolchain smoke bench: a stream register slice through Amaranth, Verilator and cocotb."""
