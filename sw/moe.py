"""MoE layers from Hugging Face transformers blocks: expert weights, routing, float forward, quantization.

Supported blocks (transformers 4.57.x, pinned in pyproject.toml because the expert weight layout
changed between major versions): ``MixtralSparseMoeBlock`` (experts ``w1`` gate, ``w3`` up, ``w2``
down), ``Qwen2MoeSparseMoeBlock`` (``gate_proj``/``up_proj``/``down_proj``, plus a shared expert
scaled by ``sigmoid(shared_expert_gate(x))``) and ``OlmoeSparseMoeBlock``. Every expert computes
``down(silu(gate(x)) * up(x))``; weights are ``nn.Linear`` matrices of shape (out, in), i.e. (N, K)
as the array wants them.

Routing reproduces transformers exactly (float32): ``logits = x @ router.T``,
``p = softmax(logits)`` in float32, the top-k of p, renormalised to sum 1 when the block does so
(Mixtral always; Qwen2-MoE and OLMoE with ``norm_topk_prob``).

:func:`tiny_block` builds seeded random blocks from tiny configs locally (nothing is downloaded).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from golden.operands import QuantizedWeights
from hw.config import MixPEConfig
from hw.errors import MixPEError
from sw.quantize import QUANT_METHODS, quantize
from sw.settings import MOE_FAMILIES

__all__ = ["MOE_FAMILIES", "MATRICES", "MoEError", "ExpertFFN", "MoELayer", "Routing", "QuantizedExpert",
           "QuantizedMoE", "read_moe_block", "tiny_block", "random_hidden", "route", "top_k_routing", "shared_expert_scale",
           "float_forward",
           "quantize_layer"]

#: The three GEMMs of an expert, in execution order (gate and up read x, down reads silu(gate) * up).
MATRICES = ("gate", "up", "down")


class MoEError(MixPEError, ValueError):
    """Invalid MoE input; the message names the parameter, its value and what is allowed."""


@dataclasses.dataclass(frozen=True)
class ExpertFFN:
    """One expert's real weights, float32: gate and up (F, H), down (H, F)."""
    gate: torch.Tensor
    up: torch.Tensor
    down: torch.Tensor

    def matrix(self, name: str) -> torch.Tensor:
        return getattr(self, name)


@dataclasses.dataclass(frozen=True)
class MoELayer:
    """A sparse MoE block in framework-neutral form.

    router: float32 (E, H); experts: E routed experts; shared_expert (Qwen2-MoE) runs on every
    token and is scaled by ``sigmoid(x @ shared_expert_gate.T)`` (shared_expert_gate float32 (1, H))."""
    family: str
    router: torch.Tensor
    experts: tuple[ExpertFFN, ...]
    top_k: int
    normalize_top_k: bool
    shared_expert: ExpertFFN | None = None
    shared_expert_gate: torch.Tensor | None = None

    @property
    def hidden(self) -> int:
        return self.router.shape[1]

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    def all_experts(self) -> tuple[ExpertFFN, ...]:
        """Routed experts, then the shared one (its index is ``num_experts``) if present."""
        return self.experts + ((self.shared_expert,) if self.shared_expert is not None else ())


@dataclasses.dataclass(frozen=True)
class Routing:
    """Router decisions for T tokens: ``selected`` int64 (T, k) expert ids, ``weights`` float32 (T, k)."""
    selected: torch.Tensor
    weights: torch.Tensor
    num_experts: int

    def tokens(self, expert: int) -> torch.Tensor:
        """Token indices routed to ``expert``, ascending, int64 (M_e,)."""
        return (self.selected == expert).any(dim=1).nonzero().flatten()

    def token_weights(self, expert: int) -> torch.Tensor:
        """Routing weights of :meth:`tokens` for ``expert``, float32 (M_e,)."""
        hit = self.selected == expert
        return (self.weights * hit).sum(dim=1)[hit.any(dim=1)]

    def counts(self) -> list[int]:
        """Tokens per expert."""
        return torch.bincount(self.selected.flatten(), minlength=self.num_experts).tolist()


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to(torch.float32).clone()


def _expert(name: str, mlp, gate: str, up: str, down: str) -> ExpertFFN:
    act = type(mlp.act_fn).__name__
    if act not in ("SiLU", "SiLUActivation"):
        raise MoEError(f"{name}.act_fn={act}: only SiLU experts are supported (silu(gate(x)) * up(x))")
    return ExpertFFN(gate=_float32(getattr(mlp, gate).weight), up=_float32(getattr(mlp, up).weight),
                     down=_float32(getattr(mlp, down).weight))


def read_moe_block(block) -> MoELayer:
    """The router and expert weights of a transformers sparse MoE block (see the module docstring)."""
    kind = type(block).__name__
    if kind == "MixtralSparseMoeBlock":
        experts = tuple(_expert(f"experts.{i}", mlp, "w1", "w3", "w2") for i, mlp in enumerate(block.experts))
        return MoELayer("mixtral", _float32(block.gate.weight), experts, block.top_k, True)
    if kind in ("Qwen2MoeSparseMoeBlock", "OlmoeSparseMoeBlock"):
        experts = tuple(_expert(f"experts.{i}", mlp, "gate_proj", "up_proj", "down_proj")
                        for i, mlp in enumerate(block.experts))
        shared = shared_gate = None
        if kind == "Qwen2MoeSparseMoeBlock":
            shared = _expert("shared_expert", block.shared_expert, "gate_proj", "up_proj", "down_proj")
            shared_gate = _float32(block.shared_expert_gate.weight)
        family = "qwen2_moe" if kind.startswith("Qwen2") else "olmoe"
        return MoELayer(family, _float32(block.gate.weight), experts, block.top_k, bool(block.norm_topk_prob),
                        shared, shared_gate)
    raise MoEError(f"block: {kind} is not supported; allowed: MixtralSparseMoeBlock, Qwen2MoeSparseMoeBlock, "
                   f"OlmoeSparseMoeBlock")


def tiny_block(family: str, *, hidden: int = 64, ffn: int = 128, experts: int = 4, top_k: int = 2,
               shared_ffn: int | None = None, seed: int = 0):
    """A seeded random transformers MoE block (float32, eval mode) of the given ``family``.

    ``ffn`` is the routed experts' intermediate size; ``shared_ffn`` the Qwen2-MoE shared expert's
    (default ``2 * ffn``). Qwen2-MoE and OLMoE renormalise the top-k weights here
    (``norm_topk_prob=True``), like Qwen1.5-MoE-A2.7B's config; OLMoE-1B-7B does not."""
    if family not in MOE_FAMILIES:
        raise MoEError(f"family={family!r}: allowed values are {MOE_FAMILIES}")
    for name, value in (("hidden", hidden), ("ffn", ffn), ("experts", experts), ("top_k", top_k)):
        if not isinstance(value, int) or value < 1:
            raise MoEError(f"{name}={value!r}: must be a positive integer")
    if top_k > experts:
        raise MoEError(f"top_k={top_k}: must not exceed experts={experts}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if family == "mixtral":
            from transformers import MixtralConfig
            from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
            block = MixtralSparseMoeBlock(MixtralConfig(hidden_size=hidden, intermediate_size=ffn,
                                                        num_local_experts=experts, num_experts_per_tok=top_k))
        elif family == "qwen2_moe":
            from transformers import Qwen2MoeConfig
            from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock
            block = Qwen2MoeSparseMoeBlock(Qwen2MoeConfig(
                hidden_size=hidden, moe_intermediate_size=ffn, shared_expert_intermediate_size=shared_ffn or 2 * ffn,
                num_experts=experts, num_experts_per_tok=top_k, norm_topk_prob=True))
        else:
            from transformers import OlmoeConfig
            from transformers.models.olmoe.modeling_olmoe import OlmoeSparseMoeBlock
            block = OlmoeSparseMoeBlock(OlmoeConfig(hidden_size=hidden, intermediate_size=ffn, num_experts=experts,
                                                    num_experts_per_tok=top_k, norm_topk_prob=True))
    return block.eval()


def random_hidden(tokens: int, hidden: int, seed: int) -> torch.Tensor:
    """Seeded standard-normal hidden states, float32 (tokens, hidden)."""
    if not isinstance(tokens, int) or tokens < 1:
        raise MoEError(f"tokens={tokens!r}: must be a positive integer")
    return torch.randn(tokens, hidden, generator=torch.Generator().manual_seed(seed))


def _check_hidden(layer: MoELayer, hidden: torch.Tensor) -> None:
    if not isinstance(hidden, torch.Tensor) or hidden.dtype != torch.float32 or hidden.dim() != 2 \
            or hidden.shape[1] != layer.hidden or hidden.shape[0] < 1:
        raise MoEError(f"hidden: got {getattr(hidden, 'dtype', type(hidden).__name__)} of shape "
                       f"{tuple(getattr(hidden, 'shape', ()))}; expected float32 (T >= 1, {layer.hidden})")


def route(layer: MoELayer, hidden: torch.Tensor) -> Routing:
    """Top-k routing of hidden float32 (T, H), bit-identical to the transformers block (float32)."""
    _check_hidden(layer, hidden)
    return top_k_routing(F.linear(hidden, layer.router), layer.top_k, layer.normalize_top_k)


def top_k_routing(logits: torch.Tensor, top_k: int, normalize: bool) -> Routing:
    """Routing from router logits float32 (T, E): softmax in float32, top-k, renormalised if ``normalize``."""
    probabilities = F.softmax(logits, dim=1, dtype=torch.float)
    weights, selected = torch.topk(probabilities, top_k, dim=-1)
    if normalize:
        weights /= weights.sum(dim=-1, keepdim=True)
    return Routing(selected=selected, weights=weights.to(logits.dtype), num_experts=logits.shape[1])


def shared_expert_scale(layer: MoELayer, hidden: torch.Tensor) -> torch.Tensor:
    """sigmoid(x @ shared_expert_gate.T), float64 (T,), for a layer with a shared expert."""
    return torch.sigmoid(hidden.double() @ layer.shared_expert_gate.double().T).flatten()


def float_forward(layer: MoELayer, hidden: torch.Tensor, routing: Routing) -> torch.Tensor:
    """The layer in float64 with the real (unquantized) weights and the given routing, (T, H)."""
    _check_hidden(layer, hidden)
    x = hidden.double()
    out = torch.zeros_like(x)
    for index, expert in enumerate(layer.experts):
        tokens = routing.tokens(index)
        if len(tokens):
            xe = x[tokens]
            h = F.silu(xe @ expert.gate.double().T) * (xe @ expert.up.double().T)
            out.index_add_(0, tokens, routing.token_weights(index).double()[:, None] * (h @ expert.down.double().T))
    if layer.shared_expert is not None:
        s = layer.shared_expert
        h = F.silu(x @ s.gate.double().T) * (x @ s.up.double().T)
        out += shared_expert_scale(layer, hidden)[:, None] * (h @ s.down.double().T)
    return out


@dataclasses.dataclass(frozen=True)
class QuantizedExpert:
    """An expert's three matrices as hardware operands (:class:`QuantizedWeights`)."""
    gate: QuantizedWeights
    up: QuantizedWeights
    down: QuantizedWeights

    def matrix(self, name: str) -> QuantizedWeights:
        return getattr(self, name)


@dataclasses.dataclass(frozen=True)
class QuantizedMoE:
    """Quantized experts: routed ones, then the shared expert (if any) at index ``num_experts``."""
    experts: tuple[QuantizedExpert, ...]
    method: str


def quantize_layer(config: MixPEConfig, layer: MoELayer, *, method: str = "rtn",
                   calibration: torch.Tensor | None = None) -> QuantizedMoE:
    """Quantize every expert matrix to ``config``'s weight bits and group size with :mod:`sw.quantize`.

    ``method="gptq"`` needs ``calibration`` hidden states float32 (T, H): gate and up of an expert
    are calibrated on the tokens routed to it (on all T tokens if none are), down on
    ``silu(gate(x)) * up(x)`` of the same tokens (float64, real weights)."""
    if method not in QUANT_METHODS:
        raise MoEError(f"method={method!r}: allowed values are {QUANT_METHODS}")
    if method == "gptq" and calibration is None:
        raise MoEError("calibration=None: method='gptq' needs calibration hidden states (T, H)")
    for dim, what in ((layer.hidden, "hidden"),) + tuple((e.gate.shape[0], f"ffn of expert {i}")
                                                         for i, e in enumerate(layer.all_experts())):
        if dim % config.group_size:
            raise MoEError(f"{what}={dim}: must be a multiple of group_size={config.group_size} (K of a GEMM)")
    routing = route(layer, calibration) if calibration is not None else None
    quantized = []
    for index, expert in enumerate(layer.all_experts()):
        x = h = None
        if routing is not None:
            tokens = routing.tokens(index) if index < layer.num_experts else torch.arange(len(calibration))
            x = calibration[tokens if len(tokens) else torch.arange(len(calibration))].double()
            h = F.silu(x @ expert.gate.double().T) * (x @ expert.up.double().T)
        mats = {}
        for name in MATRICES:
            data = h if name == "down" else x
            grouped = quantize(config, expert.matrix(name), data if method == "gptq" else None, method=method,
                               name=f"experts.{index}.{name}")
            mats[name] = grouped.to_quantized_weights(config)
        quantized.append(QuantizedExpert(**mats))
    return QuantizedMoE(experts=tuple(quantized), method=method)
