"""``area.png``: area per PE and per array (with the edge units) of every design."""

from __future__ import annotations

from pathlib import Path

from gen.synth.designs import DESIGNS
from hw.config import MixPEConfig

__all__ = ["plot_area"]


def plot_area(config: MixPEConfig, records: list[dict], arrays: list[dict], path: Path) -> bool:
    """Write the figure to ``path``; False (nothing written) when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    index = {(r["design"], r["block"]): r for r in records}
    key = "area_um2" if records and all("area_um2" in r for r in records) else "area_ge"
    unit = "area (µm²)" if key == "area_um2" else "area (NAND2 GE, generic)"
    designs = [d for d in DESIGNS if (d, "pe") in index]
    panels = 2 if arrays else 1
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.2), squeeze=False)
    colors = ["#2b7bba" if d == "mixpe" else "#999999" for d in designs]
    values = [index[(d, "pe")][key] for d in designs]
    ax = axes[0][0]
    ax.bar(designs, values, color=colors)
    ax.set_title(f"one PE (1 MAC/cycle), {config.name}")
    ax.set_ylabel(unit)
    for i, value in enumerate(values):
        ax.text(i, value, f"{value / values[0]:.2f}x" if designs[0] == "mixpe" else "", ha="center", va="bottom")
    ax.tick_params(axis="x", rotation=20)
    if arrays:
        ax = axes[0][1]
        names = [a["design"] for a in arrays]
        pes = [a[f"pes_{key}"] for a in arrays]
        edges = [a[f"edge_{key}"] for a in arrays]
        ax.bar(names, pes, color="#2b7bba", label="R x C PEs")
        ax.bar(names, edges, bottom=pes, color="#f0a030", label="dequant / edge units")
        for i, entry in enumerate(arrays):
            if entry.get(f"ratio_{key}"):
                ax.text(i, pes[i] + edges[i], f"{entry[f'ratio_{key}']:.2f}x", ha="center", va="bottom")
        ax.set_title(f"{config.rows} x {config.cols} array incl. dequant")
        ax.set_ylabel(unit)
        ax.legend()
        ax.tick_params(axis="x", rotation=20)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True
