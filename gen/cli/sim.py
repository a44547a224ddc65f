"""``mixpe sim``: one named RTL scenario under Verilator (``make sim TEST=<name>``)."""

from __future__ import annotations

from gen.cli.options import add_config_options, config_from
from verif.names import SCENARIO_HELP

NAME = "sim"
HELP = "run one cocotb testbench under Verilator and print a summary"


def add_arguments(parser) -> None:
    add_config_options(parser)
    parser.add_argument("--test", required=True, choices=sorted(SCENARIO_HELP),
                        help="; ".join(f"{name}: {doc}" for name, doc in sorted(SCENARIO_HELP.items())))
    parser.add_argument("--seed", type=int, default=None, help="random seed (printed on every run; reuse to replay)")
    parser.add_argument("--waves", action="store_true", help="write an FST waveform (VCD if liblz4-dev is missing)")


def run(args) -> int:
    from verif.scenarios import run_scenario
    config = config_from(args)
    return 0 if run_scenario(args.test, config, seed=args.seed, waves=args.waves) else 1
