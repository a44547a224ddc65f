"""Bit-exact PyTorch reference models of the MixPE accelerator."""
