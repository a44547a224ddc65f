"""The tiny gpt-oss block with MXFP4 experts through the ``rtl`` backend (:mod:`sw.gpt_oss`)."""

import pytest

from hw.config import MixPEConfig
from sw.gpt_oss import GptOssSpec, run_gpt_oss
from sw.mxfp4_import import core_for_mxfp4
from verif.backends import RtlBackend


@pytest.mark.rtl
@pytest.mark.slow
def test_gpt_oss_rtl_equals_golden_bit_for_bit():
    """4x4 MXFP4 core (FP4 E2M1 codes, E8M0 scales, g = 32), 2 row groups: one simulation per stage,
    bit-exact with the golden backend, measured cycles equal to the cycle model's, within both bounds."""
    config = core_for_mxfp4(MixPEConfig(rows=4, cols=4, weight_bits=4, group_size=32, row_groups=2))
    spec = GptOssSpec(hidden=32, ffn=32, experts=3, top_k=2, tokens=5, seed=8)
    report = run_gpt_oss(config, spec, RtlBackend(config, seed=8))
    assert report["bit_exact_vs_golden"] and report["max_abs_diff_vs_golden"] == 0.0, f"seed 8: {report}"
    assert report["within_bound"] and report["within_transformers_bound"], f"seed 8: {report}"
    assert report["cycles_source"] == "rtl" and report["cycles"] == report["predicted_cycles"], f"seed 8: {report}"
