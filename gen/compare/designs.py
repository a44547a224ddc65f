"""The designs of ``mixpe compare`` and what each costs: area of any array shape, clock, energy per cycle.

Every figure comes from this project's flow at the reference shape (the 16 x 16 preset of the
design's activation format): block areas and clocks from ``make synth``/``make timing``
(:func:`gen.synth.run_synthesis`, cached in ``build/synth``), energies from ``make power``
(``build/power/report.json``). Other shapes scale the blocks by what they hold:

* PEs: R x C of the synthesized PE;
* ``act_sum`` and ``fp_align``: per row (R / R_ref);
* a GDU lane: its datapath (the ``gdu`` block without its ``acc_memory``) plus the accumulator
  memory, scaled by the words it holds (R x columns per lane);
* ``dequant_fp``'s token-scale multiplier: one per lane (:func:`gen.synth.area.array_needs`).

At the reference shape this is :func:`gen.synth.area.array_summary`'s total (a test checks it).
Energy per cycle: each block's measured power over its clock, the PEs per PE, act_sum per row; the
GDUs' measured energy per um^2 on the design's GDU area per output element (their power is mostly
the accumulator flip-flops, and ``make power`` may have measured another lane count); idle cycles
cost the sequential part only. A PE that ``make power`` has not measured (MixPE with FP16 or FP8
activations) takes the INT8 MixPE PE's energy scaled by area: an *estimate*, named in the report.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hw.config import MixPEConfig, from_preset

__all__ = ["DesignSpec", "DESIGN_SPECS", "BASELINES", "Costs", "characterize", "REFERENCE_PRESETS"]

#: The reference configuration (16 x 16, g = 128, default lanes) per activation format.
REFERENCE_PRESETS = {"int8": "w4a8-g128-16x16", "fp16": "w4a16-g128-16x16", "fp8_e4m3": "w4e4m3-g128-16x16"}


@dataclasses.dataclass(frozen=True)
class DesignSpec:
    """One design: ``synth_design`` (gen.synth's name) on activations ``activation``; weights of
    ``weight_bits`` in memory with ``param_bits`` of group parameters per column and group of g
    (0: none); ``grouped``: the MixPE core's schedule (GDU lanes), else a plain OS array."""
    name: str
    label: str
    synth_design: str
    activation: str
    weight_bits: int
    param_bits: int
    act_bits: int
    grouped: bool


DESIGN_SPECS = {spec.name: spec for spec in (
    DesignSpec("mixpe-w4a8", "MixPE W4A8", "mixpe", "int8", 4, 16 + 4, 8, True),
    DesignSpec("mixpe-w4a16", "MixPE W4A16", "mixpe", "fp16", 4, 16 + 4, 16, True),
    DesignSpec("mixpe-w4fp8", "MixPE W4 + FP8 (E4M3)", "mixpe", "fp8_e4m3", 4, 16 + 4, 8, True),
    DesignSpec("int8-lanes", "INT8 x INT8 array, W8A8, GDU lanes", "int8_mult", "int8", 8, 16 + 8, 8, True),
    DesignSpec("int4x8", "int4x8_mult (MixPE without shift & add)", "int4x8_mult", "int8", 4, 16 + 4, 8, True),
    DesignSpec("dequant-fp", "dequantize-then-multiply (FP32 per weight)", "dequant_fp", "int8", 4, 16 + 4, 8, False),
    DesignSpec("fp16", "FP16 x FP16 array, FP16 weights", "fp16_fp16", "int8", 16, 0, 16, False),
)}
#: The designs every record's speedup_vs and energy_ratio_vs compare with.
BASELINES = ("int8-lanes", "fp16", "dequant-fp", "int4x8")


@dataclasses.dataclass(frozen=True)
class Costs:
    """A design's area model (um^2), clock (MHz) and energy per cycle (pJ) at the reference shape."""
    spec: DesignSpec
    reference: MixPEConfig
    pe_um2: float
    per_row_um2: float          # act_sum (+ fp_align) per array row
    lane_datapath_um2: float    # a GDU lane without its accumulator memory (or dequant_fp's multiplier)
    storage_um2_per_word: float  # accumulator memory per FP32 word held (2 banks x R x columns per lane)
    clock_mhz: float
    limiting_block: str
    pe_pj: float                # per PE and active cycle
    pe_idle_pj: float
    per_row_pj: float
    per_output_pj: float        # GDUs per output element held and cycle (or dequant_fp edge per column)
    idle_share: float           # sequential share of the edge's power (idle cycles)
    leakage_mw_per_um2: float
    estimated: tuple[str, ...]

    def area_um2(self, rows: int, cols: int, lanes: int) -> float:
        area = rows * cols * self.pe_um2 + rows * self.per_row_um2
        if self.spec.grouped or self.lane_datapath_um2:
            per_lane = -(-cols // lanes)
            area += lanes * (self.lane_datapath_um2 + 2 * rows * per_lane * self.storage_um2_per_word)
        return area

    def core_pj(self, rows: int, cols: int, active_cycles: int, idle_cycles: int) -> float:
        edge = rows * self.per_row_pj + rows * cols * self.per_output_pj
        active = rows * cols * self.pe_pj + edge
        idle = rows * cols * self.pe_idle_pj + edge * self.idle_share
        return active_cycles * active + idle_cycles * idle


def _power_records(path: Path) -> tuple[dict, tuple[int, int]]:
    """(design, block) -> record of the smollm2 workload, and the measured (R, C)."""
    if not path.is_file():
        return {}, (16, 16)
    records = json.loads(path.read_text())
    summary = path.with_name("summary.json")
    shape = (16, 16)
    if summary.is_file():
        params = json.loads(summary.read_text()).get("config", {}).get("params", {})
        shape = (params.get("rows", 16), params.get("cols", 16))
    index = {(r["design"], r["block"]): r for r in records if r.get("workload") == "smollm2"}
    return index, shape


def _pj(record: dict, field: str = "power_mw") -> float:
    """pJ per cycle of ``record``'s power (mW / MHz = nJ)."""
    return record[field] / record["clock_mhz"] * 1000.0


def characterize(spec: DesignSpec, synth_records: list[dict], power_path: Path, storage_scale: float = 1.0) -> Costs:
    """:class:`Costs` of ``spec`` from the block records of its reference configuration
    (``synth_records``: :func:`gen.synth.run_synthesis` with timing) and ``make power``'s report.
    ``storage_scale`` multiplies the area and energy of the GDU lanes' accumulator memory (a what-if:
    the synthesized memory is flip-flops; an SRAM or register-file macro would be denser)."""
    reference = from_preset(REFERENCE_PRESETS[spec.activation])
    index = {(r["design"], r["block"]): r for r in synth_records}
    design = spec.synth_design
    pe = index[(design, "pe")]
    grouped = spec.grouped
    row_blocks = [index[("mixpe", b)] for b in ("act_sum", "fp_align") if grouped and ("mixpe", b) in index]
    gdu = index.get(("mixpe", "gdu")) if grouped else None
    memory = index.get(("mixpe", "acc_memory")) if grouped else None
    edge = index.get((design, "edge")) if design == "dequant_fp" else None
    r_ref, cpl_ref = reference.rows, reference.columns_per_lane
    storage_per_word = storage_scale * memory["area_um2"] / (2 * r_ref * cpl_ref) if memory else 0.0
    lane_datapath = (gdu["area_um2"] - memory["area_um2"]) if gdu else (edge["area_um2"] if edge else 0.0)
    timed = [pe, *row_blocks, *([gdu] if gdu else []), *([edge] if edge else [])]
    limiting = min(timed, key=lambda r: r["fmax_mhz"])

    power, (r_m, c_m) = _power_records(power_path)
    estimated = []
    measured_pe = power.get((design, "pe")) if spec.activation == "int8" or design == "fp16_fp16" else None
    int8_pe = power.get(("mixpe", "pe"))
    if measured_pe:
        pe_pj, pe_idle = _pj(measured_pe), _pj(measured_pe, "sequential_mw")
        leak_density = measured_pe["leakage_mw"] / measured_pe["area_um2"]
    else:
        if int8_pe is None:
            raise FileNotFoundError(f"{power_path}: no MixPE PE power record (run 'make power' first)")
        scale = pe["area_um2"] / int8_pe["area_um2"]
        pe_pj, pe_idle = _pj(int8_pe) * scale, _pj(int8_pe, "sequential_mw") * scale
        leak_density = int8_pe["leakage_mw"] / int8_pe["area_um2"]
        estimated.append(f"PE energy: INT8 MixPE PE's measured energy x PE area ratio {scale:.2f}")
    per_row_pj = per_output_pj = 0.0
    idle_share = 0.0
    if grouped:
        act = power.get((design, "act_sum")) or power.get(("mixpe", "act_sum"))
        gdu_p = power.get((design, "gdu")) or power.get(("mixpe", "gdu"))
        if spec.activation == "int8":
            per_row_pj = _pj(act) / r_m
        else:
            per_row_pj = sum(b["area_um2"] for b in row_blocks) / r_ref * _pj(act) / act["area_um2"]
            estimated.append("act_sum and fp_align energy: INT8 MixPE's measured act_sum energy per um^2")
        # The GDUs' energy per um^2 as measured, on this configuration's GDU area per output element
        # (the lanes' accumulator memory dominates both; make power may predate the lanes).
        gdu_area = gdu["area_um2"] - (1 - storage_scale) * (memory["area_um2"] if memory else 0.0)
        area_per_output = gdu_area * reference.lanes / (r_ref * reference.cols)
        per_output_pj = _pj(gdu_p) / gdu_p["area_um2"] * area_per_output
        estimated.append(f"GDU energy: measured GDU energy per um^2 x this design's GDU area per output "
                         f"({area_per_output:.0f} um2, {reference.lanes} lanes at {reference.name})")
        idle_share = (act["sequential_mw"] + gdu_p["sequential_mw"]) / (act["power_mw"] + gdu_p["power_mw"])
    elif edge is not None:
        edge_p = power.get((design, "edge"))
        if edge_p:
            per_output_pj = _pj(edge_p) / (edge_p.get("instances", c_m) * r_m)
            idle_share = edge_p["sequential_mw"] / edge_p["power_mw"] if edge_p["power_mw"] else 0.0
    per_row_um2 = sum(b["area_um2"] for b in row_blocks) / r_ref
    return Costs(spec=spec, reference=reference, pe_um2=pe["area_um2"], per_row_um2=per_row_um2,
                 lane_datapath_um2=lane_datapath, storage_um2_per_word=storage_per_word,
                 clock_mhz=limiting["fmax_mhz"], limiting_block=limiting["block"], pe_pj=pe_pj, pe_idle_pj=pe_idle,
                 per_row_pj=per_row_pj, per_output_pj=per_output_pj, idle_share=idle_share,
                 leakage_mw_per_um2=leak_density, estimated=tuple(estimated))

