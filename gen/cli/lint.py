"""``mixpe lint``: Verilator lint of the generated Verilog (``make lint``)."""

from __future__ import annotations

from gen.cli.options import add_config_options, config_from

NAME = "lint"
HELP = "Verilator --lint-only -Wall on the generated Verilog"


def add_arguments(parser) -> None:
    add_config_options(parser)
    parser.add_argument("--blocks", nargs="+", default=["mpgemm"], help="blocks to lint (default mpgemm)")


def run(args) -> int:
    from gen.lint import lint_verilog
    config = config_from(args)
    ok = True
    for block in args.blocks:
        report = lint_verilog(config, block)
        print(f"{block}: {'clean' if report.clean else 'WARNINGS'} ({report.command})")
        if not report.clean:
            print(report.output)
            ok = False
    return 0 if ok else 1
