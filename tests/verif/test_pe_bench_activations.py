"""The activations of the PE bench's product test (``verif/benches/pe``), checked without a simulator:
every INT8 value, and on the aligned significands of an FP preset the directed values its docstring
promises within the port's range."""

import random

from hw.config import from_preset
from verif.benches.pe.tb import WIDE_ACTIVATIONS, product_activations


def test_int8_activations_are_exhaustive():
    assert product_activations(from_preset("w4a8-g128-16x16").pe_act_bits, random.Random(1)) == list(range(-128, 128))


def test_aligned_significands_get_every_bit_position_and_the_extremes():
    bits = from_preset("w4a16-g128-16x16").pe_act_bits
    assert bits > 8
    values = product_activations(bits, random.Random(1))
    assert len(values) == WIDE_ACTIVATIONS
    assert min(values) == -(2 ** (bits - 1)) and max(values) == 2 ** (bits - 1) - 1
    for k in range(bits - 1):
        assert {2 ** k, -(2 ** k), 2 ** (k + 1) - 1, -(2 ** (k + 1) - 1)} <= set(values), k
