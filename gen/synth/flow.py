"""The whole ``make synth`` run: every requested block of every design that has it, and the guard sweep."""

from __future__ import annotations

from pathlib import Path

from gen.synth.area import metric_keys
from gen.synth.designs import DEFAULT_BLOCKS, DESIGNS, design_blocks, unsupported_reason
from gen.synth.errors import SynthError
from gen.synth.liberty import Liberty
from gen.synth.timing import TIMING_FIELDS, block_timing, check_timing_inputs
from gen.synth.yosys import synthesize
from gen.names import DEFAULT_GUARD_SWEEP
from hw.config import MixPEConfig

__all__ = ["DEFAULT_GUARD_SWEEP", "run_synthesis", "guard_sweep"]


def run_synthesis(config: MixPEConfig, *, designs=None, blocks=None, array: bool = False,
                  liberty: Liberty | None = None, out_root: str | Path = "build/synth", use_cache: bool = True,
                  log=print) -> list[dict]:
    """Synthesize every requested block of every requested design that has it; returns the records.

    ``designs=None`` means every design that supports ``config`` (the others are skipped with a
    logged reason), ``blocks=None`` those of :data:`DEFAULT_BLOCKS` that exist for ``config``;
    ``array`` adds the ``array`` block. A design named explicitly that cannot be built for
    ``config``, or a named block that no requested design has, raises :class:`SynthError` before
    anything is synthesized. With a Liberty file that has delay tables every record also gets
    :data:`~gen.synth.timing.TIMING_FIELDS` from OpenSTA (a missing ``sta`` stops before synthesis)."""
    if liberty is not None and liberty.has_timing:
        check_timing_inputs(liberty)
    if designs is None:
        designs = []
        for design in DESIGNS:
            reason = unsupported_reason(design, config)
            if reason is None:
                designs.append(design)
            elif log:
                log(f"skip  {design:<11} ({reason})")
    for design in designs:
        reason = unsupported_reason(design, config)
        if reason:
            supported = [d for d in DESIGNS if unsupported_reason(d, config) is None]
            raise SynthError(f"design={design!r} cannot be built for {config.name}: {reason}; designs for "
                             f"activation={config.activation!r}: {supported}")
    available = {block for design in designs for block in design_blocks(design, config)}
    missing = [block for block in blocks or () if block not in available]
    if missing:
        raise SynthError(f"blocks={missing}: none of the designs {list(designs)} has them with activation="
                         f"{config.activation!r}; allowed blocks there: {sorted(available)}")
    blocks = [*(DEFAULT_BLOCKS if blocks is None else blocks), *(["array"] if array else [])]
    records = []
    for design in designs:
        for block in design_blocks(design, config):
            if block not in blocks:
                continue
            records.append(_synthesize_logged(config, design, block, liberty, out_root, use_cache, log))
    return records


def _synthesize_logged(config, design, block, liberty, out_root, use_cache, log) -> dict:
    if log:
        log(f"synth {design:<11} {block:<8} {config.name} G={config.guard} ...", end=" ", flush=True)
    record = synthesize(config, design, block, liberty, out_root=out_root, use_cache=use_cache)
    if liberty is not None and liberty.has_timing:
        timing = block_timing(config, design, block, liberty, synth_root=out_root, use_cache=use_cache)
        record.update({field: timing[field] for field in TIMING_FIELDS})
    if log:
        extra = f" area={record['area_um2']:.0f} um2 ({record['area_ge_liberty']:.0f} GE lib)" \
            if "area_um2" in record else ""
        if "critical_path_ns" in record:
            extra += f", path {record['critical_path_ns']:.2f} ns"
        source = "cached" if record["cached"] else f"{record['synth_seconds']:.1f} s"
        log(f"{record['cells']} cells, {record['area_ge']:.0f} GE, depth {record['depth']}, "
            f"seq {100 * record['sequential_share']:.0f}%{extra} [{source}]")
    return record


def guard_sweep(config: MixPEConfig, guards=DEFAULT_GUARD_SWEEP, *, liberty: Liberty | None = None,
                out_root: str | Path = "build/synth", use_cache: bool = True, log=print) -> list[dict]:
    """MixPE PE and edge-aligner area against the guard bits G (floating-point activations only).

    One row per G: ``guard_bits``, ``pe_act_bits`` and, per metric key (``area_ge``, with a
    library ``area_um2``), ``pe_<key>``, ``fp_align_<key>`` (all R rows), ``fp_align_per_row_<key>``
    and ``pes_plus_align_<key>`` = R x C PEs + aligner; with timing also ``pe_critical_path_ns`` and
    ``fp_align_critical_path_ns``."""
    if not config.fp_activation:
        raise SynthError(f"guard sweep: activation={config.activation!r} has no guard bits; it needs a "
                         f"floating-point activation (fp16, bf16, fp8_e4m3, fp8_e5m2, fp_e<E>m<M>)")
    rows = []
    for guard in guards:
        try:
            swept = config.replace(guard_bits=guard)
        except ValueError as error:
            raise SynthError(f"guard sweep: {error}") from None
        pe = _synthesize_logged(swept, "mixpe", "pe", liberty, out_root, use_cache, log)
        align = _synthesize_logged(swept, "mixpe", "fp_align", liberty, out_root, use_cache, log)
        row = {"guard_bits": guard, "pe_act_bits": swept.pe_act_bits, "config_hash": swept.hash}
        for key in metric_keys([pe, align]):
            row[f"pe_{key}"] = pe[key]
            row[f"fp_align_{key}"] = align[key]
            row[f"fp_align_per_row_{key}"] = align[key] / config.rows
            row[f"pes_plus_align_{key}"] = pe[key] * config.rows * config.cols + align[key]
        if "critical_path_ns" in pe:
            row["pe_critical_path_ns"] = pe["critical_path_ns"]
            row["fp_align_critical_path_ns"] = align["critical_path_ns"]
        rows.append(row)
    return rows
