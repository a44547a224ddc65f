"""The workloads of ``mixpe compare``: the linear layers of one decoder layer, per phase, as GEMMs.

A GEMM is (name, m tokens, k, n, count); ``count`` equal GEMMs run one after the other (MoE
experts). Only the weight GEMMs are modelled (QKV, out-projection, FFN up/gate, FFN down), as in
the MixPE authors' simulator; attention's score and context products are not.

Routing (MoE): tokens spread uniformly over the experts (Mixtral's router is trained with a
load-balancing loss; the same assumption for the CMoE carving of SmolLM2): ``m * top_k``
assignments fill ``min(E, m * top_k)`` active experts as evenly as possible.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Gemm", "Model", "MODELS", "PHASES", "phase_tokens", "workload_gemms"]


@dataclasses.dataclass(frozen=True)
class Gemm:
    name: str
    m: int
    k: int
    n: int
    count: int = 1

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n * self.count


@dataclasses.dataclass(frozen=True)
class Model:
    """One decoder layer's shapes. ``kv_dim``: width of K and V (grouped-query attention);
    ``ffn_matrices`` 2 (up, down) or 3 (gate, up, down: gate and up fused into one GEMM);
    ``experts``/``top_k``: routed experts of an MoE FFN (0: dense); ``shared``: always-on experts."""
    name: str
    source: str
    hidden: int
    ffn: int
    kv_dim: int
    ffn_matrices: int = 2
    experts: int = 0
    top_k: int = 0
    shared: int = 0
    attention: bool = True


MODELS = {
    "opt-6.7b": Model("opt-6.7b", "OPT-6.7B (facebook/opt-6.7b config: hidden 4096, FFN 16384, 32 heads)",
                      hidden=4096, ffn=16384, kv_dim=4096),
    "llama-2-7b": Model("llama-2-7b", "LLaMA-2-7B (hidden 4096, SwiGLU FFN 11008, 32 heads, no GQA)",
                        hidden=4096, ffn=11008, kv_dim=4096, ffn_matrices=3),
    "mixtral-8x7b": Model("mixtral-8x7b", "Mixtral-8x7B expert layer only (hidden 4096, experts of SwiGLU 14336, "
                          "8 experts, top-2, uniform routing)", hidden=4096, ffn=14336, kv_dim=1024,
                          ffn_matrices=3, experts=8, top_k=2, attention=False),
    "smollm2-135m": Model("smollm2-135m", "SmolLM2-135M dense (hidden 576, SwiGLU 1536, 9 heads, 3 KV heads)",
                          hidden=576, ffn=1536, kv_dim=192, ffn_matrices=3),
    "smollm2-135m-cmoe": Model("smollm2-135m-cmoe", "SmolLM2-135M CMoE S2A6E16 (eval-smollm's carving: 16 experts "
                               "of 96 neurons, 2 shared, 6 of 14 routed active, uniform routing)",
                               hidden=576, ffn=1536, kv_dim=192, ffn_matrices=3, experts=14, top_k=6, shared=2),
}

#: phase -> (kind, tokens): prefill of a sequence, or one decode step of a batch.
PHASES = {"prefill-256": ("prefill", 256), "prefill-2048": ("prefill", 2048), "decode-1": ("decode", 1),
          "decode-8": ("decode", 8), "decode-64": ("decode", 64)}


def phase_tokens(phase: str) -> int:
    if phase not in PHASES:
        raise ValueError(f"phase={phase!r}: allowed phases are {list(PHASES)}")
    return PHASES[phase][1]


def workload_gemms(model: Model, phase: str) -> list[Gemm]:
    """The GEMMs of one decoder layer of ``model`` in ``phase``."""
    m = phase_tokens(phase)
    h = model.hidden
    up = (model.ffn_matrices - 1)  # fused gate + up, or up alone
    gemms = []
    if model.attention:
        gemms += [Gemm("qkv", m, h, h + 2 * model.kv_dim), Gemm("out", m, h, h)]
    if not model.experts:
        return gemms + [Gemm("ffn1", m, h, up * model.ffn), Gemm("ffn2", m, model.ffn, h)]
    expert = model.ffn // (model.experts + model.shared) if model.shared else model.ffn
    if model.shared:
        gemms += [Gemm("shared-ffn1", m, h, up * model.shared * expert), Gemm("shared-ffn2", m, model.shared * expert, h)]
    assignments = m * model.top_k
    active = min(model.experts, assignments)
    low, extra = divmod(assignments, active)
    for tokens, count in ((low + 1, extra), (low, active - extra)):
        if count and tokens:
            gemms += [Gemm("expert-ffn1", tokens, h, up * expert, count), Gemm("expert-ffn2", tokens, expert, h, count)]
    return gemms
