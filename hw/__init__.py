"""Amaranth RTL blocks of the MixPE accelerator."""
