"""Whole mpgemm cores with FP4 E2M1 / power-of-two codes and E8M0 / E4M3 group scales on Verilator,
bit-exact against the golden model and cycle-exact against the cycle model (``make sim
TEST=mpgemm CONFIG=...`` takes the same configurations). A core build is tens of seconds: test-all."""

import pytest

from hw.config import MixPEConfig
from verif.scenarios import gemm_case, run_scenario
from verif.sims import run_block

CORES = {
    "mxfp4": {"weight_format": "fp4_e2m1", "scale_format": "e8m0", "group_size": 32},
    "nvfp4_fp16act": {"weight_format": "fp4_e2m1", "scale_format": "e4m3", "group_size": 16, "activation": "fp16"},
    "pow2_b4": {"weight_format": "pow2", "weight_bits": 4, "group_size": 32},
    "fireq_int4_e4m3_fp8act": {"scale_format": "e4m3", "group_size": 32, "activation": "fp8_e4m3"},
}


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CORES))
def test_core_bit_exact(name):
    config = MixPEConfig(rows=4, cols=4, name=f"{name}-4x4", **CORES[name])
    assert run_scenario("mpgemm", config, seed=19)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mxfp4", "pow2_b4"])
def test_core_worst_case_operands(name):
    """x = -128, codes of the largest |value|, E8M0 2^127 scales on every third channel: overflow to Inf."""
    config = MixPEConfig(rows=4, cols=4, name=f"{name}-4x4", **CORES[name])
    assert gemm_case(config, 5, 6, 2 * config.group_size, seed=23, kind="worst")


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mxfp4", "nvfp4_fp16act", "fireq_int4_e4m3_fp8act"])
def test_gdu_bench_with_scale_formats(name):
    """The GDU bench's edge cases with their FP16 scales rounded to the core's E8M0 / E4M3 format
    (:func:`golden.codes.scale_codes_from_fp16`; FP4's exponent offset included)."""
    fields = {key: value for key, value in CORES[name].items() if key != "activation"}
    result = run_block(MixPEConfig(rows=4, cols=4, name=f"{name}-gdu", **fields), "gdu", seed=12)
    assert result.passed, f"GDU testbench failed (seed {result.seed})"
