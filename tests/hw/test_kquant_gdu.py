# amaranth: UnusedElaboratable=no
"""The K-quant GDU's sub-scale product in carry-save form, in the Amaranth simulator: exhaustive
over every sub-scale (signed 8-bit, Q6_K) and min (unsigned 6-bit) at the extreme group sums."""

import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.config import MixPEConfig
from hw.gdu import GroupDequant

Q6_K_FP16 = MixPEConfig(weight_bits=6, weight_encoding="signed", group_size=16, scale_mode="kquant", activation="fp16")
Q4_K_FP16 = MixPEConfig(group_size=32, zero_mode="float_offset", scale_mode="kquant", activation="fp16")


@pytest.mark.parametrize("factor_shape, value_bits, width", [
    (signed(8), Q6_K_FP16.dsum_bits, Q6_K_FP16.sub_sum_bits),        # sc_j * D_j
    (unsigned(6), Q4_K_FP16.psum_bits, Q4_K_FP16.sub_sum_bits),      # sc_j * P_j
    (unsigned(6), Q4_K_FP16.asum_bits, Q4_K_FP16.min_sum_bits),      # m_j * A_j
])
def test_product_rows_are_exact_for_every_factor(factor_shape, value_bits, width):
    m = Module()
    factor, value = Signal(factor_shape), Signal(signed(value_bits))
    rows = GroupDequant._product_rows(m, factor, value, width, "t")
    product = Signal(signed(width))
    m.d.comb += product.eq(rows[0] + rows[1])
    values = (-2 ** (value_bits - 1), 2 ** (value_bits - 1) - 1, -1, 0, 1, 0x2AAAAAA % 2 ** (value_bits - 1))
    factors = range(-128, 128) if factor_shape.signed else range(64)
    wrong = []

    async def testbench(ctx):
        for f in factors:
            for v in values:
                ctx.set(factor, f)
                ctx.set(value, v)
                if ctx.get(product) != f * v:
                    wrong.append((f, v, ctx.get(product)))

    simulator = Simulator(m)
    simulator.add_testbench(testbench)
    simulator.run()
    assert not wrong, wrong[:3]
