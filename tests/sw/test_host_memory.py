"""sw.host_memory: freed tensors are reused, not faulted in again."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

#: Minor page faults of the second float64 forward of 2 SmolLM2 layers on the array's INT8
#: numerics (a row of `make eval-smollm` in small), in a fresh process as the evaluation's are.
_FORWARD = """
import resource, sys, torch
from sw.host_memory import keep_freed_memory
from sw.smollm import ArrayLinear, array_config, forward, load_smollm, with_host_dtype
torch.set_num_threads(1)
if sys.argv[1] == "keep":
    assert keep_freed_memory()
model = with_host_dtype(load_smollm(layers=2), torch.float64)
tokens = torch.arange(1, 129)
linear = ArrayLinear(array_config("int8"))
forward(model, tokens, linear)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
forward(model, tokens, linear)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", _FORWARD, mode], capture_output=True, text=True, check=True)
    return int(run.stdout.split()[-1])


@pytest.mark.slow        # two processes that load the model: ~15 CPU s
def test_the_forward_reuses_freed_memory_without_page_faults():
    default, kept = _faults("default"), _faults("keep")
    # By default the forward's large temporaries are mapped and faulted in again on every GEMM.
    assert default > 10_000, f"by default only {default} faults: the test no longer measures the effect"
    assert kept < default // 8, f"{kept} minor faults kept against {default} by default"


def test_idempotent():
    from sw.host_memory import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()
