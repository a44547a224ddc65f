"""The reports of ``mixpe sweep``: ``summary.md`` (every point, the Pareto front, the failures) and
``pareto.png`` (two metrics against each other, the front highlighted; matplotlib)."""

from __future__ import annotations

from pathlib import Path

from gen.scale.sweep import METRIC_FIELDS

__all__ = ["pareto_front", "write_summary", "write_plot"]

#: Metric fields in table order (those no point has are left out), with their column headings.
COLUMNS = METRIC_FIELDS


def pareto_front(records: list[dict], x: str, y: str) -> list[dict]:
    """The records no other record beats on both ``x`` and ``y`` (smaller is better), sorted by ``x``."""
    points = sorted((r for r in records if x in r.get("result", {}) and y in r.get("result", {})),
                    key=lambda r: (r["result"][x], r["result"][y]))
    front, best_y = [], float("inf")
    for record in points:
        if record["result"][y] < best_y:
            front.append(record)
            best_y = record["result"][y]
    return front


def _format(value) -> str:
    if isinstance(value, float):
        if abs(value) >= 1e3:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 1e-2 else f"{value:.5g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def write_summary(path: Path, records: list[dict], *, x: str, y: str, metrics, workload: dict, run) -> Path:
    """``summary.md``: the table of every point, the Pareto front of ``x`` against ``y``, the failed points."""
    ok = [r for r in records if "result" in r]
    columns = [key for key in COLUMNS if any(key in r["result"] for r in ok)]
    front = {r["key"] for r in pareto_front(records, x, y)}
    lines = ["# Design-space sweep", "",
             f"{len(records)} points, metrics {', '.join(metrics)}; cycles on an M x N x K = "
             f"{workload['m']} x {workload['n']} x {workload['k']} GEMM. This run: {run.ran} tasks on "
             f"{run.workers} workers in {run.wall_seconds:.1f} s after a {run.warmup_seconds:.1f} s warm-up "
             f"({run.reused} taken from an earlier run). "
             f"Pareto front of {x} against {y} (smaller is better): marked *.", "",
             "| point | " + " | ".join(COLUMNS[key] for key in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for record in ok:
        mark = " *" if record["key"] in front else ""
        lines.append(f"| `{record['key']}`{mark} | "
                     + " | ".join(_format(record["result"].get(key, "")) for key in columns) + " |")
    failed = [r for r in records if "error" in r]
    if failed:
        lines += ["", f"## Failed points ({len(failed)})", ""]
        lines += [f"- `{r['key']}`: {r['error']}" for r in failed]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_plot(path: Path, records: list[dict], x: str, y: str) -> Path | None:
    """Scatter of ``y`` against ``x`` over the points, the Pareto front joined; None without matplotlib
    or when no point has both metrics."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    points = [r for r in records if x in r.get("result", {}) and y in r.get("result", {})]
    if not points:
        return None
    front = pareto_front(records, x, y)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.scatter([r["result"][x] for r in points], [r["result"][y] for r in points], color="tab:blue", label="points")
    axes.plot([r["result"][x] for r in front], [r["result"][y] for r in front], "o-", color="tab:red",
              label="Pareto front")
    for record in front:
        axes.annotate(record["key"], (record["result"][x], record["result"][y]), fontsize=6,
                      xytext=(4, 4), textcoords="offset points")
    axes.set_xlabel(COLUMNS.get(x, x))
    axes.set_ylabel(COLUMNS.get(y, y))
    if min(r["result"][y] for r in points) > 0:
        axes.set_yscale("log")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
