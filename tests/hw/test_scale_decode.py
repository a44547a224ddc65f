# amaranth: UnusedElaboratable=no
"""The GDU's group-scale decoder (:mod:`hw.scale_decode`) in the Amaranth simulator, exhaustively over
the E8M0 and E4M3 codes (and a sweep of FP16 codes with the FP4 exponent offset), against
:func:`golden.codes.decoded_scales`."""

import pytest
import torch
from amaranth.sim import Simulator

from golden.codes import decoded_scales, scale_problem
from golden.fp32 import bits
from hw.config import MixPEConfig
from hw.fp_widen import WidenToFloat32
from hw.scale_decode import ScaleDecoder, scale_widener

CANONICAL_NAN = 0x7FC00000
DTYPES = {"e8m0": torch.float8_e8m0fnu, "e4m3": torch.float8_e4m3fn, "fp16": torch.float16}


def expected_bits(config: MixPEConfig, code: int) -> int | None:
    """The decoder's output for a raw code the golden model accepts (None: refused, NaN: canonical)."""
    width = 16 if config.scale_format == "fp16" else 8
    raw = torch.tensor([code - (1 << 16) if code >= 1 << 15 else code], dtype=torch.int16) if width == 16 \
        else torch.tensor([code], dtype=torch.uint8)
    scale = raw.view(DTYPES[config.scale_format])
    if torch.isnan(scale.double()).any():
        return CANONICAL_NAN
    if scale_problem(config, scale):
        return None
    return int(bits(decoded_scales(config, scale))[0]) & 0xFFFFFFFF


@pytest.mark.parametrize("weight_format", ["int", "fp4_e2m1"])
@pytest.mark.parametrize("scale_format", ["e8m0", "e4m3", "fp16"])
def test_decoder_matches_the_golden_scales(scale_format, weight_format):
    config = MixPEConfig(weight_format=weight_format, scale_format=scale_format, group_size=32)
    dut = scale_widener(config)
    # FP16 without an exponent offset: the first release's unit, the same netlist.
    assert isinstance(dut, WidenToFloat32 if (scale_format, weight_format) == ("fp16", "int") else ScaleDecoder)
    codes = range(256) if scale_format != "fp16" else range(0, 65536, 37)
    wrong, checked = [], 0

    async def testbench(ctx):
        nonlocal checked
        for code in codes:
            want = expected_bits(config, code)
            if want is None:
                continue
            ctx.set(dut.i, code)
            await ctx.delay(1e-9)
            got = ctx.get(dut.o)
            checked += 1
            if got != want:
                wrong.append((hex(code), hex(got), hex(want)))

    simulator = Simulator(dut)                        # combinational: no clock
    simulator.add_testbench(testbench)
    simulator.run()
    assert not wrong, f"{len(wrong)} wrong scales, first (code, got, expected): {wrong[:5]}"
    assert checked >= {"e8m0": 252, "e4m3": 254, "fp16": 1600}[scale_format]
