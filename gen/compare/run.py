"""``mixpe compare``: every design at equal area on every workload phase, with the memory system."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from gen.compare.designs import BASELINES, DESIGN_SPECS, REFERENCE_PRESETS, Costs, characterize
from gen.compare.model import CompareError, search
from gen.compare.workloads import MODELS, PHASES, workload_gemms
from golden.memory import MemorySystem
from hw.config import from_preset

__all__ = ["CompareError", "CompareSettings", "load_costs", "run_compare", "budget_um2"]

#: Blocks each design needs at its reference configuration.
_BLOCKS = {"mixpe": ("pe", "fp_align", "act_sum", "gdu", "acc_memory"), "int8_mult": ("pe",),
           "int4x8_mult": ("pe",), "dequant_fp": ("pe", "edge"), "fp16_fp16": ("pe",)}


@dataclasses.dataclass(frozen=True)
class CompareSettings:
    designs: tuple[str, ...] = tuple(DESIGN_SPECS)
    workloads: tuple[str, ...] = tuple(MODELS)
    phases: tuple[str, ...] = tuple(PHASES)
    area_mm2: float | None = None
    memory: MemorySystem = MemorySystem()


def load_costs(designs, liberty, synth_root: Path, power_path: Path, log=print,
               storage_scale: float = 1.0) -> dict[str, Costs]:
    """:class:`Costs` of every design from its reference configuration's synthesis (cached; a
    missing block is synthesized, with timing) and ``make power``'s report (``storage_scale``:
    :func:`~gen.compare.designs.characterize`)."""
    from gen.synth import run_synthesis
    from gen.synth.designs import design_blocks
    by_activation: dict[str, list[dict]] = {}
    costs = {}
    for name in designs:
        spec = DESIGN_SPECS[name]
        config = from_preset(REFERENCE_PRESETS[spec.activation])
        needed = [(spec.synth_design, b) for b in _BLOCKS[spec.synth_design]]
        if spec.grouped:
            needed += [("mixpe", b) for b in _BLOCKS["mixpe"]]
        records = by_activation.setdefault(spec.activation, [])
        have = {(r["design"], r["block"]) for r in records}
        for design in dict.fromkeys(d for d, _ in needed):
            blocks = [b for d, b in needed if d == design and b in design_blocks(design, config) and (d, b) not in have]
            if blocks:
                records += run_synthesis(config, designs=[design], blocks=blocks, liberty=liberty,
                                         out_root=synth_root, log=None)
        costs[name] = characterize(spec, records, power_path, storage_scale)
        if log:
            log(f"{name:<12} PE {costs[name].pe_um2:.0f} um2, clock {costs[name].clock_mhz:.1f} MHz "
                f"({costs[name].limiting_block})")
    return costs


def power_source(power_path: Path) -> str:
    """Which ``make power`` run the energies come from (its configuration and GDU lanes)."""
    import json
    summary = power_path.with_name("summary.json")
    if not summary.is_file():
        return str(power_path)
    config = json.loads(summary.read_text()).get("config", {})
    params, derived = config.get("params", {}), config.get("derived", {})
    lanes = derived.get("lanes", params.get("cols"))
    return (f"{power_path} ({params.get('name')}, hash {config.get('hash')}, {params.get('rows')} x {params.get('cols')}, "
            f"{lanes} GDU lanes, SmolLM2 tiles)")


def budget_um2(costs: dict[str, Costs], area_mm2: float | None) -> float:
    """``area_mm2``, or the area of a 32 x 32 FP16 array in the same flow."""
    if area_mm2 is not None:
        if area_mm2 <= 0:
            raise CompareError(f"area_mm2={area_mm2!r}: must be positive")
        return area_mm2 * 1e6
    return costs["fp16"].area_um2(32, 32, 1)


def run_compare(costs: dict[str, Costs], settings: CompareSettings, log=print) -> tuple[list[dict], dict]:
    """One record per workload, phase and design (the fields of ``report.json``) and the run's meta."""
    start = time.monotonic()
    budget = budget_um2(costs, settings.area_mm2)
    records = []
    for workload in settings.workloads:
        model = MODELS[workload]
        for phase in settings.phases:
            gemms = workload_gemms(model, phase)
            group = []
            for name in settings.designs:
                result = search(costs[name], settings.memory, gemms, budget)
                shape = result.shape
                group.append({
                    "workload": workload, "phase": phase, "design": name,
                    "area_mm2": result.area_um2 / 1e6, "rows": shape.rows, "cols": shape.cols,
                    "gdu_lanes": shape.lanes, "row_groups": shape.row_groups,
                    "clock_mhz": costs[name].clock_mhz, "cycles": result.cycles, "seconds": result.seconds,
                    "compute_bound_fraction": result.compute_cycles / result.cycles,
                    "energy_j": result.energy_j, "exact_cycles": result.exact,
                    "macs": sum(g.macs for g in gemms),
                })
            by_design = {r["design"]: r for r in group}
            for record in group:
                record["speedup_vs"] = {b: by_design[b]["seconds"] / record["seconds"] for b in BASELINES if b in by_design}
                record["energy_ratio_vs"] = {b: by_design[b]["energy_j"]["total"] / record["energy_j"]["total"]
                                             for b in BASELINES if b in by_design}
            records += group
            if log:
                best = by_design.get("mixpe-w4a8")
                if best:
                    log(f"{workload:<18} {phase:<13} MixPE W4A8 {best['rows']}x{best['cols']} rg{best['row_groups']}: "
                        + ", ".join(f"{v:.2f}x vs {b}" for b, v in best["speedup_vs"].items()))
    meta = {"area_budget_mm2": budget / 1e6, "seconds": round(time.monotonic() - start, 1),
            "memory": dataclasses.asdict(settings.memory),
            "costs": {name: _costs_meta(c) for name, c in costs.items()}}
    return records, meta


def _costs_meta(costs: Costs) -> dict:
    fields = dataclasses.asdict(costs)
    fields["spec"] = dataclasses.asdict(costs.spec)
    fields["reference"] = costs.reference.name
    return fields
