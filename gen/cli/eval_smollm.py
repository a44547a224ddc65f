"""``mixpe eval-smollm``: SmolLM2-135M Q4_1 dense and CMoE-carved on the array's numerics
(``make eval-smollm``). Its rows run as tasks on the Dask layer (:mod:`gen.scale.cluster`): a local
cluster of ``--workers`` processes, or an existing one by ``--scheduler`` / ``DASK_SCHEDULER_ADDRESS``;
the carvings and the RTL check run in this process meanwhile."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_quiet_option
from gen.scale.cluster import add_cluster_options
from sw.settings import (CMOE_ROUTERS, SMOLLM_ARRAY_ACTIVATIONS, SMOLLM_CONFIGS, SMOLLM_METHODS, STAGE_SYNTAX,
                         EvalSettings)

NAME = "eval-smollm"
HELP = ("SmolLM2-135M Q4_1, dense and CMoE-carved, on the array's numerics: perplexity and cycles/token; "
        "writes build/eval/smollm2/report.{md,json}")


def add_arguments(parser) -> None:
    # The field defaults, not EvalSettings(): its checks import torch.
    defaults = {field.name: field.default for field in dataclasses.fields(EvalSettings)}
    parser.add_argument("--configs", nargs="*", default=list(SMOLLM_CONFIGS), metavar="SxAyEz",
                        help=f"CMoE carvings (default {' '.join(SMOLLM_CONFIGS)}; none: dense rows only)")
    parser.add_argument("--activations", nargs="+", choices=SMOLLM_ARRAY_ACTIVATIONS,
                        default=list(defaults["array_activations"]),
                        help="activation formats of the array rows (default int8 fp16)")
    parser.add_argument("--routers", nargs="+", choices=CMOE_ROUTERS, default=list(defaults["routers"]),
                        help="CMoE routers, each its own carving pass (default analytic fitted; the oracle and "
                             "random diagnostics always run on the analytic carving)")
    parser.add_argument("--methods", nargs="*", choices=SMOLLM_METHODS, default=[],
                        help="trained conversions of every sparse carving (default none): ladimo (layer-wise "
                             "distillation), ladimo+policy (per-layer top-k, then distilled), cmoe-lora "
                             "(LoRA recovery)")
    parser.add_argument("--train-windows", type=int, default=defaults["train_windows"],
                        help=f"--methods: training windows of 512 tokens (default {defaults['train_windows']})")
    parser.add_argument("--distill-steps", type=int, default=defaults["distill_steps"],
                        help=f"--methods ladimo: Adam steps per layer (default {defaults['distill_steps']})")
    parser.add_argument("--lora-windows", type=int, default=defaults["lora_windows"],
                        help=f"--methods cmoe-lora: training windows, one step each "
                             f"(default {defaults['lora_windows']})")
    parser.add_argument("--e2e-stage", action="append", default=[], metavar=STAGE_SYNTAX,
                        help="--methods ladimo+e2e: an end-to-end stage on all the training windows, from the "
                             "previous stage's model (repeatable, e.g. 16:2e-4:bf16 80:2e-4:qat:bf16; default one "
                             "float32 stage of --train-windows steps at 5e-5)")
    parser.add_argument("--eval-tokens", type=int, default=defaults["eval_tokens"],
                        help=f"held-out window every row is evaluated on (default {defaults['eval_tokens']})")
    parser.add_argument("--float-windows", type=int, default=defaults["float_windows"],
                        help=f"float rows: windows for perplexity_long (default {defaults['float_windows']})")
    parser.add_argument("--rows", type=int, default=defaults["rows"], help=f"array rows R (default {defaults['rows']})")
    parser.add_argument("--cols", type=int, default=defaults["cols"],
                        help=f"array columns C (default {defaults['cols']})")
    parser.add_argument("--row-groups", type=int, default=defaults["row_groups"],
                        help=f"row groups of the mapper (default {defaults['row_groups']}: plain tokens-on-rows tiles)")
    parser.add_argument("--balance-steps", type=int, default=defaults["balance_steps"],
                        help=f"CMoE load-balancing bias updates per layer on the calibration tokens "
                             f"(default {defaults['balance_steps']})")
    parser.add_argument("--bias-speed", type=float, default=defaults["bias_speed"],
                        help=f"step of those bias updates (default {defaults['bias_speed']})")
    parser.add_argument("--rtl-tiles", type=int, default=defaults["rtl_tiles"],
                        help=f"tiles of the real weights checked under Verilator per activation and source (dense, "
                             f"sparsest carving) (default {defaults['rtl_tiles']}; 0 skips)")
    parser.add_argument("--rtl-seed", type=int, default=defaults["rtl_seed"],
                        help=f"seed of the tile sampling and of the simulation (default {defaults['rtl_seed']})")
    parser.add_argument("--gguf", metavar="FILE",
                        help="also evaluate the dense model from this GGUF of SmolLM2 (e.g. the Q4_K_M of "
                             "'make gguf-quantize'), each projection on its type's core: float, array and RTL rows")
    parser.add_argument("--out", help="output directory (default build/eval/smollm2/)")
    add_quiet_option(parser)
    add_cluster_options(parser)


def run(args) -> int:
    from gen.scale.cluster import connect
    from sw.eval_smollm import main_report
    from verif.smollm_tiles import check_sampled_tiles
    settings = EvalSettings(eval_tokens=args.eval_tokens, float_windows=args.float_windows,
                            configs=tuple(args.configs), array_activations=tuple(args.activations),
                            routers=tuple(args.routers), rows=args.rows, cols=args.cols,
                            row_groups=args.row_groups, balance_steps=args.balance_steps, bias_speed=args.bias_speed,
                            rtl_tiles=args.rtl_tiles, rtl_seed=args.rtl_seed, methods=tuple(args.methods),
                            train_windows=args.train_windows, distill_steps=args.distill_steps,
                            lora_windows=args.lora_windows, gguf=args.gguf, e2e_stages=tuple(args.e2e_stage))
    with connect(args.scheduler, args.workers) as client:
        settings = dataclasses.replace(settings, workers=max(1, len(client.scheduler_info()["workers"])))
        return main_report(Path(args.out or BUILD_ROOT / "eval" / "smollm2"), settings, check_sampled_tiles,
                           functools.partial(client.submit, pure=False))
