"""Floating-point activations on the RTL under Verilator: every format bit-exact against the golden
model and cycle-exact against the cycle model (stall-free runs), with random stalls too.

Replay a failing run with ``make sim TEST=<name> PRESET=<preset> SEED=<seed>`` (the presets
below are all of the ``w<b><act>-g<g>-<R>x<C>`` form).
"""

import pytest

from hw.config import from_preset
from verif.scenarios import banded_case, gemm_case, run_scenario
from verif.sims import run_block

pytestmark = pytest.mark.rtl


def test_fp16_product_path_exhaustive():
    """Every FP16 code x every 4-bit code through the aligner and a PE, at its own exponent, at
    larger shared exponents (every rounding position) and at smaller ones (flagged)."""
    result = run_block(from_preset("w4a16-g32-4x4"), "fp_product", seed=31)
    assert result.passed, f"FP product-path testbench failed (seed {result.seed})"


#: FP16 activations with llama.cpp Q4_1 weights (float offsets: both GDU products take the exponent
#: offset) on a core with two row bands; integer zero points with floating-point activations are
#: covered by the other formats. One Verilator build serves all the FP16 core tests.
FP16_Q41 = from_preset("w4a16-g8-4x4").replace(zero_mode="float_offset", row_groups=2, name="w4a16-g8-4x4-q41-rg2")


@pytest.mark.xdist_group(FP16_Q41.name)
def test_fp16_array_scenarios():
    """Random shapes, worst case, cancellation, zeros, outliers and Inf/NaN rows on a 4x4 array."""
    assert run_scenario("array", FP16_Q41, seed=32)


@pytest.mark.xdist_group(FP16_Q41.name)
def test_fp16_row_bands_with_specials():
    """Two bands with their own weights; Inf/NaN rows stay confined to their band's rows."""
    assert banded_case(FP16_Q41, [(16, [(2, 4), (1, 3)]), (8, [(2, 2)])], seed=37, kind="specials")


@pytest.mark.parametrize("preset", [pytest.param(preset, marks=pytest.mark.xdist_group(preset))
                                    for preset in ("w4bf16-g8-3x2", "w4e4m3-g16-3x2", "w4e5m2-g8-3x2")])
@pytest.mark.parametrize("kind", ["outlier", "specials"])
def test_other_formats_bit_and_cycle_exact(preset, kind):
    config = from_preset(preset)
    assert gemm_case(config, 7, 5, 4 * config.group_size, seed=33, kind=kind)


@pytest.mark.parametrize("config", [pytest.param(config, marks=pytest.mark.xdist_group(config.name), id=config.name)
                                    for config in (FP16_Q41, from_preset("w4e4m3-g16-3x2"))])
def test_fp_random_stalls(config):
    assert gemm_case(config, 9, 7, 6 * config.group_size, seed=34, stall=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["w4a16-g128-16x16", "w4bf16-g128-16x16", "w4e4m3-g128-16x16", "w4e5m2-g128-16x16"])
def test_fp_presets_main_job(preset):
    """`make sim TEST=mpgemm PRESET=<each>` for the four floating-point presets (16x16 builds)."""
    assert run_scenario("mpgemm", from_preset(preset), seed=36)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["w4a8-g32-4x4", "w4a16-g32-4x4"])
def test_fp32_units_bench(preset):
    """`make sim TEST=fp32`: the GDU's FP32 units driven directly, bit-exact against golden.fp32
    (the RTL counterpart of tests/hw/test_fp32_units.py, which mutation testing runs on mutants)."""
    assert run_block(from_preset(preset), "fp32", seed=38).passed
