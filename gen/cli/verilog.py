"""``mixpe verilog``: the core's Verilog and its config.json."""

from __future__ import annotations

from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_config_options, config_from

NAME = "verilog"
HELP = "write the core's Verilog and config.json"


def add_arguments(parser) -> None:
    add_config_options(parser)
    parser.add_argument("--out", help="output directory (default build/verilog/<config name>/)")


def run(args) -> int:
    from hw.emit import write_core
    config = config_from(args)
    out_dir = Path(args.out or BUILD_ROOT / "verilog" / config.name)
    path = write_core(config, out_dir)
    print(f"wrote {path} and {out_dir / 'config.json'} ({config.rows}x{config.cols}, W{config.weight_bits}"
          f" {config.activation}, g={config.group_size}, hash {config.hash})")
    return 0
