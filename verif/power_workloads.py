"""Workloads of the power flow: the same R x C output tiles for every design, and each design's
PE operand streams built from them.

Two workloads, each a list of tiles (R tokens x C output channels over the GEMM's whole K):

``smollm2``
    Tiles sampled (seeded) from the GEMMs of a SmolLM2-135M forward pass, as
    :mod:`verif.smollm_tiles` samples them: the activations each projection really receives and its
    real weights. On a Q4_1 core (``zero_mode="float_offset"``, g dividing 32) the weights are the
    checkpoint's codes, d and m; on any other core they are the dequantized checkpoint weights
    re-quantized round-to-nearest to the core's group size and zero points
    (:func:`golden.operands.quantize_weights_rtn`). INT8 activations are quantized per token
    (:func:`golden.operands.quantize_activations_int8`), FP16 ones rounded to FP16.
``uniform``
    :func:`golden.operands.random_operands` of kind ``uniform`` (seeded), K = ``uniform_k``.

Every design sees the same real values in its own operand format (:func:`design_operands`).
"""

from __future__ import annotations

import dataclasses

import torch

from golden.fp32 import fp16_bits
from golden.operands import QuantizedWeights, quantize_activations_int8, quantize_weights_rtn, random_operands
from hw.config import MixPEConfig
from hw.errors import MixPEError
from verif.gate_level import Port, Stimulus
from verif.power_names import WORKLOADS

__all__ = ["WORKLOADS", "WorkloadError", "TileOperands", "Workload", "make_workload", "design_operands", "pe_stimulus",
           "RESET_CYCLES"]

class WorkloadError(MixPEError, ValueError):
    """A workload or its PE streams cannot be built as asked; the message names the parameter."""


#: Cycles with ``rst`` high at the start of every block stimulus (simulated, not measured).
RESET_CYCLES = 2
#: SmolLM2 forward pass the tiles are sampled from: evaluation text, this many tokens, these layers.
SMOLLM_TOKENS = 32
SMOLLM_LAYERS = 2


@dataclasses.dataclass
class TileOperands:
    """One R x C output tile over all of K.

    ``x`` (R, K) and ``act_scale`` (R,) or None, ``weights`` (C, K): the golden model's operands for
    the configuration (INT8 codes, or raw codes of the floating-point format). ``x_float`` (R, K)
    and ``w_float`` (C, K) are the real float32 values they stand for (activations as quantized or
    rounded, weights as dequantized). ``useful_rows`` x ``useful_cols`` outputs are real (not padding)."""
    x: torch.Tensor
    act_scale: torch.Tensor | None
    weights: QuantizedWeights
    x_float: torch.Tensor
    w_float: torch.Tensor
    useful_rows: int
    useful_cols: int
    origin: str

    @property
    def k(self) -> int:
        return self.x.shape[1]

    @property
    def useful_macs(self) -> int:
        return self.useful_rows * self.useful_cols * self.k


@dataclasses.dataclass
class Workload:
    name: str
    description: str
    tiles: list[TileOperands]

    @property
    def useful_macs(self) -> int:
        return sum(tile.useful_macs for tile in self.tiles)


def _dequantized(config: MixPEConfig, weights: QuantizedWeights) -> torch.Tensor:
    """float32 (N, K) weights the quantized operands stand for: s*(q - z), or d*q + m (Q4_1)."""
    g = config.group_size
    scales = weights.scales.float().repeat_interleave(g, dim=1)
    if config.float_offset:
        return weights.codes.float() * scales + weights.offsets.float().repeat_interleave(g, dim=1)
    return (weights.codes - weights.zeros.repeat_interleave(g, dim=1)).float() * scales


def _activation_values(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None) -> torch.Tensor:
    if not config.fp_activation:
        return x.float() * act_scale[:, None]
    from golden.fp_activations import decode_activations
    return decode_activations(config, x).float()


def _activation_operands(config: MixPEConfig, x_float: torch.Tensor):
    """(x operand, act_scale) of real activations: per-token INT8, or the raw codes of the FP format."""
    if not config.fp_activation:
        return quantize_activations_int8(x_float)
    from golden.fp_activations import encode_activations
    return encode_activations(config, x_float), None


def _pad(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    if tensor.shape[0] >= rows:
        return tensor
    return torch.cat([tensor, tensor.new_zeros(rows - tensor.shape[0], *tensor.shape[1:])])


def _smollm_tiles(config: MixPEConfig, count: int, seed: int) -> list[TileOperands]:
    import random

    from sw.corpus import EVALUATION_MODULES, corpus_text, token_windows
    from sw.smollm import forward, load_smollm, load_tokenizer
    from verif.smollm_tiles import RecordingLinear
    if config.activation not in ("int8", "fp16"):
        raise WorkloadError(f"activation={config.activation!r}: the smollm2 workload has INT8 or FP16 activations; "
                         f"use --workloads uniform for other formats")
    tokenizer = load_tokenizer()
    ids = tokenizer.encode(corpus_text(EVALUATION_MODULES[:1])).ids
    tokens = token_windows(ids, SMOLLM_TOKENS, 1, "held-out")[0]
    model = load_smollm(layers=SMOLLM_LAYERS)
    recorder = RecordingLinear()
    with torch.no_grad():
        forward(model, tokens, recorder)
    native = config.float_offset and 32 % config.group_size == 0 and config.weight_bits >= 4
    rng = random.Random(seed)
    tiles = []
    for index in sorted(rng.choices(range(len(recorder.inputs)), k=count)):
        stage, x, weight = recorder.inputs[index]
        n, k = weight.shape
        row0 = rng.randrange(max(1, x.shape[0] - config.rows + 1))
        col0 = rng.randrange(max(1, n - config.cols + 1))
        block = weight.rows(torch.arange(col0, min(n, col0 + config.cols)), weight.name)
        depth = k - k % config.group_size  # whole groups of the core (K = 576 has 4.5 groups of 128)
        x_rows = x[row0:row0 + config.rows, :depth].float()
        rows, cols = x_rows.shape[0], block.shape[0]
        x_op, act_scale = _activation_operands(config, _pad(x_rows, config.rows))
        if native:
            weights = block.operands(config)
        else:
            weights = quantize_weights_rtn(config, _pad(block.dense[:, :depth].float(), config.cols))
        if weights.codes.shape[0] < config.cols:
            weights = QuantizedWeights(*(None if t is None else _pad(t, config.cols) for t in
                                         (weights.codes, weights.scales, weights.zeros, weights.offsets)))
        tiles.append(TileOperands(x_op, act_scale, weights, _activation_values(config, x_op, act_scale),
                                  _dequantized(config, weights), rows, cols,
                                  f"{weight.name} ({stage}) rows {row0}+ cols {col0}+ K={depth}"))
    return tiles


def make_workload(config: MixPEConfig, name: str, *, count: int, seed: int, uniform_k: int = 512) -> Workload:
    """Workload ``name`` (:data:`WORKLOADS`) of ``count`` tiles for ``config``, seeded."""
    if name not in WORKLOADS:
        raise WorkloadError(f"workload={name!r}: allowed workloads are {WORKLOADS}")
    if not isinstance(count, int) or count < 1:
        raise WorkloadError(f"count={count!r}: the number of tiles must be a positive integer")
    if name == "smollm2":
        tiles = _smollm_tiles(config, count, seed)
        requantized = "" if config.float_offset and 32 % config.group_size == 0 else \
            (f", weights re-quantized RTN to g={config.group_size} ({config.zero_mode} zero points), "
             f"K cut to whole groups")
        description = (f"{count} tiles sampled (seed {seed}) from the GEMMs of SmolLM2-135M Q4_1 layers "
                       f"0-{SMOLLM_LAYERS - 1} on {SMOLLM_TOKENS} tokens of held-out text{requantized}")
        return Workload(name, description, tiles)
    if uniform_k % config.group_size:
        raise WorkloadError(f"uniform_k={uniform_k}: must be a multiple of group_size={config.group_size}")
    tiles = []
    for index in range(count):
        x, act_scale, weights = random_operands(config, config.rows, config.cols, uniform_k, seed + index, "uniform")
        tiles.append(TileOperands(x, act_scale, weights, _activation_values(config, x, act_scale),
                                  _dequantized(config, weights), config.rows, config.cols,
                                  f"uniform seed {seed + index} K={uniform_k}"))
    return Workload("uniform", f"{count} tiles of uniform random operands (seed {seed}), K={uniform_k}", tiles)


# ---- per-design PE operands ---------------------------------------------------------------------

@dataclasses.dataclass
class PEOperands:
    """One tile's operands as a design's PE receives them: ``row_ports[name]`` (R, K) ints for the
    ports fed from the left (activations), ``col_ports[name]`` (C, K) for those fed from the top
    (weights and their side operands), ``group_last`` (K,) the steps after which the PE drains."""
    row_ports: dict[str, torch.Tensor]
    col_ports: dict[str, torch.Tensor]
    group_last: torch.Tensor


def design_operands(design: str, config: MixPEConfig, tile: TileOperands) -> PEOperands:
    """The PE operands of ``design`` (see :mod:`hw.baselines`) for ``tile``.

    * ``mixpe``, ``int4x8_mult``: the PE's integer activation (INT8, or FP aligned to the group's
      shared exponent) and the b-bit code; drain per group.
    * ``int8_mult``: INT8 activation and the code as an INT8 weight (the paper's conventional
      W4A8 PE); drain per group (the same act_sum and GDUs dequantize its group sums).
    * ``dequant_fp``: the raw activation, the code, its group's FP16 scale and integer zero point
      (0 on a Q4_1 core, whose offsets this PE has no port for); FP32 accumulation over all of K.
    * ``fp16_fp16``: the real activation and dequantized weight rounded to FP16; over all of K."""
    k, g = tile.k, config.group_size
    steps = torch.arange(k)
    per_group = (steps % g) == g - 1
    whole_k = steps == k - 1
    codes = tile.weights.codes
    if design in ("mixpe", "int4x8_mult", "int8_mult"):
        x = tile.x
        if config.fp_activation:
            if design == "int8_mult":
                raise WorkloadError(f"design='int8_mult' needs INT8 activations, not {config.activation!r}")
            from golden.fp_activations import align_activations, shared_exponents
            e_max = shared_exponents(config, tile.x)
            x = align_activations(config, tile.x, e_max)[0]
        return PEOperands({"x": x}, {"w": codes}, per_group)
    if design == "dequant_fp":
        group = steps // g
        scales = fp16_bits(tile.weights.scales)[:, group]
        zeros = torch.zeros_like(codes) if config.float_offset else tile.weights.zeros[:, group]
        return PEOperands({"x": tile.x}, {"w": codes, "scale": scales, "zero": zeros}, whole_k)
    if design == "fp16_fp16":
        return PEOperands({"x": fp16_bits(tile.x_float.half())}, {"w": fp16_bits(tile.w_float.half())}, whole_k)
    raise WorkloadError(f"design={design!r}: no PE operands defined")


def pe_stimulus(ports: list[Port], operands: list[PEOperands], schedule: list[tuple[int, int] | None],
                positions: list[tuple[int, int]]) -> Stimulus:
    """The input stream of one PE at each of ``positions`` (row, column), one after the other, over
    the run ``schedule``: per cycle the (tile, step) the array issues, or None (the PE's inputs
    then hold their values with ``valid`` low). The stream starts with :data:`RESET_CYCLES` of reset."""
    known = {"rst", "valid", "group_last"} | set(operands[0].row_ports) | set(operands[0].col_ports)
    unknown = [port.name for port in ports if port.name not in known]
    if unknown:
        raise WorkloadError(f"PE ports {unknown} have no operand stream (known: {sorted(known)})")
    values = {port.name: [1 if port.name == "rst" else 0] * RESET_CYCLES for port in ports}
    held = {name: 0 for name in values}
    for row, col in positions:
        for step in schedule:
            held["valid"] = int(step is not None)
            held["group_last"] = 0
            if step is not None:
                tile, k = step
                pe = operands[tile]
                held["group_last"] = int(pe.group_last[k])
                for name, tensor in pe.row_ports.items():
                    held[name] = int(tensor[row, k])
                for name, tensor in pe.col_ports.items():
                    held[name] = int(tensor[col, k])
            for name in values:
                values[name].append(held[name])
    return Stimulus(list(ports), values, skip=RESET_CYCLES)
