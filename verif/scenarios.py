"""Named RTL simulation scenarios behind ``make sim TEST=<name>``; each prints a pass/fail summary."""

from __future__ import annotations

import random

import torch

from golden.cycles import utilization
from golden.mpgemm import bitexact_mpgemm, float_reference, within_bound
from golden.operands import random_operands, resolve_seed
from hw.config import MixPEConfig
from sw.packer import Band, banded_tile_result, pack_banded_tile, unpack_banded_tile
from verif.benches import STANDALONE_BENCHES
from verif.names import SCENARIO_HELP
from verif.sims import run_block, run_mpgemm, run_tiles

__all__ = ["SCENARIOS", "run_scenario", "gemm_case", "banded_case", "spread_token_scales"]


def gemm_case(config: MixPEConfig, m: int, n: int, k: int, seed: int, *, kind: str = "uniform",
              stall: float = 0.0, waves: bool = False, label: str = "mpgemm", replay: str | None = None,
              token_scale_span: int = 0) -> bool:
    """Run one GEMM on the RTL, print a one-line summary, return whether everything matched.

    ``replay`` is the command that reproduces the run, printed when it fails. ``token_scale_span``
    (INT8 activations): each row's token scale times ``2**e``, e uniform in [-span, span] (seeded),
    so the GDU's token multiplier sees scales far from the operands' usual 0.001 to 0.05."""
    x, act_scale, weights = random_operands(config, m, n, k, seed=seed, kind=kind)
    if token_scale_span and act_scale is not None:
        act_scale = spread_token_scales(act_scale, token_scale_span, seed)
    summary = run_mpgemm(config, x, act_scale, weights, seed=seed, stall_in=stall, stall_out=stall, waves=waves)
    exact = bitexact_mpgemm(config, x, act_scale, weights).double()
    bound_holds = bool(within_bound(config, x, act_scale, weights, exact).all())
    reference = float_reference(config, x, act_scale, weights)
    rel = ((exact - reference).abs() / reference.abs().clamp_min(torch.finfo(torch.float32).tiny)).nan_to_num(0.0).max().item()
    macs_per_cycle = summary.predicted.useful_macs / summary.cycles if summary.cycles else 0.0
    return _report(config, summary, f"{label} {config.name} M={m} N={n} K={k} {kind}", stall, bound_holds, seed,
                   replay, extra=f"MACs/cycle={macs_per_cycle:.1f} of {config.rows * config.cols} ",
                   error=f"max-rel-err-vs-float64={rel:.2e} ")


def spread_token_scales(act_scale: torch.Tensor, span: int, seed: int) -> torch.Tensor:
    """``act_scale`` (float32 (M,)) with row m times ``2**e_m``, e_m uniform in [-span, span] (seeded):
    exact while the products stay normal FP32 numbers (span <= 64 for the operands' 0.001 to 0.05)."""
    exponents = torch.randint(-span, span + 1, act_scale.shape, generator=torch.Generator().manual_seed(seed))
    return act_scale * torch.pow(2.0, exponents.float())


def _report(config: MixPEConfig, summary, what: str, stall: float, bound_holds: bool, seed: int,
            replay: str | None, extra: str = "", error: str = "") -> bool:
    """Print the one-line summary of an RTL run (and its mismatches, replay hint and waveform);
    returns whether it passed: bit-exact, cycle-exact when stall-free, and within the bound."""
    predicted, cycles = summary.predicted, summary.cycles
    if stall:
        timing = f"cycles={cycles} (stall-free model {predicted.cycles}, stalls {stall:.0%} in/out)"
    else:
        timing = f"cycles={cycles} (model {predicted.cycles}{'' if summary.cycles_match else ' MISMATCH'})"
    ok = summary.passed and bound_holds
    busy = utilization(config, predicted.useful_macs, cycles)
    print(f"{'PASS' if ok else 'FAIL'} {what}: {summary.result_beats} result rows "
          f"bit-exact={summary.mismatch_count == 0} {timing} {extra}util={busy:.3f} "
          f"dequant-stalls={predicted.dequant_stalls} {error}within-bound={bound_holds} seed={seed} "
          f"wall={summary.wall_time_s:.1f}s")
    for message in summary.mismatches:
        print(f"    {message}")
    if not ok:
        print(f"    replay: {replay or f'seed {seed}'}")
    if summary.wave_file:
        print(f"    waveform: {summary.wave_file}")
    return ok


def banded_case(config: MixPEConfig, tiles: list[tuple[int, list[tuple[int, int]]]], seed: int, *,
                kind: str = "uniform", stall: float = 0.0, waves: bool = False, label: str = "bands",
                replay: str | None = None) -> bool:
    """Run banded tiles on the RTL, print a one-line summary, return whether everything matched.

    ``tiles``: per tile ``(K, [(m_b, n_b) per band])``; every band gets its own random operands
    (seeded from ``seed``). Each band's output must equal the golden model of that band alone and
    stay within its error bound of the float64 reference."""
    band_lists, expected_rows, useful_macs, bound_holds, index = [], [], 0, True, 0
    for k, shapes in tiles:
        bands = []
        for m_b, n_b in shapes:
            bands.append(Band(*random_operands(config, m_b, n_b, k, seed=seed + 1000 * index, kind=kind)))
            index += 1
            useful_macs += m_b * n_b * k
        band_lists.append(bands)
        expected_rows.append(banded_tile_result(config, bands))
        for band, got in zip(bands, unpack_banded_tile(config, bands, expected_rows[-1])):
            exact = bitexact_mpgemm(config, band.x, band.act_scale, band.weights)
            bound_holds &= torch.equal(got.view(torch.int32), exact.view(torch.int32)) and \
                bool(within_bound(config, band.x, band.act_scale, band.weights, exact).all())
    summary = run_tiles(config, [pack_banded_tile(config, bands) for bands in band_lists], expected_rows,
                        seed=seed, stall_in=stall, stall_out=stall, waves=waves, useful_macs=useful_macs)
    shapes = " | ".join(f"K={k}: " + ",".join(f"{m}x{n}" for m, n in bands) for k, bands in tiles)
    return _report(config, summary, f"{label} {config.name} row_groups={config.row_groups} [{shapes}] {kind}",
                   stall, bound_holds, seed, replay)


def _replay(test: str, config: MixPEConfig, seed: int) -> str:
    return f"make sim TEST={test} PRESET={config.name} SEED={seed}  (or CONFIG=<its config.json>)"


def scenario_mpgemm(config: MixPEConfig, seed: int | None, waves: bool) -> bool:
    """``make sim TEST=mpgemm`` (:data:`verif.names.SCENARIO_HELP` says what it runs)."""
    seed = resolve_seed(seed)
    replay = _replay("mpgemm", config, seed)
    m, n, k = config.rows + config.rows // 2 + 1, 2 * config.cols - 1, 4 * config.group_size
    ok = gemm_case(config, m, n, k, seed, waves=waves, replay=replay)
    return gemm_case(config, m, n, k, seed + 1, stall=0.25, replay=replay) and ok


def scenario_array(config: MixPEConfig, seed: int | None, waves: bool) -> bool:
    """``make sim TEST=array`` (:data:`verif.names.SCENARIO_HELP` says what it runs)."""
    seed = resolve_seed(seed)
    rng = random.Random(seed)
    rows, cols, g = config.rows, config.cols, config.group_size
    cases = [
        (rows, cols, g, "uniform"),
        (rng.randrange(1, 2 * rows + 1), rng.randrange(1, 2 * cols + 1), g * rng.randrange(2, 6), "uniform"),
        (rows, cols, 2 * g, "worst"),
        (rng.randrange(1, rows + 1), cols, 3 * g, "signs"),
        (rows, rng.randrange(1, cols + 1), g, "zeros"),
    ]
    if config.fp_activation:
        cases += [(rows, cols, 2 * g, "outlier"), (4 * rows, cols, 2 * g, "specials")]
    # The worst case's token scales times 2**-64 to 2**64: biased exponents 53 to 186 instead of 117 to
    # 122, so the token multiplier's upper exponent bits toggle (issue 16: mpgemm mutant #153), results finite.
    results = [gemm_case(config, m, n, k, seed + i, kind=kind, label="array", waves=waves,
                         replay=_replay("array", config, seed), token_scale_span=64 if kind == "worst" else 0)
               for i, (m, n, k, kind) in enumerate(cases)]
    return all(results)


def scenario_bands(config: MixPEConfig, seed: int | None, waves: bool) -> bool:
    """``make sim TEST=bands`` (:data:`verif.names.SCENARIO_HELP` says what it runs)."""
    seed = resolve_seed(seed)
    rng = random.Random(seed)
    rows, cols, g, bands = config.band_rows, config.cols, config.group_size, config.row_groups
    tiles = [
        (g, [(rows, cols)] * bands),
        (3 * g, [(rng.randrange(1, rows + 1), rng.randrange(1, cols + 1)) for _ in range(max(1, bands - 1))]),
        (2 * g, [(rng.randrange(1, rows + 1), cols)]),
    ]
    replay = _replay("bands", config, seed)
    ok = banded_case(config, tiles, seed, waves=waves, replay=replay)
    return banded_case(config, tiles, seed + 1, stall=0.25, replay=replay) and ok


def _block(test: str):
    def scenario(config: MixPEConfig, seed: int | None, waves: bool) -> bool:
        result = run_block(config, test, seed=resolve_seed(seed), waves=waves)
        print(f"{'PASS' if result.passed else 'FAIL'} {test} {config.name}: {result.num_tests - result.num_failed}"
              f"/{result.num_tests} cocotb tests seed={result.seed}")
        return result.passed
    return scenario


#: name -> (one-line description, function(config, seed, waves) -> passed)
SCENARIOS = {name: (SCENARIO_HELP[name], run) for name, run in (
    ("mpgemm", scenario_mpgemm), ("array", scenario_array), ("bands", scenario_bands),
    *((name, _block(name)) for name in STANDALONE_BENCHES))}


def run_scenario(name: str, config: MixPEConfig, seed: int | None = None, waves: bool = False) -> bool:
    if name not in SCENARIOS:
        raise ValueError(f"test={name!r}: allowed tests are {sorted(SCENARIOS)}")
    return SCENARIOS[name][1](config, seed, waves)
