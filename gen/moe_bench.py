"""The MoE part of ``make bench``: mapper utilization for decode- and prefill-like batches, and the
golden backend's wall time for a Mixtral-8x7B-shaped expert layer.

Shapes (Mixtral-8x7B): hidden 4096, FFN 14336, 8 experts, top-2. The utilization table gives every
expert the same number of tokens (1, 2, 4, 8: decode-like; 256, 512: prefill-like) and compares
the row-group mapping with the plain tokens-on-rows one (``row_groups = 1``), both timed by the
cycle model. The golden timing routes 64 random tokens with a random router and runs the quantized
layer (mapping, both GEMM stages, SiLU, requantization, combine) through
:class:`sw.moe_run.GoldenBackend`, with one torch thread and with torch's default thread count;
it reports wall and process CPU time (the machine may be shared). The 8 experts share one set of
random weight codes (24 distinct 4096 x 14336 int64 code matrices would take 11 GB), which does not
change the work done: nothing is cached between GEMMs.
"""

from __future__ import annotations

import os
import time

import torch

from golden.operands import random_operands
from hw.config import MixPEConfig
from sw.moe import QuantizedExpert, QuantizedMoE, top_k_routing
from sw.moe_mapper import layer_shapes, map_layer
from sw.moe_run import GoldenBackend, execute_layer

__all__ = ["MIXTRAL_8X7B", "DECODE_TOKENS", "PREFILL_TOKENS", "mapper_table", "golden_layer_timing", "moe_bench"]

MIXTRAL_8X7B = {"hidden": 4096, "ffn": 14336, "experts": 8, "top_k": 2}
DECODE_TOKENS = (1, 2, 4, 8)
PREFILL_TOKENS = (256, 512)


def _banded(config: MixPEConfig) -> MixPEConfig:
    """``config`` itself when it has row groups, else with 4 row groups (when 4 divides R)."""
    if config.row_groups > 1 or config.rows % 4:
        return config
    return config.replace(row_groups=4, name=f"{config.name}-rg4")


def mapper_table(config: MixPEConfig, tokens_per_expert=DECODE_TOKENS + PREFILL_TOKENS, shape=MIXTRAL_8X7B) -> list[dict]:
    """Per tokens-per-expert count: tiles, cycles and utilization of the row-group and plain mappings."""
    banded, plain = _banded(config), config.replace(row_groups=1)
    rows = []
    for tokens in tokens_per_expert:
        stages = layer_shapes([tokens] * shape["experts"], shape["hidden"], shape["ffn"])
        with_groups, without = map_layer(banded, stages), map_layer(plain, stages)
        rows.append({"tokens_per_expert": tokens, "row_groups": banded.row_groups,
                     "banded": {k: with_groups.summary()[k] for k in ("tiles", "cycles", "utilization")},
                     "plain": {k: without.summary()[k] for k in ("tiles", "cycles", "utilization")},
                     "gain": without.cycles / with_groups.cycles})
    return rows


def golden_layer_timing(config: MixPEConfig, tokens: int = 64, shape=MIXTRAL_8X7B, seed: int = 2024,
                        threads: int | None = None) -> dict:
    """Wall and CPU time of the golden backend on one Mixtral-8x7B-shaped layer (see the module
    docstring) with ``threads`` torch threads (None: the current setting)."""
    hidden, ffn, experts = shape["hidden"], shape["ffn"], shape["experts"]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, hidden, generator=gen)
    routing = top_k_routing(x @ (torch.randn(experts, hidden, generator=gen) / hidden ** 0.5).T, shape["top_k"], True)
    weights = {name: random_operands(config, 1, n, k, seed=seed + i)[2]
               for i, (name, n, k) in enumerate((("gate", ffn, hidden), ("up", ffn, hidden), ("down", hidden, ffn)))}
    quantized = QuantizedMoE(experts=(QuantizedExpert(**weights),) * experts, method="random codes")
    banded = _banded(config)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        load = os.getloadavg()[0]
        start, cpu_start = time.perf_counter(), time.process_time()
        run = execute_layer(banded, quantized, x, routing, GoldenBackend(banded))
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        torch.set_num_threads(previous)
    return {**shape, "tokens": tokens, "tokens_per_expert": routing.counts(), "seconds": seconds,
            "cpu_seconds": cpu_seconds, "torch_threads": threads or previous, "load_average": load,
            "predicted_cycles": run.cycles, "gemms": sum(len(jobs) for jobs in run.jobs), "seed": seed}


def moe_bench(config: MixPEConfig, quick: bool = False) -> dict:
    """The utilization table (and, unless ``quick``, the golden timing), printed as it goes."""
    table = mapper_table(config, DECODE_TOKENS + PREFILL_TOKENS[:1 if quick else 2])
    print(f"MoE mapper, Mixtral-8x7B shape (hidden {MIXTRAL_8X7B['hidden']}, FFN {MIXTRAL_8X7B['ffn']}, "
          f"{MIXTRAL_8X7B['experts']} experts) on {config.rows}x{config.cols} g={config.group_size}:")
    print(f"  {'tokens/expert':>13} {'row groups':>10} {'util':>7} {'plain util':>10} {'gain':>6}")
    for row in table:
        print(f"  {row['tokens_per_expert']:>13} {row['row_groups']:>10} {row['banded']['utilization']:>7.4f} "
              f"{row['plain']['utilization']:>10.4f} {row['gain']:>5.2f}x", flush=True)
    result = {"shape": MIXTRAL_8X7B, "utilization_table": table}
    if not quick:
        result["golden_layer"] = []
        for threads in sorted({1, torch.get_num_threads()}):
            timing = golden_layer_timing(config, threads=threads)
            print(f"golden backend, Mixtral-8x7B-shaped layer ({timing['tokens']} tokens, top-{timing['top_k']}, "
                  f"{timing['gemms']} expert GEMMs), {threads} torch thread{'s' if threads > 1 else ''}: "
                  f"{timing['seconds']:.1f} s wall, {timing['cpu_seconds']:.1f} s CPU "
                  f"(load average {timing['load_average']:.1f})", flush=True)
            result["golden_layer"].append(timing)
    return result
