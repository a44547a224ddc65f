"""``mixpe``: the command line behind the make targets.

Every subcommand that builds a core takes the configuration from ``--preset NAME`` (default
``w4a8-g128-16x16``) or ``--config FILE`` (a JSON file as written next to every artifact), and
exits non-zero when anything it checks fails: 2 for bad input, 1 for a failed check or tool, with
one line ``mixpe <command>: <message>`` on stderr (never a traceback for the project's errors).

Package layout (not shown by ``--help``)
----------------------------------------

One module per subcommand, registered in :data:`COMMANDS`. Adding a subcommand is one module and
one registry line: write ``gen/cli/<module>.py`` with ::

    NAME = "timing"                      # the word on the command line
    HELP = "one line for mixpe --help"
    DESCRIPTION = "..."                  # optional: mixpe <name> --help
    def add_arguments(parser): ...       # gen.cli.options: --preset/--config, --quiet
    def run(args) -> int: ...            # 0 ok, 1 check failed; raise a MixPEError for bad input

and add ``"<module>"`` to :data:`COMMANDS`. At module level a subcommand imports only light
modules (``hw.config``, ``sw.settings``, ``verif.names``, ``gen.names``, ...): building the parser
imports every subcommand module, and ``mixpe config`` / ``mixpe --help`` must not import torch or
Amaranth (``tests/gen/test_cli.py`` checks it); the work is imported inside ``run``.
:func:`main` turns a :class:`hw.errors.MixPEError` into the one-line message and exit code.

``make timing`` and ``make power`` call ``timing`` and ``power`` (issue 13).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hw.errors import MixPEError, exit_code

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommand modules of this package, in the order of ``mixpe --help``.
COMMANDS = ("verilog", "sim", "bench", "moe", "eval_smollm", "gguf", "gguf_quantize", "checkpoint", "lint", "synth",
            "timing", "power", "mutate", "accuracy", "config", "doctor", "sweep", "verify_model", "compare", "coverage",
            "formal")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixpe", description=__doc__.partition("\nPackage layout")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS:
        command = importlib.import_module(f"{__name__}.{module_name}")
        sub_parser = sub.add_parser(command.NAME, help=command.HELP,
                                    description=getattr(command, "DESCRIPTION", None))
        command.add_arguments(sub_parser)
        sub_parser.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``mixpe`` on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    if hasattr(args, "quiet"):
        from sw.progress import set_quiet
        set_quiet(args.quiet)
    try:
        return args.run(args)
    except MixPEError as error:
        # One line; a failed tool's error may append its log excerpt on the following lines.
        first, *details = str(error).splitlines() or [type(error).__name__]
        print(f"mixpe {args.command}: {first}", *details, sep="\n", file=sys.stderr)
        return exit_code(error)
