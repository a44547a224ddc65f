"""``mixpe verify-model``: every GEMM of a SmolLM2 forward pass, tile by tile, on the RTL in parallel Dask tasks."""

from __future__ import annotations

from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_quiet_option
from gen.scale.cluster import add_cluster_options
from gen.scale.verify_model import BENCHES

NAME = "verify-model"
HELP = "SmolLM2 forward pass GEMMs tile by tile on the RTL (Dask), bit- and cycle-exact; writes build/verify/<model>/"
DESCRIPTION = ("Run a SmolLM2-135M forward pass (dense, or with a CMoE carving's FFNs), cut every GEMM into R x C "
               "tiles with the mapper and stream them through the mpgemm RTL in parallel Dask tasks; every result "
               "beat is compared with the bit-exact golden model and every cycle count with the cycle model. "
               "Writes tiles.jsonl (resumable) and report.json in build/verify/<model>/; exits 1 naming the layer, "
               "projection and tile of the first mismatch.")


def add_arguments(parser) -> None:
    parser.add_argument("--tiles", type=int, default=None, help="check this many tiles, sampled (default: every tile)")
    parser.add_argument("--blocks", type=int, default=None,
                        help="check every tile of this many row blocks (R tokens x one GEMM's columns), sampled")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the sample (default 2026)")
    parser.add_argument("--tokens", type=int, default=256, help="prefill length (default 256)")
    parser.add_argument("--activation", choices=("int8", "fp16"), default="int8",
                        help="array activations (default int8); the weights are the checkpoint's Q4_1")
    parser.add_argument("--array", default="16x16", metavar="RxC", help="array shape (default 16x16)")
    parser.add_argument("--carving", default=None, metavar="NAME",
                        help="CMoE carving of the FFNs, e.g. S2A10E16 (carved first: minutes); default dense")
    parser.add_argument("--bench", choices=BENCHES, default="freerun",
                        help="freerun: Verilator C++ harness fed from memory (default, fastest); memory-fed: the "
                             "cocotb memory-fed wrapper; stream-drivers: the cocotb stream-driver bench")
    parser.add_argument("--tiles-per-task", type=int, default=96, help="most column tiles in one task (default 96)")
    parser.add_argument("--out", help="output root (default build/verify/)")
    parser.add_argument("--fresh", action="store_true", help="run every task again (ignore tiles.jsonl)")
    parser.add_argument("--compare-workers", default=None, metavar="N,M,...",
                        help="benchmark: the same tasks on a local cluster of each size (e.g. 1,2), fresh, printed side "
                             "by side with speedup, CPU per tile and whether the results are identical; writes "
                             "<out>/<model>/compare/")
    add_cluster_options(parser)
    add_quiet_option(parser)


def run(args) -> int:
    from gen.scale.verify_model import VerifyModelError, run_verify_model
    rows, _, cols = args.array.partition("x")
    if not (rows.isdigit() and cols.isdigit()):
        raise VerifyModelError(f"array={args.array!r}: expected RxC, e.g. 16x16")
    counts = None
    if args.compare_workers is not None:
        parts = args.compare_workers.split(",")
        if not all(part.strip().isdigit() and int(part) > 0 for part in parts):
            raise VerifyModelError(f"compare_workers={args.compare_workers!r}: expected worker counts like 1,2")
        counts = tuple(int(part) for part in parts)
    return run_verify_model(activation=args.activation, rows=int(rows), cols=int(cols), tokens=args.tokens,
                            carving=args.carving, tiles=args.tiles, blocks=args.blocks, seed=args.seed,
                            tiles_per_task=args.tiles_per_task, bench=args.bench,
                            out_root=Path(args.out or BUILD_ROOT / "verify"), fresh=args.fresh,
                            scheduler=args.scheduler, workers=args.workers, compare_workers=counts)
