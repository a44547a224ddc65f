"""The PE bench (:mod:`verif.benches.pe`, Verilator) on FP4 E2M1 and power-of-two codes: every INT8
activation x every code, group sums at the worst case, bubbles. About 10 s each: test-all only
(the Amaranth-simulator tests of ``tests/hw/test_code_formats.py`` cover the products in make test)."""

import pytest

from hw.config import MixPEConfig
from verif.sims import run_block


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("changes", [{"weight_format": "fp4_e2m1"}, {"weight_format": "pow2", "weight_bits": 4}],
                         ids=["fp4_e2m1", "pow2_b4"])
def test_pe_bench_on_signed_codes(changes):
    config = MixPEConfig(rows=4, cols=4, group_size=32, name="codes-4x4", **changes)
    result = run_block(config, "pe", seed=19)
    assert result.passed, f"PE testbench failed (seed {result.seed})"
