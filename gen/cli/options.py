"""Options shared by several subcommands, and the configuration they select."""

from __future__ import annotations

import argparse

from hw.config import DEFAULT_PRESET, PRESETS, ConfigError, MixPEConfig, from_preset, load_config
from verif.paths import BUILD_ROOT

__all__ = ["BUILD_ROOT", "add_config_options", "add_quiet_option", "add_weight_check_options", "config_from"]


def add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration")
    group.add_argument("--preset", default=None,
                       help=f"preset name w<weight bits><activation>-g<group>-<rows>x<cols> "
                            f"(default {DEFAULT_PRESET}; e.g. {', '.join(PRESETS[:4])})")
    group.add_argument("--config", default=None, metavar="FILE",
                       help="JSON configuration file (overrides --preset), e.g. a config.json written by 'verilog'")


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true",
                        help="no progress display (a bar on a terminal, else one line per step)")


def add_weight_check_options(parser: argparse.ArgumentParser, against: str, out_default: str) -> None:
    """``--check``, ``--tokens``, ``--seed``, ``--out`` of the weight-file reports (``gguf``, ``checkpoint``):
    every mapped tensor's GEMM against ``against``, the report at ``out_default`` unless ``--out``."""
    parser.add_argument("--check", action="store_true",
                        help=f"run every mapped tensor's GEMM against {against} (error/bound <= 1)")
    parser.add_argument("--tokens", type=int, default=16, help="activation rows M of the check (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the check's activations (default 0)")
    parser.add_argument("--out", help=f"report path (default {out_default})")
    add_quiet_option(parser)


def config_from(args: argparse.Namespace, default: MixPEConfig | None = None) -> MixPEConfig:
    """The core ``--config FILE`` or else ``--preset NAME`` selects; with neither, ``default`` (None: the
    default preset). An empty value is an error, not the default."""
    if args.config is not None:
        if not args.config:
            raise ConfigError("config='': expected the path of a JSON configuration file")
        return load_config(path=args.config)
    if args.preset is not None:
        return from_preset(args.preset)
    return default if default is not None else load_config()
