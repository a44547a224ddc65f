"""The report of ``mixpe eval-smollm`` (:mod:`sw.eval_smollm`): ``report.json`` (``meta`` and one
record per row, as :func:`sw.eval_smollm.run_eval` made them), ``report.md`` (the table of rows,
the RTL check, decode cycles per row-group count, what runs where, the text) and
``perplexity_vs_cycles.png``."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from sw.formatting import format_number
from sw.settings import CMOE_ROUTERS, SMOLLM_METHODS
from sw.smollm_gguf import gguf_summary_lines

__all__ = ["write_reports", "summary_lines"]


def _cell(value, digits: int = 0, thousands: bool = False) -> str:
    """A number of the report's table (:func:`sw.formatting.format_number`, an em dash when missing)."""
    return format_number(value, digits, thousands=thousands, missing="—")


def _rtl_lines(checks: list[dict]) -> list[str]:
    if not checks:
        return ["Not run (`--rtl-tiles 0`)."]
    lines = ["Tiles sampled (seeded) from one forward pass: R consecutive tokens x C consecutive output channels of "
             "a random projection, over its full K, with the checkpoint's Q4_1 codes, d and m and the activations "
             "that layer receives; streamed back to back through the `mpgemm` RTL under Verilator, every result "
             "beat compared bit-exactly with `bitexact_mpgemm`, cycles compared with the cycle model.", "",
             "| core | source | tiles | mismatching beats / beats | cycles (RTL / model) | seed | result |",
             "|---|---|---:|---:|---:|---:|---|"]
    for check in checks:
        if "error" in check:
            lines.append(f"| {check['config']} | {check['source']} | — | — | — | {check['seed']} | "
                         f"FAILED: {check['error']} |")
            continue
        lines.append(f"| {check['config']} | {check['source']} | {check['tiles']} | {check['mismatches']} / "
                     f"{check['result_beats']} | {check['cycles']} / {check['predicted_cycles']} | {check['seed']} | "
                     f"{'bit-exact' if check['passed'] else 'FAIL'} |")
    return lines


def _decode_lines(records: list[dict], array: dict) -> list[str]:
    """Decode cycles per token (one token, every GEMM at M = 1) for each row-group count."""
    rows = [r for r in records if r.get("decode_by_row_groups") and r["activation"] == "float"
            and r["down_mode"] != "exact"]
    if not rows:
        return ["No row ran."]
    groups = list(rows[0]["decode_by_row_groups"])
    lines = [f"At decode every GEMM has one token, so a plain {array['rows']}x{array['cols']} array fills one row "
             f"in {array['rows']}. With `row_groups` bands the mapper puts column blocks of the same GEMM (or other "
             "experts' GEMMs with the same K) into the bands; the weight stream is `row_groups` times wider. "
             "Cycles per token (utilization):", "",
             "| model | router | " + " | ".join(f"row_groups {g}" for g in groups) + " |",
             "|---|---|" + "---:|" * len(groups)]
    for r in rows:
        cells = [f"{v['cycles']:,} ({v['utilization']:.3f})" for v in r["decode_by_row_groups"].values()]
        lines.append(f"| {r['model']} | {r['router'] or '—'} | " + " | ".join(cells) + " |")
    return lines


def _trained_lines(records: list[dict], meta: dict) -> list[str]:
    """The trained conversions (``--methods``): training text, tokens, time, per-layer top-k; [] if none ran."""
    rows = [r for r in records if r.get("train_tokens") is not None and r["activation"] == "float"
            and r["down_mode"] == "exact"]
    if not rows:
        return []
    training = meta["training"]
    lines = ["", "## Trained conversions", "",
             f"Training text: {training['tokens']} tokens of docstrings of {', '.join(training['modules'])} "
             f"(sha256 {training['sha256'][:16]}...), disjoint from the calibration and held-out modules. "
             "Train tokens: tokens processed by the optimizer (all layers for LaDiMo; windows for LoRA).", "",
             "| model | method | active (mean) | train tokens | train s (wall / CPU) | per-layer top-k |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        topk = " ".join(str(k) for k in r["layer_topk"]) if "layer_topk" in r else "—"
        lines.append(f"| {r['model']} | {r['router']} | {r['active_ratio']:.1%} | {r['train_tokens']:,} | "
                     f"{_cell(r['train_seconds'])} / {_cell(r['train_cpu_seconds'])} | {topk} |")
    return lines


def _spread_lines(records: list[dict]) -> list[str]:
    """Per-window perplexities of the float rows (the long windows one by one): which row differences are real."""
    rows = [r for r in records if r.get("perplexity_windows")]
    if not rows:
        return []
    lines = ["", "## Spread over held-out windows (float rows)", "",
             f"Perplexity of each of the {len(rows[0]['perplexity_windows'])} long windows on its own; median "
             "and range.", "", "| model | router | down | median | min – max |", "|---|---|---|---:|---:|"]
    for r in rows:
        values = sorted(r["perplexity_windows"])
        lines.append(f"| {r['model']} | {r['router'] or '—'} | {r['down_mode'] or '—'} | "
                     f"{_cell(statistics.median(values), 3)} | "
                     f"{_cell(values[0], 3)} – {_cell(values[-1], 3)} |")
    return lines


def _spread_cell(record: dict) -> str:
    """``mean (min – max)`` of a row's perplexity over its spread windows; an em dash without them."""
    if record.get("perplexity_mean") is None:
        return "—"
    return (f"{_cell(record['perplexity_mean'], 3)} ({_cell(record['perplexity_min'], 3)} – "
            f"{_cell(record['perplexity_max'], 3)})")


def _perplexity_short(value: float) -> str:
    """About four significant digits: 8.032, 21.16, 96.38, 115.2, 1,408."""
    digits = 3 if value < 10 else 2 if value < 100 else 1 if value < 1000 else 0
    return _cell(float(value), digits, thousands=True)


def _windows_cell(record: dict | None) -> str:
    """A row's perplexity on each spread window (``w1 / w2 / w3``; the first is its ``perplexity``) and,
    for float rows, ``(long ...)``; an em dash for a missing row."""
    if record is None or record.get("perplexity") is None:
        return "—"
    values = record.get("spread_perplexities") or [record["perplexity"]]
    long = f" (long {_perplexity_short(record['perplexity_long'])})" if record.get("perplexity_long") else ""
    return " / ".join(_perplexity_short(value) for value in values) + long


def summary_lines(records: list[dict], meta: dict) -> list[str]:
    """One line per model and router: its float (exact and re-quantized down), INT8 and FP16 rows
    side by side, each on every spread window, with the prefill and decode cycles (the table of
    docs/smollm2.md and the README)."""
    groups: dict[tuple, dict[tuple, dict]] = {}
    for r in records:
        groups.setdefault((r["model"], r["router"]), {})[(r["activation"], r["down_mode"])] = r
    windows = meta.get("spread_windows") or 1
    row_groups = [str(g) for g in (1, meta["array"]["rows"])]
    numbers = " / ".join(str(window + 1) for window in range(windows))
    lines = [f"Perplexity on held-out windows {numbers} of {meta['evaluation']['tokens']} tokens "
             f"(the first is the `perplexity` column; long: {meta['evaluation']['long_tokens']} tokens); cycles "
             f"per token of the first window's prefill (utilization) and of decode at `row_groups` "
             f"{' / '.join(row_groups)} (utilization at {row_groups[-1]}).", "",
             "| model | router | active | float (exact down) | float (re-quantized down) | INT8 on the array | "
             "FP16 on the array | prefill cycles/token (util.) | decode cycles/token |", "|---|---|---:|" + "---:|" * 6]
    for (model, router), rows in groups.items():
        cycles = next((rows[key] for key in (("float", "requantized"), ("float", None), ("float", "exact"))
                       if key in rows), next(iter(rows.values())))
        dense = any(down_mode is None for _, down_mode in rows)         # dense rows (and --gguf ones): no down mode
        decode = cycles.get("decode_by_row_groups") or {}
        decode_cell = ("—" if not all(g in decode for g in row_groups) else
                       " / ".join(f"{decode[g]['cycles']:,}" for g in row_groups)
                       + f" ({decode[row_groups[-1]]['utilization']:.2f})")
        prefill_cell = ("—" if cycles.get("cycles_per_token") is None else
                        f"{cycles['cycles_per_token']:,.0f} ({cycles['prefill_utilization']:.3f})")
        lines.append(f"| {model} | {router or '—'} | {rows[next(iter(rows))]['active_ratio']:.0%} | "
                     f"{_windows_cell(rows.get(('float', None if dense else 'exact')))} | "
                     f"{_windows_cell(rows.get(('float', 'requantized')))} | "
                     f"{_windows_cell(rows.get(('int8', None if dense else 'requantized')))} | "
                     f"{_windows_cell(rows.get(('fp16', None if dense else 'requantized')))} | "
                     f"{prefill_cell} | {decode_cell} |")
    return lines


def _reproducibility_lines(meta: dict) -> list[str]:
    """Host precision, CPU kernels, seeds and library versions of the run ([] for an older report)."""
    if "host_dtype" not in meta:
        return []
    libraries = ", ".join(f"{name} {version}" for name, version in meta.get("libraries", {}).items())
    seeds = ", ".join(f"{name} {value}" for name, value in meta.get("seeds", {}).items())
    return ["", "## Reproducibility", "",
            f"Host operations in {meta['host_dtype']} (torch CPU capability `{meta.get('cpu_capability')}`, "
            f"{meta.get('machine')}); ties in top-k and assignments broken by index. Seeds: {seeds}. "
            f"Python {meta['python']}; {libraries}."]


def write_reports(out_dir: Path, records: list[dict], meta: dict) -> None:
    (out_dir / "report.json").write_text(json.dumps({"meta": meta, "records": records}, indent=2) + "\n")
    spread = meta.get("spread_windows")
    header = ("| model | activation | active | router | down | perplexity | "
              f"mean (min – max) over {spread or '—'} windows | perplexity (long, float) | cycles/token "
              "(prefill) | utilization (prefill) | cycles/token (decode) | utilization (decode) | carving s (wall / CPU) | note |")
    lines = ["# SmolLM2-135M-Instruct Q4_1 on the MixPE array: dense and CMoE-carved", "",
             f"Array {meta['array']['rows']}x{meta['array']['cols']} (row_groups {meta['array']['row_groups']}), "
             f"W4 Q4_1 (g = 32, FP16 d and m per group, `zero_mode=float_offset`). Perplexity on the first "
             f"{meta['evaluation']['tokens']} held-out tokens (long: {meta['evaluation']['long_tokens']} tokens, "
             f"float rows only). Spread: the same row on the first {spread or '—'} held-out windows of "
             f"{meta['evaluation']['tokens']} tokens (the first is the perplexity column), mean of their perplexities "
             "and the range. Cycles/token: prefill of that window; decode: one token.", "",
             header, "|" + "---|" * 14]
    for r in records:
        note = r.get("error", "")
        lines.append(f"| {r['model']} | {r['activation']} | {r['active_ratio']:.0%} | {r['router'] or '—'} | "
                     f"{r['down_mode'] or '—'} | "
                     f"{_cell(r['perplexity'], 3)} | {_spread_cell(r)} | {_cell(r.get('perplexity_long'), 3)} | "
                     f"{_cell(r.get('cycles_per_token'), thousands=True)} | {_cell(r.get('prefill_utilization'), 3)} | "
                     f"{_cell(r.get('decode_cycles_per_token'), thousands=True)} | "
                     f"{_cell(r.get('decode_utilization'), 3)} | "
                     f"{_cell(r['carving_seconds'])} / {_cell(r['carving_cpu_seconds'])} | {note} |")
    lines += ["", "## Summary", ""] + summary_lines(records, meta)
    lines += _trained_lines(records, meta) + gguf_summary_lines(records) + _spread_lines(records)
    lines += _reproducibility_lines(meta)
    lines += ["", "## RTL equals the golden model on tiles of the real weights", ""] + _rtl_lines(meta["rtl_checks"])
    lines += ["", "## Decode with row groups", ""] + _decode_lines(records, meta["array"])
    lines += ["", "## What runs where", "",
              "* On the array's numerics (`golden.mpgemm.bitexact_mpgemm`, bit-exact with the RTL): all 210 Q4_1 "
              "projections (q, k, v, o, gate, up, down of 30 layers; for carved layers the shared and routed "
              "experts' gate/up/down). INT8 rows quantize each GEMM's input per token "
              "(`quantize_activations_int8`); FP16 rows pass it rounded to FP16 with `act_scale=None`.",
              f"* In {meta.get('host_dtype', 'float32')} on the host: embedding lookup (Q8_0 dequantized), RMSNorm, RoPE, QK^T, causal "
              "softmax, PV, SiLU and the SwiGLU product, residuals, the CMoE router, and the tied output head "
              "(Q8_0 embedding, dequantized). Their cycles are not counted.",
              "* Carved experts: gate/up keep the checkpoint's Q4_1 rows exactly; down is re-quantized to Q4_1 "
              "per expert (llama.cpp's quantizer, groups of 32 along the expert's K) — compare the `exact` and "
              "`requantized` float rows for its cost.",
              "", "## Text", "",
              f"Docstrings of Python {meta['python']} standard-library modules (`sw/corpus.py`). Calibration "
              f"({meta['calibration']['tokens']} tokens): {', '.join(meta['calibration']['modules'])} "
              f"(sha256 {meta['calibration']['sha256'][:16]}...). Held-out: {', '.join(meta['evaluation']['modules'])} "
              f"(sha256 {meta['evaluation']['sha256'][:16]}...).",
              "", f"Total run time {meta['total_seconds']:.0f} s; settings `{json.dumps(meta['settings'])}`.", ""]
    (out_dir / "report.md").write_text("\n".join(lines))
    _plot(out_dir / "perplexity_vs_cycles.png", records)


def _plot(path: Path, records: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axis = plt.subplots(figsize=(7, 4.5))
    markers = {"float": "o", "int8": "s", "fp16": "^"}
    method_markers = dict(zip(SMOLLM_METHODS, ("D", "P", "*", "X"), strict=True))
    for router in (None, *CMOE_ROUTERS, *SMOLLM_METHODS):
        for activation, marker in markers.items():
            points = [r for r in records if r["activation"] == activation and r["perplexity"] is not None
                      and r["down_mode"] != "exact" and r["router"] == router]
            if not points:
                continue
            where = " on the array" if activation != "float" else " (re-quantized down)" if router else ""
            colour = f"C{list(markers).index(activation)}" if router else "black"
            style = {"facecolors": "none", "edgecolors": colour} if router == "fitted" else {"color": colour}
            axis.scatter([r["cycles_per_token"] for r in points], [r["perplexity"] for r in points],
                         marker=method_markers.get(router, marker),
                         label=f"{router or 'dense'}{' router' if router in CMOE_ROUTERS else ''}, {activation}{where}",
                         **style)
            if activation == "float":
                for r in points:
                    axis.annotate(r["model"], (r["cycles_per_token"], r["perplexity"]), fontsize=7,
                                  xytext=(3, -10), textcoords="offset points")
    axis.set_yscale("log")
    axis.set_xlabel("array cycles per token (prefill, 16x16 unless stated in report.md)")
    axis.set_ylabel("perplexity (held-out window)")
    axis.set_title("SmolLM2-135M Q4_1: dense vs CMoE carvings on MixPE")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
