"""Test harness of the FP32 units: one instance of every distinct FP32 unit the GDU of a
configuration builds, with the GDU's parameters, each with its own input ports."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.config import MixPEConfig
from hw.fp_add import Float32Adder
from hw.fp_common import delay
from hw.fp_int_to_float import IntToFloat32
from hw.fp_mul import Float32Multiplier
from hw.fp_stages import unit_latency
from hw.fp_widen import WidenToFloat32

__all__ = ["FP32Units", "unit_specs", "harness_latency"]


def unit_specs(config: MixPEConfig) -> dict[str, tuple]:
    """Unit name -> (kind, parameter) of the distinct FP32 units in the GDU of ``config``: the
    int-to-float converters of D (``dsum_bits``) and, with float offsets, of A (``asum_bits``);
    the FP16 widening; the scale multiplier (with ``exp_offset`` for floating-point activations)
    and the token multiplier when its parameters differ; the adder (accumulation, term)."""
    specs = {"to_float": ("int_to_float", config.dsum_bits)}
    if config.float_offset and config.asum_bits != config.dsum_bits:
        specs["asum_to_float"] = ("int_to_float", config.asum_bits)
    specs["widen"] = ("widen", 16)
    specs["scale_mul"] = ("multiplier", config.lsb_exponent_bits)
    if not config.fp_activation and config.lsb_exponent_bits:
        specs["token_mul"] = ("multiplier", 0)
    specs["adder"] = ("adder", 0)
    return specs


def harness_latency(config: MixPEConfig) -> int:
    """Cycles from a unit's inputs to its registered result in :class:`FP32Units`: the slowest unit's
    latency + 1."""
    stages = config.gdu_unit_stages
    latencies = [unit_latency(kind, stages, parameter) if kind == "int_to_float" else
                 unit_latency(kind, stages) if kind in ("multiplier", "adder") else 0
                 for kind, parameter in unit_specs(config).values()]
    return max(latencies) + 1


def _unit(kind: str, parameter: int, stages: int):
    if kind == "int_to_float":
        return IntToFloat32(parameter, stages=stages)
    if kind == "widen":
        return WidenToFloat32(5, 10)
    if kind == "multiplier":
        return Float32Multiplier(parameter, stages=stages)
    return Float32Adder(stages=stages)


class FP32Units(wiring.Component):
    """Every unit of :func:`unit_specs`, pipelined ``config.gdu_unit_stages`` deep as in the GDU.
    Unit ``u``'s inputs are the ports ``u_<input>`` (``u_i``; ``u_a``, ``u_b`` and, with an offset,
    ``u_exp_offset``), its result ``u_o``, registered so that every result appears ``latency``
    cycles (the slowest unit's latency + 1) after its inputs."""

    def __init__(self, config: MixPEConfig):
        stages = config.gdu_unit_stages
        self._units = {name: _unit(kind, parameter, stages) for name, (kind, parameter) in unit_specs(config).items()}
        self.latency = harness_latency(config)
        members = {}
        for name, unit in self._units.items():
            for port, member in unit.signature.members.items():
                members[f"{name}_{port}"] = member
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for name, unit in self._units.items():
            m.submodules[name] = unit
            for port, member in unit.signature.members.items():
                if member.flow == In:
                    m.d.comb += getattr(unit, port).eq(getattr(self, f"{name}_{port}"))
            m.d.comb += getattr(self, f"{name}_o").eq(delay(m, unit.o, self.latency - unit.latency, f"{name}_o"))
        return m
