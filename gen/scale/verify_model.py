"""``mixpe verify-model``: every GEMM of a SmolLM2 forward pass on the ``mpgemm`` RTL, in parallel Dask tasks.

The client runs the forward pass once (float backend, :class:`verif.smollm_tiles.RecordingLinear`) on
the held-out text's first ``tokens`` tokens (as ``make eval-smollm`` does), dense or with a CMoE
carving's FFNs (re-quantized down projections), and cuts every recorded GEMM into R x C output
tiles with the mapper (:func:`sw.packer.tile_grid`). ``--tiles N`` samples N of them (seeded),
``--blocks N`` N whole row blocks (R tokens x all columns of one GEMM: the tasks of a full run, the
right sample for the projection); without either every tile runs. A task is one row block of one
GEMM with some of its column tiles
(``tiles_per_task`` at most): the operands :class:`sw.smollm.ArrayLinear` gives the array, packed
(:func:`sw.packer.pack_gemm`), streamed back to back through the RTL, every result beat compared
with :func:`golden.mpgemm.bitexact_mpgemm` and the cycle count with :func:`golden.cycles.predict_cycles`.

Benches (``--bench``): ``freerun`` (default), the Verilator C++ harness fed from memory
(:mod:`verif.freerun`, the fastest); ``memory-fed``, the cocotb memory-fed wrapper
(:mod:`verif.benches.player`); ``stream-drivers``, the cocotb stream-driver bench (:func:`verif.sims.run_tiles`).
Each worker builds the bench once per configuration into the usual ``build/sim/<bench>-<hash>/``
(locked while building; every run in its own directory).

Writes ``<out>/tiles.jsonl`` (one record per task, resumable) and ``<out>/report.json``: tiles, result
beats, mismatches (each naming layer, projection and tile), cycles against the model, wall time,
workers, and the projected time of every tile of the forward pass on N workers from the measured
per-cycle cost of the tasks.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from pathlib import Path

from hw.errors import MixPEError

__all__ = ["VerifyModelError", "BENCHES", "GemmTiles", "TileBatch", "verify_tiles", "run_verify_model"]

BENCHES = ("freerun", "memory-fed", "stream-drivers")
#: Seconds between the report.json checkpoints of a running command.
REPORT_EVERY_S = 60
#: Most tiles in one task of a ``--tiles`` sample (its tiles come from different row blocks).
SAMPLED_TILES_PER_TASK = 8


class VerifyModelError(MixPEError, ValueError):
    """An option of ``mixpe verify-model`` is invalid."""


@dataclasses.dataclass(frozen=True)
class GemmTiles:
    """One task: GEMM ``gemm`` (``stage``, weight ``projection``, M x N x K) at output rows ``row0 ..``
    and the column tiles starting at ``cols``."""
    gemm: int
    stage: str
    projection: str
    m: int
    n: int
    k: int
    row0: int
    cols: tuple[int, ...]

    @property
    def key(self) -> str:
        """``<projection>@<row0>:<first col0>-<last col0>`` (tasks of one row block hold disjoint column runs)."""
        return f"{self.projection}@{self.row0}:{self.cols[0]}-{self.cols[-1]}"

    @property
    def tiles(self) -> int:
        return len(self.cols)

    @classmethod
    def from_spec(cls, spec: dict) -> GemmTiles:
        """The piece a task's JSON spec (or a batch's piece) describes."""
        return cls(**{**spec, "cols": tuple(spec["cols"])})

    @property
    def pieces(self) -> tuple[GemmTiles, ...]:
        return (self,)


@dataclasses.dataclass(frozen=True)
class TileBatch:
    """One task of a sampled run: the sampled tiles of several row blocks (``pieces``), streamed back to
    back in one simulation, so a task is not one tile's worth of fixed costs."""
    pieces: tuple[GemmTiles, ...]

    @property
    def key(self) -> str:
        return "+".join(piece.key for piece in self.pieces)

    @property
    def tiles(self) -> int:
        return sum(piece.tiles for piece in self.pieces)


# -- worker side --------------------------------------------------------------------------------

#: Configurations this worker process has run a task of (its bench is built, its core emitted).
_WARM: set = set()

def _run_bench(bench: str, config, tiles, expected: list[int], expected_rows) -> tuple[list[int] | None, int, int]:
    """(received beats or None when the bench compares them itself, mismatching beats, measured cycles)."""
    if bench == "freerun":
        from verif.freerun import run_freerun
        result = run_freerun(config, tiles, len(expected), keep_files=False)
        return result.beats, 0, result.cycles
    if bench == "memory-fed":
        from verif.benches.player.host import run_player
        result = run_player(config, tiles, expected)
        return None, result.mismatches, result.cycles
    from verif.sims import run_tiles
    summary = run_tiles(config, tiles, expected_rows, seed=1)
    return None, summary.mismatch_count, summary.cycles or 0


def _task_operands(config, settings: dict, spec: dict, payload):
    """``payload`` when given (tests), else the task's operands from the client's operand store."""
    if payload is not None:
        return payload
    import numpy as np
    from gen.scale.verify_operands import read_operands
    channels = np.concatenate([np.arange(col0, min(col0 + config.cols, spec["n"])) for col0 in spec["cols"]])
    return read_operands(config, settings["operands"], spec["gemm"], spec["row0"], channels)


def verify_tiles(settings: dict, spec: dict, payload=None) -> dict:
    """The task of one :class:`GemmTiles` or :class:`TileBatch` (``spec``): a piece's operands ``(x (<= R,
    K), act_scale, weights of the selected columns)`` are ``payload`` (one piece), or read from the
    operand store ``settings["operands"]``; every piece's tiles stream back to back through one
    simulation. Returns the beats, mismatching tiles (their first column; of a batch, per piece key
    in ``mismatched``), the measured and predicted cycles and the simulated MACs."""
    from gen.scale.tile_beats import row_block_result_beats, row_block_tiles
    from golden.cycles import predict_cycles
    from golden.mpgemm import bitexact_mpgemm
    from hw.config import MixPEConfig
    from sw.packer import pad_operands
    config = MixPEConfig.from_dict(settings["config"])
    pieces = spec.get("pieces", [spec])
    tiles, expected, rows, owners, macs = [], [], [], [], 0
    for piece in pieces:
        x, act_scale, weights = _task_operands(config, settings, piece, payload)
        macs += x.shape[0] * weights.codes.shape[0] * x.shape[1]
        padded = pad_operands(config, x, act_scale, weights)
        piece_tiles = row_block_tiles(config, *padded)
        y = bitexact_mpgemm(config, *padded)
        tiles += piece_tiles
        expected += row_block_result_beats(config, y)
        rows += [y[:, col0:col0 + config.cols] for col0 in range(0, y.shape[1], config.cols)]
        owners += [(piece, col0) for col0 in piece["cols"][:len(piece_tiles)]]
    start = time.perf_counter()
    received, mismatches, cycles = _run_bench(settings["bench"], config, tiles, expected, rows)
    sim_seconds = time.perf_counter() - start
    cold = config not in _WARM                     # this process built (or waited for) the bench and emitted the core
    _WARM.add(config)
    wrong_tiles = []
    if received is not None:
        wrong = [i for i in range(max(len(received), len(expected)))
                 if i >= len(received) or i >= len(expected) or received[i] != expected[i]]
        mismatches = len(wrong)
        wrong_tiles = sorted({i // config.rows for i in wrong})
    elif mismatches:
        wrong_tiles = list(range(len(tiles)))      # the cocotb benches count mismatches, not where
    predicted = predict_cycles(config, [tile.groups for tile in tiles])
    wrong_owners = [owners[i] for i in wrong_tiles if i < len(owners)]
    result = {"tiles": len(tiles), "result_beats": len(expected), "mismatches": mismatches,
              "mismatched_cols": [col0 for _, col0 in wrong_owners],
              "cycles": cycles, "model_cycles": predicted.cycles, "macs": macs,
              "sim_seconds": round(sim_seconds, 4), "cold": cold}
    if "pieces" in spec:
        result["mismatched"] = {}
        for piece, col0 in wrong_owners:
            result["mismatched"].setdefault(GemmTiles.from_spec(piece).key, []).append(col0)
    return result


# -- client side --------------------------------------------------------------------------------

def _forward_gemms(config, tokens: int, carving: str | None, log) -> tuple[list, str]:
    """Every GEMM ``(stage, x, weight)`` of the forward pass and the model's name."""
    import torch
    from sw.corpus import EVALUATION_MODULES, corpus_text, token_windows
    from sw.smollm import load_smollm, load_tokenizer, forward
    from verif.smollm_tiles import RecordingLinear
    model, tokenizer = load_smollm(), load_tokenizer()
    window = token_windows(tokenizer.encode(corpus_text(EVALUATION_MODULES)).ids, tokens, 1, "held-out text")[0]
    ffns, name = None, "smollm2-dense"
    if carving is not None:
        from sw.cmoe import CMoEConfig, carve_model
        from sw.corpus import CALIBRATION_MODULES
        from sw.settings import EvalSettings
        settings = EvalSettings()
        calibration = token_windows(tokenizer.encode(corpus_text(CALIBRATION_MODULES)).ids,
                                    settings.calibration_length, settings.calibration_windows, "calibration text")
        carved = carve_model(model, calibration, CMoEConfig.parse(carving), k_act=settings.k_act)
        log(f"carved {carving} in {carved.seconds:.0f} s")
        ffns, name = carved.ffns(model, "requantized"), f"smollm2-{carving}"
    recorder = RecordingLinear()
    with torch.no_grad():
        forward(model, window, recorder, ffns)
    return recorder.inputs, name


def _tasks(config, gemms: list, count: int | None, seed: int, per_task: int, blocks: int | None = None
           ) -> list[GemmTiles | TileBatch]:
    """Every tile of every GEMM, or ``count`` tiles, or every tile of ``blocks`` row blocks (GEMM, R
    tokens), sampled with ``seed``; grouped into tasks: a row block's tiles, at most ``per_task`` per
    task; the ``count`` sampled tiles gathered across row blocks, at most ``SAMPLED_TILES_PER_TASK`` per task."""
    from sw.packer import tile_grid
    everything = [(index, row0, col0) for index, (_, x, weight) in enumerate(gemms)
                  for row0, col0 in tile_grid(config, x.shape[0], weight.shape[0])]
    if count is not None:
        if count > len(everything):
            raise VerifyModelError(f"tiles={count}: the forward pass has only {len(everything)} tiles")
        everything = sorted(random.Random(seed).sample(everything, count))
    elif blocks is not None:
        row_blocks = sorted({(index, row0) for index, row0, _ in everything})
        if blocks > len(row_blocks):
            raise VerifyModelError(f"blocks={blocks}: the forward pass has only {len(row_blocks)} row blocks")
        chosen = set(random.Random(seed).sample(row_blocks, blocks))
        everything = [tile for tile in everything if tile[:2] in chosen]
    groups: dict[tuple[int, int], list[int]] = {}
    for index, row0, col0 in everything:
        groups.setdefault((index, row0), []).append(col0)
    tasks = []
    for (index, row0), cols in groups.items():
        stage, x, weight = gemms[index]
        n, k = weight.shape
        for start in range(0, len(cols), per_task):
            tasks.append(GemmTiles(index, stage, weight.name, x.shape[0], n, k, row0,
                                   tuple(cols[start:start + per_task])))
    return tasks if count is None else _batches(tasks, min(per_task, SAMPLED_TILES_PER_TASK))


def _batches(pieces: list[GemmTiles], most: int) -> list[TileBatch]:
    """The tiles of ``pieces`` dealt into ``ceil(tiles / most)`` batches of about equal simulation
    cost (a tile's K groups; longest first, each to the cheapest batch), so that the tasks of a
    sample finish together; within a batch, each row block's tiles form one piece, in order."""
    tiles = [(piece, col0) for piece in pieces for col0 in piece.cols]
    count = -(-len(tiles) // most)
    loads = [[0, index, []] for index in range(count)]            # [cost, batch, tiles]
    for order, (piece, col0) in sorted(enumerate(tiles), key=lambda item: (-item[1][0].k, item[0])):
        load = min(loads, key=lambda entry: (len(entry[2]) >= most, entry[0], entry[1]))
        load[0] += piece.k
        load[2].append((order, piece, col0))
    batches = []
    for _, _, members in loads:
        grouped: dict = {}
        for _, piece, col0 in sorted(members, key=lambda member: member[0]):
            grouped.setdefault((piece.gemm, piece.row0), (piece, []))[1].append(col0)
        batches.append(TileBatch(tuple(dataclasses.replace(piece, cols=tuple(cols))
                                       for piece, cols in grouped.values())))
    return batches


def _check_options(bench: str, tiles, blocks, tokens, tiles_per_task) -> None:
    if bench not in BENCHES:
        raise VerifyModelError(f"bench={bench!r}: choose one of {', '.join(BENCHES)}")
    if tiles is not None and blocks is not None:
        raise VerifyModelError(f"tiles={tiles}, blocks={blocks}: sample tiles or row blocks, not both")
    for name, value in (("tiles", tiles), ("blocks", blocks), ("tokens", tokens), ("tiles_per_task", tiles_per_task)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise VerifyModelError(f"{name}={value!r}: must be a positive integer")


@dataclasses.dataclass
class _Run:
    """What the client prepares once: the forward pass's GEMMs, the tasks, the shared settings (with
    the operand store) and the output directory."""
    config: object
    model: str
    gemms: list
    tasks: list[GemmTiles | TileBatch]
    settings: dict
    out: Path
    begin: float

    @property
    def identity(self) -> dict:
        """The settings that decide whether an earlier task record still counts: all but the operand
        store's place and digest (the forward pass's floats may differ in the last bit between
        machines; a resumed run then verifies its remaining tiles on the rewritten store)."""
        return {key: value for key, value in self.settings.items() if key != "operands"}

    def jobs(self) -> list:
        from gen.scale.tasks import Job
        return [Job(task.key, dataclasses.asdict(task)) for task in self.tasks]


def _prepare(*, activation: str, rows: int, cols: int, tokens: int, carving: str | None, tiles, blocks, seed: int,
             tiles_per_task: int, bench: str, out_root: Path, log) -> _Run:
    """The forward pass, its tasks, and the operand store of the GEMMs they touch (written once)."""
    from gen.scale.verify_operands import operands_digest, write_store
    from sw.smollm import array_config
    config = array_config(activation, rows, cols)
    begin = time.perf_counter()
    gemms, model = _forward_gemms(config, tokens, carving, log)
    tasks = _tasks(config, gemms, tiles, seed, tiles_per_task, blocks)
    out = Path(out_root) / model
    settings = {"config": config.to_dict()["params"], "bench": bench, "tokens": tokens, "carving": carving}
    store = out / "operands"
    settings["operands"] = {"path": str(store), "digest": operands_digest(settings, gemms)}
    write_store(config, store, settings["operands"]["digest"], gemms,
                [piece.gemm for task in tasks for piece in task.pieces])
    log(f"{model}: {len(gemms)} GEMMs of a {tokens}-token forward pass, operands in {store} "
        f"({time.perf_counter() - begin:.0f} s); {sum(t.tiles for t in tasks)} tiles in {len(tasks)} tasks on "
        f"the {bench} bench of {config.name}")
    return _Run(config, model, gemms, tasks, settings, out, begin)


def run_verify_model(*, activation: str = "int8", rows: int = 16, cols: int = 16, tokens: int = 256,
                     carving: str | None = None, tiles: int | None = None, blocks: int | None = None,
                     seed: int = 2026, tiles_per_task: int = 96,
                     bench: str = "freerun", out_root: Path = Path("build/verify"), fresh: bool = False,
                     scheduler: str | None = None, workers: int | None = None,
                     compare_workers: tuple[int, ...] | None = None, log=print) -> int:
    """Verify the forward pass's tiles on the RTL; write ``tiles.jsonl`` and ``report.json``; 0 when
    every beat and cycle count matched, else 1 (naming the first failing layer, projection and tile).
    ``compare_workers``: run the same tasks once per local cluster size instead
    (:func:`gen.scale.verify_report.compare_workers`)."""
    from gen.scale.cluster import ClusterError, connect
    from gen.scale.tasks import run_tasks
    from gen.scale.verify_report import build_report, compare_workers as compare
    _check_options(bench, tiles, blocks, tokens, tiles_per_task)
    if compare_workers and scheduler is not None:
        raise ClusterError(f"scheduler={scheduler!r}: --compare-workers starts its own local clusters")
    run = _prepare(activation=activation, rows=rows, cols=cols, tokens=tokens, carving=carving, tiles=tiles,
                   blocks=blocks, seed=seed, tiles_per_task=tiles_per_task, bench=bench, out_root=out_root, log=log)
    sampled = {"tiles": tiles, "blocks": blocks}
    if compare_workers:
        return compare(run, compare_workers, verify_tiles, log)
    if fresh:
        (run.out / "tiles.jsonl").unlink(missing_ok=True)
    last_written = [time.perf_counter()]

    def checkpoint(done: dict, so_far) -> None:
        """report.json every minute while the tasks run (a long run stopped early still has one)."""
        if time.perf_counter() - last_written[0] >= REPORT_EVERY_S:
            report = build_report(run, so_far, sampled, seed, time.perf_counter() - run.begin, running=True)
            (run.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
            last_written[0] = time.perf_counter()

    with connect(scheduler, workers) as client:
        result = run_tasks(client, verify_tiles, run.settings, run.jobs(), run.out / "tiles.jsonl",
                           desc="verify-model", unit="task", label=_task_label, keep_unrelated=True,
                           on_record=checkpoint, identity=run.identity)
    report = build_report(run, result, sampled, seed, time.perf_counter() - run.begin)
    (run.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"verify-model {run.model}: {report['tiles']} tiles, {report['result_beats']} result beats, "
        f"{report['mismatches']} mismatches, {report['cycle_mismatches']} cycle-count differences, "
        f"{len(report['errors'])} failed tasks; {result.workers} workers, {report['task_wall_seconds']:.1f} s; "
        f"wrote {run.out / 'report.json'}")
    problems = report["failures"] + report["errors"]
    if problems:
        first = problems[0]
        print(f"mixpe verify-model: {len(problems)} task(s) failed; first: layer {first['layer']} "
              f"{first['projection']} "
              f"rows {first['row0']}.. cols {first['cols']}: {first['problem']}", file=sys.stderr)
    return 1 if problems else 0


def _task_label(record: dict) -> str:
    if "error" in record:
        return f"{record['key']}: FAILED {record['error']}"
    result = record["result"]
    return (f"{record['key']}: {result['tiles']} tiles, {result['mismatches']} mismatches, "
            f"{result['cycles']} cycles (model {result['model_cycles']})")
