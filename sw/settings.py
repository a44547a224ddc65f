"""Choices, defaults and settings objects of the host-side commands, importable without torch.

``mixpe moe`` and ``mixpe eval-smollm`` build their options from these (``mixpe --help`` must
not import torch); :mod:`sw.moe`, :mod:`sw.moe_run`, :mod:`sw.quantize`, :mod:`sw.cmoe` and
:mod:`sw.eval_smollm` import them from here. Only :mod:`hw.config` and :mod:`hw.errors` are
imported at module level; what needs torch is imported where it runs.
"""

from __future__ import annotations

import dataclasses

from hw.config import MixPEConfig
from hw.errors import MixPEError

__all__ = ["SettingsError", "MOE_FAMILIES", "MOE_BACKENDS", "QUANT_METHODS", "DEFAULT_MOE_CONFIG", "MoESpec",
           "CMOE_ROUTERS", "DEFAULT_K_ACT", "SMOLLM_CONFIGS", "SMOLLM_ARRAY_ACTIVATIONS", "SMOLLM_METHODS",
           "EvalSettings"]


class SettingsError(MixPEError, ValueError):
    """A bad command setting; the message names it, its value and what is allowed."""


# -- MoE layers (``mixpe moe``) -------------------------------------------------------------------

#: transformers MoE blocks that :func:`sw.moe.tiny_block` builds and :func:`sw.moe.read_moe_block` reads.
MOE_FAMILIES = ("mixtral", "qwen2_moe", "olmoe")
#: Execution backends of :func:`sw.moe_run.run_moe`; ``rtl`` is implemented in :mod:`verif.backends`.
MOE_BACKENDS = ("golden", "model", "rtl")
#: Weight quantizers of :func:`sw.quantize.quantize`.
QUANT_METHODS = ("rtn", "gptq")
#: The array of ``make moe``: 16 x 16, W4A8, g = 32 (hidden 64 is two groups), four row groups of 4 rows.
DEFAULT_MOE_CONFIG = MixPEConfig(rows=16, cols=16, weight_bits=4, group_size=32, row_groups=4,
                                 name="w4a8-g32-16x16")


@dataclasses.dataclass(frozen=True)
class MoESpec:
    """A seeded tiny random transformers MoE layer and its input (``make moe``'s default: Mixtral-style,
    hidden 64, FFN 128, 4 experts, top-2, 32 tokens)."""
    family: str = "mixtral"
    hidden: int = 64
    ffn: int = 128
    experts: int = 4
    top_k: int = 2
    tokens: int = 32
    shared_ffn: int | None = None
    seed: int = 0

    def build(self):
        """(transformers block, its :class:`sw.moe.MoELayer`, hidden states float32 (tokens, hidden))."""
        from sw.moe import random_hidden, read_moe_block, tiny_block
        block = tiny_block(self.family, hidden=self.hidden, ffn=self.ffn, experts=self.experts, top_k=self.top_k,
                           shared_ffn=self.shared_ffn, seed=self.seed)
        return block, read_moe_block(block), random_hidden(self.tokens, self.hidden, self.seed + 1)


# -- SmolLM2 and CMoE (``mixpe eval-smollm``) -----------------------------------------------------

#: CMoE routers that carve (:func:`sw.cmoe.carve_model`): the paper's analytic one and the fitted one.
CMOE_ROUTERS = ("analytic", "fitted")
#: Neurons marked per token by ATopK (the paper's K_a).
DEFAULT_K_ACT = 10
#: Carvings of the default report: all 14 routed experts active (100 %, checks the carving), then 75 %, 50 % and 25 %.
SMOLLM_CONFIGS = ("S2A14E16", "S2A10E16", "S2A6E16", "S2A2E16")
#: Activation formats of the array rows.
SMOLLM_ARRAY_ACTIVATIONS = ("int8", "fp16")
#: Trained conversions (``--methods``): LaDiMo distillation (:mod:`sw.ladimo`), with a per-layer routing
#: policy (:mod:`sw.routing_policy`), CMoE's LoRA recovery of the fitted carving (:mod:`sw.lora`) and LaDiMo
#: followed by end-to-end distillation to the dense logits (:mod:`sw.e2e`).
SMOLLM_METHODS = ("ladimo", "ladimo+policy", "cmoe-lora", "ladimo+e2e")
#: End-to-end stage flags (``python -m sw.recovery --stage``, ``--e2e-stage``; parsed by
#: :func:`sw.recovery.parse_stage`): quantization-aware, INT8-aware, bfloat16 GEMMs, cosine or
#: linear decay to LR/10, N windows a step, the first N training windows only.
STAGE_FLAGS = ("qat", "int8", "bf16", "cos", "lin")
STAGE_SYNTAX = "STEPS:LR[:qat][:int8][:bf16][:cos|:lin][:wN][:eN]"


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What :func:`sw.eval_smollm.run_eval` evaluates and on which array."""
    eval_tokens: int = 256            # the window every row is evaluated on (and the prefill length)
    float_windows: int = 8            # float rows: perplexity_long over this many windows
    calibration_windows: int = 8      # CMoE calibration: windows of calibration_length tokens
    calibration_length: int = 512
    configs: tuple[str, ...] = SMOLLM_CONFIGS
    array_activations: tuple[str, ...] = SMOLLM_ARRAY_ACTIVATIONS
    routers: tuple[str, ...] = CMOE_ROUTERS
    rows: int = 16
    cols: int = 16
    row_groups: int = 1
    k_act: int = DEFAULT_K_ACT
    balance_steps: int = 0            # CMoE bias updates per layer on the calibration tokens (0: training-free)
    bias_speed: float = 3e-6          # their step (the paper's 1e-3 oscillates here, see sw/cmoe.py)
    workers: int = 2
    rtl_tiles: int = 32               # per activation and source (dense, one carving): tiles checked under Verilator
    rtl_seed: int = 2026
    rtl_tokens: int = 64              # length of the forward pass the RTL tiles are sampled from
    methods: tuple[str, ...] = ()     # trained conversions of every sparse carving (SMOLLM_METHODS; none by default)
    train_windows: int = 32           # their training text: windows of calibration_length tokens
    distill_steps: int = 60           # LaDiMo Adam steps per layer
    lora_windows: int = 16            # CMoE LoRA: training windows (one Adam step each)
    gguf: str | None = None           # a GGUF of the same model (e.g. Q4_K_M): its dense rows too (sw/smollm_gguf.py)
    e2e_stages: tuple[str, ...] = ()  # ladimo+e2e: end-to-end stages (STAGE_SYNTAX) on all the
    #                                   training windows (sw.recovery.e2e_stages); none: one float32 stage

    def __post_init__(self):
        if not isinstance(self.rtl_tiles, int) or self.rtl_tiles < 0:
            raise SettingsError(f"rtl_tiles={self.rtl_tiles!r}: must be an integer >= 0 (0 skips the RTL check)")
        for field in ("eval_tokens", "float_windows", "calibration_windows", "calibration_length", "workers",
                      "rows", "cols", "row_groups", "rtl_tokens", "train_windows", "distill_steps", "lora_windows"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < (2 if field in ("eval_tokens", "calibration_length") else 1):
                raise SettingsError(f"{field}={value!r}: must be a positive integer"
                                    f"{' >= 2' if field in ('eval_tokens', 'calibration_length') else ''}")
        if any(method not in SMOLLM_METHODS for method in self.methods):
            raise SettingsError(f"methods={self.methods!r}: choose from {SMOLLM_METHODS}")
        if self.e2e_stages:
            if "ladimo+e2e" not in self.methods:
                raise SettingsError(f"e2e_stages={self.e2e_stages!r}: train the method ladimo+e2e, which is not in "
                                    f"methods={self.methods!r}")
            import argparse
            from sw.recovery import parse_stage      # torch: only when settings are made
            for stage in self.e2e_stages:
                try:
                    parse_stage(stage)
                except argparse.ArgumentTypeError as error:
                    raise SettingsError(f"e2e_stages: {error}") from None
        if not self.routers or any(router not in CMOE_ROUTERS for router in self.routers):
            raise SettingsError(f"routers={self.routers!r}: choose one or more of {CMOE_ROUTERS}")
        for activation in self.array_activations:
            if activation not in SMOLLM_ARRAY_ACTIVATIONS:
                raise SettingsError(f"array_activations: {activation!r} is not one of {SMOLLM_ARRAY_ACTIVATIONS}")
        from sw.cmoe import CMoEConfig               # torch: only when settings are made, not for --help
        for name in self.configs:
            CMoEConfig.parse(name)
