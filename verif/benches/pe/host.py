"""Host side of the PE bench: the design and its job (the bench enumerates its own stimulus)."""

from __future__ import annotations

from hw.config import MixPEConfig
from hw.emit import build_block

__all__ = ["component", "job"]


def component(config: MixPEConfig):
    return build_block("pe", config)


def job(config: MixPEConfig, seed: int) -> dict:
    """Nothing beyond the configuration (:func:`verif.sims.run_bench` adds it)."""
    return {}
