"""``build/mutate/report.{md,json}``: per block the mutants, killed, equivalent, holes, score and
seconds (and how many mutants each proof method settled, ``equivalent_by``); one record per hole with
its source lines (and their text) and the mutation, one per equivalent mutant with its proof."""

from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path

from gen.mutate.campaign import BlockResult
from gen.mutate.netlist import REPO_ROOT

__all__ = ["source_text", "write_reports"]


def source_text(location: str) -> str:
    """The stripped text of ``hw/<file>.py:<line>`` in this checkout ("" if unknown)."""
    path, _, line = location.rpartition(":")
    try:
        return (REPO_ROOT / path).read_text().splitlines()[int(line) - 1].strip()
    except (OSError, ValueError, IndexError):
        return ""


def _block_row(result: BlockResult) -> dict:
    return {"block": result.block, "bench": result.bench, "config": result.config, "mutants": result.mutants,
            "killed": result.killed, "equivalent": result.equivalent, "holes": result.holes,
            "score": round(result.score, 4), "seconds": result.seconds,
            "equivalent_by": dict(collections.Counter(record.equivalent_by.split(" at ")[0] for record in result.records
                                                      if record.status == "equivalent"))}


def _hole_rows(results: list[BlockResult]) -> list[dict]:
    return [{"block": result.block, "config": result.config, "mutant": record.index, "mutation": record.mutation,
             "mode": record.mode, "sources": record.sources,
             "source_text": [source_text(location) for location in record.sources], "check": record.detail}
            for result in results for record in result.records if record.status == "hole"]


def _equivalent_rows(results: list[BlockResult]) -> list[dict]:
    return [{"block": result.block, "config": result.config, "mutant": record.index, "mutation": record.mutation,
             "sources": record.sources, "equivalent_by": record.equivalent_by}
            for result in results for record in result.records if record.status == "equivalent"]


def write_reports(results: list[BlockResult], out_dir: Path, command: str, min_score: float | None) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``mutants.json`` (every mutant's record) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks, holes = [_block_row(result) for result in results], _hole_rows(results)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "mutants": out_dir / "mutants.json"}
    equivalent = _equivalent_rows(results)
    paths["json"].write_text(json.dumps({"command": command, "min_score": min_score, "blocks": blocks,
                                         "holes": holes, "equivalent": equivalent}, indent=2) + "\n")
    paths["mutants"].write_text(json.dumps({result.block: [dataclasses.asdict(r) for r in result.records]
                                            for result in results}, indent=2) + "\n")
    lines = ["# Mutation testing of the generated RTL", "", f"Command: `{command}`", "",
             "Score = killed / (mutants - equivalent). A hole survives every test and was not proven equivalent.", "",
             "| block | bench | config | mutants | killed | equivalent | holes | score | seconds |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {b['block']} | {b['bench']} | {b['config']} | {b['mutants']} | {b['killed']} | {b['equivalent']} | "
              f"{b['holes']} | {b['score']:.4f} | {b['seconds']:.0f} |" for b in blocks]
    lines += ["", f"## Holes ({len(holes)})", ""]
    if not holes:
        lines.append("None.")
    for hole in holes:
        where = "; ".join(f"`{s}` `{t}`" for s, t in zip(hole["sources"], hole["source_text"])) or "(no source line)"
        lines.append(f"- **{hole['block']}** #{hole['mutant']} `{hole['mutation']}` at {where}: {hole['check']}")
    lines += ["", f"## Proven equivalent ({len(equivalent)})", ""]
    lines += [f"- **{row['block']}** #{row['mutant']} `{row['mutation']}` ({', '.join(row['sources'])}): "
              f"{row['equivalent_by'] or 'proven'}" for row in equivalent]
    paths["md"].write_text("\n".join(lines) + "\n")
    return paths
