"""The cocotb testbenches, one folder per bench, registered in :data:`BENCHES`.

Each folder ``verif/benches/<name>/`` holds the two sides of one bench:

* ``tb.py``, the cocotb side. It runs inside the simulator, so it imports cocotb, :mod:`hw`
  (configuration, layouts), :mod:`verif.streams` and :mod:`verif.cocotb_util` only: never torch,
  whose import is slow there. It reads its job from ``MIXPE_JOB`` and may report a summary to
  ``MIXPE_SUMMARY`` (:mod:`verif.cocotb_util`).
* ``host.py``, the host side: ``component(config)``, the design under test, and the job builder
  (stimulus and expected results from :mod:`golden`), which may import torch.

:func:`verif.sims.run_bench` builds a bench's design (cached per configuration under
``build/sim/<name>-<hash>/``), writes its job and runs it; ``make sim TEST=<name>`` runs the
standalone benches (``job(config, seed)``) through :func:`verif.sims.run_block`.

This module stays light (no torch, no Amaranth): the simulator imports it on the way to a ``tb``.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

__all__ = ["Bench", "BENCHES", "STANDALONE_BENCHES"]


@dataclasses.dataclass(frozen=True)
class Bench:
    """One bench: ``name`` is its folder and build directory prefix, ``toplevel`` the Verilog top
    module it simulates; ``standalone`` benches have a ``job(config, seed)`` of their own."""
    name: str
    toplevel: str
    standalone: bool = False

    @property
    def tb_module(self) -> str:
        """The cocotb test module (``verif.benches.<name>.tb``)."""
        return f"{__name__}.{self.name}.tb"

    def host(self) -> ModuleType:
        """The host side, ``verif.benches.<name>.host`` (imported on use: it may import torch)."""
        return importlib.import_module(f"{__name__}.{self.name}.host")


BENCHES: dict[str, Bench] = {bench.name: bench for bench in (
    Bench("pe", "pe", standalone=True),                   # exhaustive products, group accumulation
    Bench("gdu", "gdu", standalone=True),                 # group-dequant edge cases, bit-exact FP32
    Bench("fp_product", "fp_product", standalone=True),   # aligner + PEs: every FP code x every weight code
    Bench("fp32", "fp32_units", standalone=True),         # the GDU's FP32 units, directed edges + random
    Bench("mpgemm", "mpgemm"),                            # the core: stream drivers and scoreboard
    Bench("player", "mpgemm_player"),                     # the core fed from simulated memories (make bench)
    Bench("smoke", "smoke"),                              # the toolchain smoke test of verif.runner
)}

#: Benches that ``make sim TEST=<name>`` runs on their own.
STANDALONE_BENCHES = tuple(name for name, bench in BENCHES.items() if bench.standalone)
