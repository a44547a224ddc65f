"""``mixpe config``: the resolved configuration with its derived widths, as JSON."""

from __future__ import annotations

import sys

from gen.cli.options import add_config_options, config_from

NAME = "config"
HELP = "print the resolved configuration with derived widths as JSON"


def add_arguments(parser) -> None:
    add_config_options(parser)


def run(args) -> int:
    sys.stdout.write(config_from(args).to_json())
    return 0
