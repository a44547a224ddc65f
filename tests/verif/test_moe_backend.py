"""The ``rtl`` backend of ``sw.moe_run`` (:class:`verif.backends.RtlBackend`) on a tiny MoE layer."""

import pytest

from hw.config import MixPEConfig
from sw.moe_run import MoESpec, run_moe
from verif.backends import RtlBackend, make_backend


def test_make_backend_knows_every_name():
    config = MixPEConfig(rows=4, cols=4, weight_bits=4, group_size=32, name="w4a8-g32-4x4")
    assert [make_backend(name, config, seed=1).name for name in ("golden", "model", "rtl")] == ["golden", "model", "rtl"]


@pytest.mark.rtl
def test_rtl_backend_equals_golden_bit_for_bit():
    """A tiny Qwen2-MoE layer through the RTL (4x4 array, g = 32, 2 row groups; the shared expert
    puts K = 32 and 64 into stage 2): one simulation per stage, bit-exact with the golden backend,
    measured cycles equal to the cycle model's prediction of the mapped schedule."""
    config = MixPEConfig(rows=4, cols=4, weight_bits=4, group_size=32, row_groups=2, name="w4a8-g32-4x4-rg2")
    spec = MoESpec(family="qwen2_moe", hidden=32, ffn=32, experts=3, top_k=2, tokens=5, seed=8)
    report = run_moe(config, spec, RtlBackend(config, seed=8))
    assert report["bit_exact_vs_golden"] and report["max_abs_diff_vs_golden"] == 0.0, f"seed 8: {report}"
    assert report["within_bound"]
    assert report["cycles_source"] == "rtl" and report["cycles"] == report["predicted_cycles"], f"seed 8: {report}"
    for stage in report["stages"]:
        assert stage["run_simulations"] == 1 and stage["cycles"] == stage["predicted_cycles"], f"seed 8: {stage}"
    assert report["tiles"] < sum(e["work_items"] for e in report["experts"]), "no tile held two work items"
