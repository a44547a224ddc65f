# amaranth: UnusedElaboratable=no
"""FP4 E2M1 and power-of-two weight codes (:mod:`hw.codes`): the configuration fields and the PE in
the Amaranth simulator, exhaustively over every INT8 activation and every code."""

import pytest

from hw.codes import E2M1_DOUBLED, pe_value, value_max
from hw.config import ConfigError, MixPEConfig, from_preset
from hw.pe import ProcessingElement

FP4 = MixPEConfig(rows=4, cols=4, group_size=32, weight_format="fp4_e2m1", scale_format="e8m0")


def test_code_values():
    assert [pe_value("fp4_e2m1", 4, code) for code in range(16)] == \
        [*E2M1_DOUBLED, *(-value for value in E2M1_DOUBLED)]
    assert [pe_value("pow2", 3, code) for code in range(8)] == [1, 2, 4, 8, -1, -2, -4, -8]
    assert [value_max("pow2", b) for b in (2, 3, 4, 5)] == [2, 8, 128, 2 ** 15]
    assert value_max("fp4_e2m1", 4) == 12 and value_max("int", 4) == 15


def test_widths_and_hashes():
    assert FP4.product_bits == 8 + 4 and FP4.scale_exponent_offset == -1 and FP4.signed_codes
    assert MixPEConfig(weight_format="pow2", weight_bits=4).product_bits == 8 + 8
    int4 = from_preset("w4a8-g32-4x4")
    assert int4.replace(weight_format="int", scale_format="fp16").hash == int4.hash
    assert len({int4.hash, FP4.hash, FP4.replace(scale_format="e4m3").hash}) == 3


@pytest.mark.parametrize("changes, fragment", [
    ({"weight_format": "nf4"}, "weight_format='nf4': allowed values are"),
    ({"weight_format": "fp4_e2m1", "weight_bits": 3}, "weight_bits=3: weight_format='fp4_e2m1' allows (4,)"),
    ({"weight_format": "pow2", "weight_bits": 6}, "weight_bits=6: weight_format='pow2' allows (2, 3, 4, 5)"),
    ({"weight_format": "pow2", "weight_encoding": "signed"}, "needs weight_encoding='unsigned' and zero_mode='integer'"),
    ({"scale_format": "e5m2"}, "scale_format='e5m2': allowed values are"),
    ({"scale_format": "e8m0", "zero_mode": "float_offset"}, "zero_mode='float_offset' needs scale_format='fp16'"),
    ({"scale_format": "e8m0", "scale_mode": "kquant", "group_size": 32}, "scale_mode='kquant': K-quant sub-scales need"),
])
def test_bad_formats_are_one_line_config_errors(changes, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as error:
        MixPEConfig(**changes)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("config", [FP4, MixPEConfig(rows=4, cols=4, group_size=32, weight_format="pow2", weight_bits=3),
                                    MixPEConfig(rows=4, cols=4, group_size=32, weight_format="pow2", weight_bits=5)],
                         ids=["fp4_e2m1", "pow2_b3", "pow2_b5"])
def test_pe_products_exhaustive(config, simulate):
    """Every INT8 activation x every code as a one-step group: the drain is x times the PE value;
    then one group of the largest products (x = -128, the most negative value) checks the sum width."""
    dut = ProcessingElement(config)
    codes = range(2 ** config.weight_bits)
    pairs = [(x, code) for x in range(-128, 128) for code in codes]
    most_negative = min(codes, key=lambda code: pe_value(config.weight_format, config.weight_bits, code))
    wrong, drained = [], []

    async def testbench(ctx):
        for x, code in pairs:
            ctx.set(dut.x, x)
            ctx.set(dut.w, code)
            ctx.set(dut.valid, 1)
            ctx.set(dut.group_last, 1)
            await ctx.tick()
            got = ctx.get(dut.psum)
            if got != x * pe_value(config.weight_format, config.weight_bits, code):
                wrong.append((x, code, got))
        for step in range(config.group_size):
            ctx.set(dut.x, -128)
            ctx.set(dut.w, most_negative)
            ctx.set(dut.group_last, int(step == config.group_size - 1))
            await ctx.tick()
        drained.append(ctx.get(dut.psum))

    simulate(dut, testbench)
    assert not wrong, f"{len(wrong)} wrong products, first (x, code, got): {wrong[:5]}"
    assert drained == [-128 * pe_value(config.weight_format, config.weight_bits, most_negative) * config.group_size]
