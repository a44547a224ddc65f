"""``mixpe coverage`` (``make coverage``): merge the coverage databases of the ``mpgemm`` bench runs
(:mod:`verif.coverage`) into ``build/coverage/report.{md,json}``, every bin not hit listed."""

from __future__ import annotations

import json
from pathlib import Path

from verif.coverage import Coverage, merge_files

__all__ = ["point_of", "report_record", "render_markdown", "write_report"]


def point_of(name: str) -> str:
    """The cover point (or cross) of bin ``name``: all its dotted parts but the last
    (``stall.act.bubble``, ``act.fp16``, ``core``)."""
    return name.rsplit(".", 1)[0]


def report_record(coverage: Coverage, command: str) -> dict:
    """The JSON report: totals, per cover point the bins and those not hit, and every bin's hits."""
    points: dict[str, dict] = {}
    for name, count in sorted(coverage.hits.items()):
        point = points.setdefault(point_of(name), {"bins": 0, "hit": 0, "missed": []})
        point["bins"] += 1
        point["hit"] += bool(count)
        if not count:
            point["missed"].append(name)
    return {"command": command, "runs": coverage.runs, "configs": coverage.configs, "bins": len(coverage.hits),
            "hit": len(coverage.hit_bins), "percent": round(coverage.percent, 2), "missed": coverage.missed_bins,
            "points": points, "hits": dict(sorted(coverage.hits.items()))}


def render_markdown(record: dict) -> str:
    lines = [
        "# Functional coverage of the mpgemm core",
        "",
        f"`{record['command']}`: {record['runs']} bench runs on {len(record['configs'])} configurations; "
        f"**{record['hit']} of {record['bins']} bins hit ({record['percent']:.1f} %)**. "
        "Bins and how they are sampled: docs/verification.md, \"Functional coverage\".",
        "",
        "| cover point | bins | hit | not hit |",
        "|---|---:|---:|---|",
    ]
    for point, row in record["points"].items():
        missed = ", ".join(f"`{name.removeprefix(point + '.')}`" for name in row["missed"])
        lines.append(f"| `{point}` | {row['bins']} | {row['hit']} | {missed} |")
    lines += ["", "## Bins not hit", ""]
    lines += [f"* `{name}`" for name in record["missed"]] or ["None."]
    lines += ["", "## Hits per bin", "", "| bin | hits |", "|---|---:|"]
    lines += [f"| `{name}` | {count} |" for name, count in record["hits"].items()]
    lines += ["", "## Configurations", "", ", ".join(f"`{name}`" for name in record["configs"]) or "None.", ""]
    return "\n".join(lines)


def write_report(runs_dir: Path, out_dir: Path, command: str) -> tuple[dict, dict[str, Path]]:
    """Merge every ``*.json`` database in ``runs_dir``; write ``report.json`` and ``report.md`` into
    ``out_dir``. Returns the record and the paths written."""
    coverage = merge_files(Path(runs_dir).glob("*.json"))
    record = report_record(coverage, command)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md"}
    paths["json"].write_text(json.dumps(record, indent=2) + "\n")
    paths["md"].write_text(render_markdown(record))
    return record, paths
