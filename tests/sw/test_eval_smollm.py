"""eval-smollm: float64 host, tie-breaking by index, spread fields, rows as submitted tasks, resume,
and the same numbers whatever torch's CPU kernels and thread count (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sw.cmoe import representatives, top_indices
from sw.smollm import ArrayLinear, FloatLinear, array_config, forward, with_host_dtype

ROOT = Path(__file__).resolve().parents[2]
#: Text digests of a run (any strings will do).
TEXTS = {"calibration": "c", "evaluation": "e", "training": "t"}


def test_top_indices_break_ties_by_index():
    values = torch.tensor([[1.0, 3.0, 3.0, 0.5, 3.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    assert top_indices(values, 2).tolist() == [[1, 2], [0, 1]]
    assert top_indices(values, 4).tolist() == [[1, 2, 4, 0], [0, 1, 2, 3]]


def test_representatives_exact_ties_lowest_index():
    # Two members at the same L1 distance from the mean column: the lower index wins.
    markers = torch.tensor([[1, 0], [0, 1], [1, 1]], dtype=torch.bool)       # (T=3, n=2), one cluster
    assert representatives(markers, torch.tensor([0, 0]), 1).tolist() == [0]


def test_float64_host_forward(smollm_layer0):
    """with_host_dtype: every host operation in float64, the array's result back in it; a float32
    model is unchanged (the trained methods' interface)."""
    wide = with_host_dtype(smollm_layer0, torch.float64)
    tokens = torch.arange(100, 108)
    assert forward(wide, tokens, FloatLinear()).dtype == torch.float64
    assert forward(smollm_layer0, tokens, FloatLinear()).dtype == torch.float32
    logits = forward(wide, tokens, ArrayLinear(array_config("int8")))
    assert logits.dtype == torch.float64
    narrow = forward(smollm_layer0, tokens, FloatLinear(torch.float64)).double()
    assert torch.allclose(forward(wide, tokens, FloatLinear()), narrow, rtol=0, atol=1e-3 * narrow.abs().max())
    assert wide.layers[0].q is smollm_layer0.layers[0].q                   # projections shared


def test_report_spread_and_reproducibility(tmp_path):
    from sw.eval_report import write_reports
    base = {"activation": "int8", "cycles_per_token": 1000.0, "prefill_utilization": 1.0, "carving_seconds": None,
            "carving_cpu_seconds": None, "decode_cycles_per_token": 10, "decode_utilization": 0.5,
            "model": "dense", "active_ratio": 1.0, "router": None, "down_mode": None}
    records = [{**base, "perplexity": 8.0, "spread_windows": 3, "spread_perplexities": [8.0, 9.0, 10.0],
                "perplexity_mean": 9.0, "perplexity_std": 1.0, "perplexity_min": 8.0, "perplexity_max": 10.0},
               {**base, "activation": "fp16", "perplexity": None, "error": "RuntimeError: x"}]
    meta = {"array": {"rows": 16, "cols": 16, "row_groups": 1}, "evaluation": {"tokens": 256, "long_tokens": 768,
            "modules": ["heapq"], "sha256": "ab" * 32}, "calibration": {"tokens": 512, "modules": ["csv"],
            "sha256": "cd" * 32}, "rtl_checks": [], "python": "3.11", "total_seconds": 1.0, "settings": {},
            "host_dtype": "float64", "cpu_capability": "AVX2", "machine": "x86_64", "spread_windows": 3,
            "seeds": {"random_router": 0, "rtl": 2026}, "libraries": {"torch": "2.0"}}
    write_reports(tmp_path, records, meta)
    text = (tmp_path / "report.md").read_text()
    assert "| perplexity | mean (min – max) over 3 windows |" in text
    assert "| 8.000 | 9.000 (8.000 – 10.000) |" in text
    assert "Host operations in float64 (torch CPU capability `AVX2`" in text and "random_router 0" in text
    summary = text.split("## Summary")[1].split("##")[0]
    assert "| dense | — | 100% | — | — | 8.000 / 9.000 / 10.00 | — | 1,000 (1.000) | — |" in summary


def test_summary_pivots_rows_with_their_windows():
    """The docs' table: one line per model and router, float exact / re-quantized, INT8 and FP16 side by side."""
    from sw.eval_report import summary_lines
    def row(activation, down_mode, perplexity, long=None):
        return {"model": "S2A10E16", "router": "fitted", "activation": activation, "down_mode": down_mode,
                "active_ratio": 0.75, "perplexity": perplexity, "spread_perplexities": [perplexity, 20.5, 1234.0],
                "perplexity_long": long, "cycles_per_token": 345159.3, "prefill_utilization": 0.976,
                "decode_by_row_groups": {"1": {"cycles": 5395920, "utilization": 0.06},
                                         "16": {"cycles": 364560, "utilization": 0.92}}}
    records = [row("float", "exact", 14.28, 16.93), row("float", "requantized", 16.62, 18.38),
               row("int8", "requantized", 18.11), row("fp16", "requantized", 116.87)]
    meta = {"spread_windows": 3, "array": {"rows": 16}, "evaluation": {"tokens": 256, "long_tokens": 2048}}
    lines = summary_lines(records, meta)
    assert lines[-1] == ("| S2A10E16 | fitted | 75% | 14.28 / 20.50 / 1,234 (long 16.93) | 16.62 / 20.50 / 1,234 "
                         "(long 18.38) | 18.11 / 20.50 / 1,234 | 116.9 / 20.50 / 1,234 | 345,159 (0.976) | "
                         "5,395,920 / 364,560 (0.92) |")


def test_inline_submit_carries_errors():
    from sw.eval_smollm import inline_submit
    assert inline_submit(divmod, 7, 2).result() == (3, 1)
    with pytest.raises(ZeroDivisionError):
        inline_submit(divmod, 1, 0).result()


def test_partial_rows_resume(tmp_path):
    """Rows recorded under settings that compute rows the same way are reused (whichever rows are
    chosen); other settings and failed rows are not."""
    from sw.eval_smollm import EvalSettings, RowSpec, _PartialRows, _train_settings
    settings = EvalSettings(configs=(), rtl_tiles=0)
    path = tmp_path / "rows.jsonl"
    first = _PartialRows(path, settings, TEXTS)
    first.add(RowSpec("dense", "float", None), {"perplexity": 8.0})
    first.add(RowSpec("dense", "int8", None), {"error": "killed"})
    again = _PartialRows(path, EvalSettings(configs=(), rtl_tiles=0, workers=1), TEXTS)
    assert list(again.done.values()) == [{"perplexity": 8.0}]
    other_rows = EvalSettings(configs=("S2A10E16",), routers=("fitted",), array_activations=("fp16",), rtl_tiles=32)
    assert _PartialRows(path, other_rows, TEXTS).done == again.done           # the rows they share are reused
    methods = EvalSettings(methods=("ladimo",), distill_steps=30, rtl_tiles=0)
    assert _PartialRows(path, methods, {**TEXTS, "training": "other"}).done == again.done
    trained = {"router": "ladimo", "perplexity": 9.0, "train_settings": _train_settings(methods, "ladimo", "t")}
    _PartialRows(path, methods, TEXTS).add(RowSpec("S2A10E16", "float", "exact", "ladimo"), trained)
    assert len(_PartialRows(path, methods, TEXTS).done) == 2                # its own settings and text
    assert len(_PartialRows(path, EvalSettings(methods=("ladimo",)), TEXTS).done) == 1
    assert len(_PartialRows(path, methods, {**TEXTS, "training": "other"}).done) == 1
    assert not _PartialRows(path, EvalSettings(configs=(), rtl_tiles=0, eval_tokens=64), TEXTS).done
    again.finish()
    assert not path.exists()


def test_default_rows_keep_their_digest():
    """Rows without training keep the digest they had before the trained methods' rows got their
    own (so an interrupted default run's ``rows.jsonl`` still resumes)."""
    import dataclasses
    import hashlib
    from sw.corpus import text_digest
    from sw.eval_smollm import _ROW_SELECTION_FIELDS, HOST_DTYPE, RANDOM_SELECTION_SEED, SPREAD_WINDOWS, \
        EvalSettings, _row_digest
    settings = dataclasses.asdict(EvalSettings())
    identity = {"settings": {name: value for name, value in settings.items()
                             if name not in (*_ROW_SELECTION_FIELDS, "e2e_stages")},
                "texts": ["c", "e", text_digest("")], "spread_windows": SPREAD_WINDOWS,
                "host_dtype": str(HOST_DTYPE), "random_seed": RANDOM_SELECTION_SEED}
    before = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    assert _row_digest(settings, TEXTS) == before


def _report(path: Path, settings, records: list[dict]) -> None:
    import dataclasses
    meta = {"settings": dataclasses.asdict(settings), "calibration": {"sha256": "c"}, "evaluation": {"sha256": "e"},
            "spread_windows": 3, "host_dtype": "float64", "seeds": {"random_router": 0}, "rtl_checks": []}
    path.write_text(json.dumps({"meta": meta, "records": records}))


def test_last_report_rows_are_kept(tmp_path):
    """A run keeps the last report's finished rows if its untrained rows compute as this run's
    (whatever rows either chose, and whatever the methods' own settings: trained rows carry theirs)."""
    from sw.eval_smollm import EvalSettings, _previous_report, _row_digest
    import dataclasses
    path = tmp_path / "report.json"
    dense = {"model": "dense", "activation": "float", "down_mode": None, "router": None, "perplexity": 8.0}
    ladimo = {**dense, "model": "S2A10E16", "down_mode": "exact", "router": "ladimo", "train_settings": {}}
    failed = {**dense, "activation": "int8", "error": "killed"}
    _report(path, EvalSettings(configs=("S2A10E16",), methods=("ladimo",), distill_steps=30), [dense, ladimo, failed])

    def kept(settings, texts=TEXTS):
        return list(_previous_report(path, _row_digest(dataclasses.asdict(settings), texts))[0].values())

    assert kept(EvalSettings()) == kept(EvalSettings(methods=("cmoe-lora",), lora_windows=4)) == [dense, ladimo]
    assert kept(EvalSettings(eval_tokens=64)) == kept(EvalSettings(), {**TEXTS, "evaluation": "x"}) == []


def test_rtl_sources_and_reused_checks():
    """The RTL check samples the dense model, the sparsest carving and its conversion by the first
    method; checks of the last report with the same tiles, seed and tokens are kept, not rerun."""
    from sw.eval_rtl import reusable_checks, rtl_sources
    from sw.eval_smollm import EvalSettings
    settings = EvalSettings(configs=("S2A10E16", "S2A6E16"), methods=("ladimo+e2e", "ladimo"))
    assert rtl_sources(settings) == [("dense", None), ("S2A6E16 (fitted router)", ("S2A6E16", "fitted")),
                                     ("S2A6E16 (ladimo+e2e)", ("S2A6E16", "ladimo+e2e"))]
    done = {("dense", "smollm-w4int8-g32-16x16"), ("dense", "smollm-w4fp16-g32-16x16"),
            ("S2A6E16 (fitted router)", "smollm-w4int8-g32-16x16")}
    assert [source for source, _ in rtl_sources(settings, done)] == ["S2A6E16 (fitted router)", "S2A6E16 (ladimo+e2e)"]
    checks = [{"source": "dense", "config": "c", "passed": True}, {"source": "x", "config": "c", "passed": False}]
    meta = {"settings": {"rtl_tiles": 32, "rtl_seed": 2026, "rtl_tokens": 64}, "rtl_checks": checks}
    assert reusable_checks(meta, EvalSettings()) == checks[:1]
    assert reusable_checks(meta, EvalSettings(rtl_seed=1)) == reusable_checks({}, EvalSettings()) == []


def test_e2e_stages_setting(tmp_path, monkeypatch):
    """``e2e_stages`` (``--e2e-stage``): checked, part of a row's identity only when set (rows recorded
    before the field existed are reused), and ``ladimo+e2e`` then trains the stages of
    :func:`sw.recovery.e2e_stages` on all the training windows without a learning curve."""
    import sw.eval_methods as eval_methods
    from sw.eval_smollm import EvalSettings, _PartialRows, _train_settings
    from sw.recovery import Stage
    from sw.settings import SettingsError
    with pytest.raises(SettingsError, match="e2e_stages=.*ladimo\\+e2e"):
        EvalSettings(e2e_stages=("16:2e-4",))
    with pytest.raises(SettingsError, match="e2e_stages: stage='16:fast'"):
        EvalSettings(methods=("ladimo+e2e",), e2e_stages=("16:fast",))
    path = tmp_path / "rows.jsonl"
    staged = EvalSettings(configs=(), methods=("ladimo+e2e",), e2e_stages=("16:2e-4:bf16", "80:2e-4:qat:bf16"))
    plain = EvalSettings(configs=(), methods=("ladimo+e2e",))
    assert _PartialRows(path, EvalSettings(configs=()), TEXTS).digest == _PartialRows(path, staged, TEXTS).digest
    assert _train_settings(plain, "ladimo+e2e", "t") == {"train_windows": 32, "distill_steps": 60,
                                                         "e2e_stages": [], "training_sha256": "t"}
    assert _train_settings(staged, "ladimo+e2e", "t")["e2e_stages"] == ["16:2e-4:bf16", "80:2e-4:qat:bf16"]
    assert _train_settings(staged, "ladimo", "t") == _train_settings(plain, "ladimo", "t")
    calls = {}
    monkeypatch.setattr(eval_methods, "distilled_model", lambda *args, **kwargs: "ladimo model")
    monkeypatch.setattr(eval_methods, "recovery_text", lambda settings: {"training": ["w0", "w1", "w2"],
                                                                        "held_out": ["h0"]})

    def stages(model, distilled, text, stages, eval_every, log, cache):
        calls.update(distilled=distilled, text=text, stages=stages, eval_every=eval_every)
        return "staged model", []

    monkeypatch.setattr(eval_methods, "e2e_stages", stages)
    model = type("Model", (), {"dtype": torch.float32})()
    monkeypatch.setattr(eval_methods, "with_host_dtype", lambda model, dtype: model)
    trained = eval_methods.train_method(model, "ladimo+e2e", None, [], ["w0"], staged, {}, print, cache=tmp_path)
    assert trained == "staged model"
    assert calls == {"distilled": "ladimo model", "text": {"training": ["w0", "w1", "w2"], "held_out": []},
                     "stages": [Stage(16, 2e-4, False, "bfloat16"), Stage(80, 2e-4, True, "bfloat16")],
                     "eval_every": 0}


def test_run_eval_rows_on_a_submit_callable(tmp_path, monkeypatch, smollm_layer0):
    """run_eval gives every row to ``submit`` and reports each with its spread; a second run after an
    interruption takes the recorded rows."""
    import sw.eval_smollm as eval_smollm
    monkeypatch.setattr(eval_smollm, "load_smollm", lambda *args, **kwargs: smollm_layer0)
    calls = []

    def submit(function, *args):
        calls.append(args[0])
        return eval_smollm.inline_submit(function, *args)

    settings = eval_smollm.EvalSettings(configs=(), array_activations=("int8",), eval_tokens=8, float_windows=2,
                                        rtl_tiles=0)
    monkeypatch.setattr(eval_smollm, "_MODELS", {None: with_host_dtype(smollm_layer0, torch.float64)})
    records, ok = eval_smollm.run_eval(tmp_path, settings, log=lambda message: None, submit=submit)
    assert ok and [spec.label for spec in calls] == ["dense float", "dense int8"]
    for record in records:
        assert record["spread_windows"] == 3 and len(record["spread_perplexities"]) == 3
        assert record["spread_perplexities"][0] == record["perplexity"]
        assert record["perplexity_min"] <= record["perplexity_mean"] <= record["perplexity_max"]
    assert len(records[0]["perplexity_windows"]) == 2 and "perplexity_windows" not in records[1]
    meta = json.loads((tmp_path / "report.json").read_text())["meta"]
    assert meta["host_dtype"] == "float64" and meta["seeds"]["rtl"] == settings.rtl_seed
    assert not (tmp_path / eval_smollm.PARTIAL_ROWS).exists()
    calls.clear()                                   # then other rows: one report with both runs' rows
    more = eval_smollm.dataclasses.replace(settings, array_activations=("fp16",))
    merged, ok = eval_smollm.run_eval(tmp_path, more, log=lambda message: None, submit=submit)
    assert ok and [spec.label for spec in calls] == ["dense fp16"]
    assert [record["activation"] for record in merged] == ["float", "int8", "fp16"] and merged[:2] == records
    meta = json.loads((tmp_path / "report.json").read_text())["meta"]
    assert meta["settings"]["array_activations"] == ["int8", "fp16"]


_PROBE = """
import hashlib, json, math, sys
import torch
torch.set_num_threads(int(sys.argv[1]))
from sw.cmoe import CMoEConfig, carve_model
from sw.corpus import CALIBRATION_MODULES, EVALUATION_MODULES, corpus_text, token_windows
from sw.smollm import ArrayLinear, array_config, forward, load_smollm, load_tokenizer, sequence_nll, with_host_dtype
model = with_host_dtype(load_smollm(layers=2), torch.float64)
tokenizer = load_tokenizer()
window = token_windows(tokenizer.encode(corpus_text(EVALUATION_MODULES)).ids, 64, 1, "held-out")[0]
calibration = token_windows(tokenizer.encode(corpus_text(CALIBRATION_MODULES)).ids, 128, 2, "calibration")
carving = carve_model(model, calibration, CMoEConfig.parse("S2A10E16"), router="fitted")
digest = hashlib.sha256()
for layer in carving.layers:
    for tensor in (layer.shared, layer.experts, layer.representative):
        digest.update(tensor.numpy().tobytes())
rows = {}
for name, ffns in (("dense", None), ("carved", carving.ffns(model, "requantized"))):
    nll, count = sequence_nll(forward(model, window, ArrayLinear(array_config("int8")), ffns), window)
    rows[name] = math.exp(nll / count)
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "carving": digest.hexdigest(), **rows}))
"""


@pytest.mark.slow
def test_same_numbers_whatever_the_kernels():
    """The dense INT8 row and a fitted carving (its partition and its INT8 row) on two layers do not
    change with torch's thread count or vector kernels (ATEN_CPU_CAPABILITY): to 1e-12 relative."""
    outputs = []
    for threads, capability in ((1, "default"), (2, "avx2")):
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
        result = subprocess.run([sys.executable, "-c", _PROBE, str(threads)], cwd=ROOT, env=env, check=True,
                                capture_output=True, text=True)
        outputs.append(json.loads(result.stdout.splitlines()[-1]))
    assert outputs[0]["capability"] != outputs[1]["capability"]
    assert outputs[0]["carving"] == outputs[1]["carving"]
    for row in ("dense", "carved"):
        assert outputs[0][row] == pytest.approx(outputs[1][row], rel=1e-12, abs=0)
