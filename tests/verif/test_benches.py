"""The bench registry (verif/benches): every bench has its two sides, and the cocotb sides, which
run inside the simulator, never import torch."""

import importlib.util
import subprocess
import sys

import pytest

from hw.config import from_preset
from verif.benches import BENCHES, STANDALONE_BENCHES
from verif.sims import run_block


@pytest.mark.parametrize("name", sorted(BENCHES))
def test_every_bench_has_a_cocotb_side_and_a_design(name):
    bench = BENCHES[name]
    assert importlib.util.find_spec(bench.tb_module) is not None, bench.tb_module
    assert callable(bench.host().component)
    assert callable(getattr(bench.host(), "job", None)) == bench.standalone


def test_cocotb_sides_import_without_torch():
    modules = ", ".join(bench.tb_module for bench in BENCHES.values())
    code = f"import sys; import {modules}; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_standalone_jobs_are_json_ready():
    """The host side of every standalone bench prepares its job without a simulator."""
    import json
    config = from_preset("w4a16-g8-4x4").replace(zero_mode="float_offset")
    for name in STANDALONE_BENCHES:
        json.dumps(BENCHES[name].host().job(config, seed=1))


def test_run_block_names_the_standalone_benches():
    with pytest.raises(ValueError, match=r"test='mpgemm': block testbenches are \['fp32', 'fp_product', 'gdu', 'pe'\]"):
        run_block(from_preset("w4a8-g32-4x4"), "mpgemm", seed=1)
