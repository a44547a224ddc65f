"""``python -m verif.recovery_tiles``: the RTL spot-check of a trained conversion (issue 18's "back
onto the array"): tiles sampled from a 64-token forward pass of the trained model, its expert
weights re-quantized to Q4_1 as the array runs them, streamed through the ``mpgemm`` RTL under
Verilator and checked bit- and cycle-exactly (:func:`verif.smollm_tiles.check_sampled_tiles`, as
``mixpe eval-smollm --rtl-tiles`` does for the training-free carvings).

The trained model is the one ``python -m sw.recovery`` trains with the same options (read from
its cache, ``build/recovery/``; trained there first if missing): the LaDiMo layer-wise stage on the
first ``--train-windows`` training windows, then ``--e2e-steps`` end-to-end steps and any further
``--stage STEPS:LR[:qat][:bf16]`` (:func:`sw.recovery.e2e_stages`). The host runs in
float64 as in ``make eval-smollm``. Prints one JSON line per activation format (without the tiles'
origins) and appends the full records to ``build/recovery/rtl_checks.jsonl``; exits 1 if a tile
mismatched or a build failed, 2 for a bad option.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable

import torch

from hw.errors import MixPEError
from sw.cmoe import CMoEConfig
from sw.eval_methods import distilled_model
from sw.ladimo import DistillSettings
from sw.recovery import CACHE, add_model_arguments, e2e_stages, recovery_text
from sw.settings import SMOLLM_ARRAY_ACTIVATIONS, EvalSettings
from sw.smollm import SmolLM, array_config, load_smollm, with_host_dtype
from verif.smollm_tiles import check_sampled_tiles

__all__ = ["is_expert_weight", "trained_tile_checks", "main"]

PROG = "python -m verif.recovery_tiles"
#: The records of every run (one JSON line per check, tile origins included).
RESULTS = CACHE / "rtl_checks.jsonl"

_EXPERT_WEIGHT = re.compile(r"\.(shared|expert\d+)\.(gate|up|down)$")


def is_expert_weight(name: str) -> bool:
    """Whether a GEMM weight is one of an MoE FFN's experts (shared or routed), i.e. trained and
    re-quantized in a trained conversion; attention projections are the checkpoint's."""
    return _EXPERT_WEIGHT.search(name) is not None


def trained_tile_checks(model: SmolLM, trained, tokens: torch.Tensor, *,
                        activations: tuple[str, ...] = SMOLLM_ARRAY_ACTIVATIONS, count: int = 32, seed: int = 2026,
                        rows: int = 16, cols: int = 16, check: Callable[..., dict] = check_sampled_tiles) -> list[dict]:
    """``check`` (default: the RTL) of ``count`` tiles per activation format, sampled from the
    forward pass on ``tokens`` of ``model`` (float64 host) with ``trained``'s re-quantized FFNs
    (anything with ``ffns(model, down_mode)``, ``config`` and ``router``); each record gains
    ``expert_tiles``, how many of its tiles come from expert (trained) weights."""
    host = with_host_dtype(model, torch.float64)
    ffns = trained.ffns(host, "requantized")
    checks = []
    for activation in activations:
        record = check(array_config(activation, rows, cols), host, tokens, count=count, seed=seed, ffns=ffns,
                       source=f"{trained.config.name} ({trained.router})")
        record["expert_tiles"] = sum(is_expert_weight(origin["weight"]) for origin in record.get("origins", ()))
        checks.append(record)
    return checks


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--activations", nargs="+", choices=SMOLLM_ARRAY_ACTIVATIONS,
                        default=list(SMOLLM_ARRAY_ACTIVATIONS))
    parser.add_argument("--tiles", type=int, default=EvalSettings.rtl_tiles, help="tiles per activation format")
    parser.add_argument("--seed", type=int, default=EvalSettings.rtl_seed, help="tile sampling and simulation")
    parser.add_argument("--tokens", type=int, default=EvalSettings.rtl_tokens,
                        help="length of the forward pass (first held-out window) the tiles come from")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        for name in ("train_windows", "tiles", "tokens"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}={getattr(args, name)}: must be a positive integer")
        config = CMoEConfig.parse(args.config)
        distill = DistillSettings(steps=args.distill_steps)
        if args.e2e_steps < 0:
            raise ValueError(f"--e2e-steps={args.e2e_steps}: must be >= 0 (0: layer-wise only)")
    except (MixPEError, ValueError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    model, text = load_smollm(), recovery_text()
    try:
        config.check_requantizable(model.shape.ffn)
    except MixPEError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    trained = distilled_model(model, config, text["calibration"], text["training"][:args.train_windows], distill,
                              EvalSettings.k_act)
    stages = ([(args.e2e_steps, args.e2e_lr, False, "float32")] if args.e2e_steps else []) + args.stage
    if stages:
        trained = e2e_stages(model, trained, text, stages, eval_every=0)[0]
    try:
        checks = trained_tile_checks(model, trained, text["held_out"][0][:args.tokens],
                                     activations=tuple(args.activations), count=args.tiles, seed=args.seed)
    except (MixPEError, RuntimeError) as error:        # a failed build or simulation: one line, exit 1
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as results:
        for record in checks:
            record.update(train_windows=args.train_windows, distill_steps=args.distill_steps,
                          e2e_stages=stages, tokens=args.tokens)
            results.write(json.dumps(record) + "\n")
            print(json.dumps({key: value for key, value in record.items() if key != "origins"}), flush=True)
    return 0 if all(record["passed"] for record in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
