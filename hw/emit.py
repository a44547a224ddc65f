"""Verilog emission of the configured core and of its blocks (block-level testbenches, synthesis).

Test harnesses that are not hardware blocks (``verif``) pass their component to
:func:`emit_verilog` themselves; this registry holds only the blocks of :mod:`hw`.
"""

import importlib
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

from hw.config import ConfigError, MixPEConfig

__all__ = ["emit_verilog", "write_core", "BLOCKS", "BLOCK_CLASSES", "build_block"]


#: Block name -> (module, class) of every block that can be emitted on its own.
BLOCK_CLASSES = {
    "mpgemm": ("hw.mpgemm", "MPGemm"),
    "array": ("hw.array", "PEArray"),
    "pe": ("hw.pe", "ProcessingElement"),
    "gdu": ("hw.gdu", "GroupDequant"),
    "act_sum": ("hw.act_sum", "ActivationSum"),
    "fp_align": ("hw.fp_align", "ActivationAligner"),
}


def build_block(block: str, config: MixPEConfig) -> wiring.Component:
    """Instantiate one named block (see :data:`BLOCK_CLASSES`) for ``config``."""
    if block not in BLOCK_CLASSES:
        raise ConfigError(f"block={block!r}: allowed blocks are {sorted(BLOCK_CLASSES)}")
    module, name = BLOCK_CLASSES[block]
    return getattr(importlib.import_module(module), name)(config)


BLOCKS = tuple(BLOCK_CLASSES)


def emit_verilog(component: wiring.Component, name: str) -> str:
    """Verilog text of ``component`` with top module ``name`` (ports flattened as ``a__b``)."""
    return verilog.convert(component, name=name, emit_src=False, strip_internal_attrs=True)


def write_core(config: MixPEConfig, out_dir: Path, block: str = "mpgemm") -> Path:
    """Write ``<block>.v`` and ``config.json`` into ``out_dir``; returns the Verilog path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{block}.v"
    path.write_text(emit_verilog(build_block(block, config), block))
    (out_dir / "config.json").write_text(config.to_json())
    return path
