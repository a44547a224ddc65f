"""RTL under Verilator (cocotb), bit-exact against the golden model and cycle-exact against the model.

Every run prints its seed; replay one with ``make sim TEST=<name> PRESET=<preset> SEED=<seed>``.
Verilator builds are cached per configuration under ``build/sim/``; tests that share a build carry
the same ``xdist_group`` (named after the configuration), so ``make test`` runs them on one worker.
"""

import pytest

from hw.config import MixPEConfig, from_preset
from verif.scenarios import gemm_case, run_scenario
from verif.sims import run_block

pytestmark = pytest.mark.rtl


def same_build(preset: str):
    """A parameter ``preset`` whose tests share the mpgemm build of that preset (one xdist group)."""
    return pytest.param(preset, marks=pytest.mark.xdist_group(preset))


@pytest.mark.parametrize("preset", ["w4a8-g32-4x4", "w2a8-g64-8x8", "w3a8-g64-8x8", "w5a8-g64-8x8",
                                    pytest.param("w6a8-g64-8x8", marks=pytest.mark.slow),  # ~6 s: test-all only
                                    "w8a8-g128-8x8"])
def test_pe_exhaustive_and_group_accumulation(preset):
    result = run_block(from_preset(preset), "pe", seed=11)
    assert result.passed, f"PE testbench failed (seed {result.seed})"


@pytest.mark.parametrize("preset", ["w4a8-g128-16x16", "w8a8-g1024-4x4", "w2a8-g8-1x4"])
def test_gdu_edge_cases(preset):
    # w8a8-g1024: |D| reaches 2**25, so the int-to-FP32 conversion rounds; 1 row: latch on every beat.
    result = run_block(from_preset(preset), "gdu", seed=12)
    assert result.passed, f"GDU testbench failed (seed {result.seed})"


@pytest.mark.xdist_group("w4a8-g32-4x4")
def test_mpgemm_small_core_with_and_without_stalls():
    assert run_scenario("mpgemm", from_preset("w4a8-g32-4x4"), seed=21)


def test_mpgemm_default_core_main_job():
    """The README's main job: the default 16x16, g=128 core on a GEMM with partial tiles."""
    assert run_scenario("mpgemm", from_preset("w4a8-g128-16x16"), seed=22)


@pytest.mark.parametrize("preset", [
    "w3a8-g64-8x8",       # g = 64, 3-bit codes
    same_build("w4a8-g8-12x2"),   # more rows than the group size: dequant stalls, counted by the model
    same_build("w4a8-g8-2x20"),   # columns beyond 2g - 1: the parameter ping-pong sets the group interval
])
def test_array_random_shapes(preset):
    assert run_scenario("array", from_preset(preset), seed=23)


@pytest.mark.parametrize("preset, m, n", [
    pytest.param("w4a8-g8-12x2", 12, 2, marks=pytest.mark.xdist_group("w4a8-g8-12x2")),
    pytest.param("w4a8-g8-2x20", 2, 20, marks=pytest.mark.xdist_group("w4a8-g8-2x20")),
])
def test_dequant_stalled_cores_under_input_stalls(preset, m, n):
    """Input stalls inside a group must not bring group ends (hence drains) closer than group_interval."""
    assert gemm_case(from_preset(preset), m, n, 64, seed=5, stall=0.4)


def test_signed_encoding_and_one_group():
    config = from_preset("w4a8-g32-4x4").replace(weight_encoding="signed", name="w4a8-g32-4x4-signed")
    assert gemm_case(config, 5, 6, 32, seed=24)


@pytest.mark.xdist_group("w4a8-g32-4x4")
def test_back_to_back_single_group_tiles_with_bank_stalls():
    config = from_preset("w4a8-g32-4x4")
    assert gemm_case(config, 12, 16, 32, seed=25)           # 12 tiles of one group each


@pytest.mark.xdist_group("w4a8-g32-4x4")
def test_random_stalls_long_stream():
    config = MixPEConfig(rows=4, cols=4, group_size=32, name="w4a8-g32-4x4")
    assert gemm_case(config, 8, 8, 256, seed=26, stall=0.4)


@pytest.mark.slow
def test_mpgemm_32x32_preset():
    """The large preset (a ~10 minute Verilator build on 2 cores): `make test-all` only."""
    assert run_scenario("mpgemm", from_preset("w4a8-g128-32x32"), seed=27)


Q41_CONFIG = MixPEConfig(rows=4, cols=4, group_size=32, zero_mode="float_offset", name="w4a8-g32-4x4-q41")


def test_gdu_float_offset_edge_cases():
    """llama.cpp Q4_1 mode: fp32(P)*d + fp32(A)*m per group, one extra GDU stage."""
    result = run_block(Q41_CONFIG, "gdu", seed=28)
    assert result.passed, f"GDU float-offset testbench failed (seed {result.seed})"


def test_mpgemm_float_offset_small_core():
    assert run_scenario("mpgemm", Q41_CONFIG, seed=29)
