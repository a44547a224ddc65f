"""CMoE: carve a dense SwiGLU FFN into a Mixture-of-Experts without training (Pei et al., arXiv
2502.04416; public code ``JarvisPei/CMoE``, ``CMoE_utils.py`` / ``CMoE_model.py``), on Q4_1 weights.

Per layer, on T calibration tokens x (T, H) (the normalized FFN input), with D neurons, N experts
of m = D / N neurons, S shared and A active routed experts (configuration ``S<S>A<A>E<N>``):

1. activation scores ``h = silu(x^ g^T) * (x^ u^T)`` (T, D) with x^, g^, u^ the L2-normalized tokens
   and gate/up rows (:func:`activation_scores`);
2. ATopK markers: per token the ``k_act`` neurons of largest |h| are marked; activation rate
   ``mu_j`` = fraction of tokens marking neuron j (:func:`atopk_markers`);
3. shared neurons: the S*m highest rates (ties: lower index first);
4. routed experts: the remaining D - S*m neurons are split into N - S clusters of exactly m by one
   balanced assignment (:func:`balanced_assignment`): seeds are the marker columns of the N - S
   highest-rate remaining neurons, the cost is the L1 (Hamming) distance between marker columns,
   each seed's cost column is repeated m times and ``scipy.optimize.linear_sum_assignment`` solves
   the square problem (the paper uses ``lap.lapjv`` on the same matrix);
5. representative neuron per expert: the member closest (L1) to the mean marker column of its
   cluster (:func:`representatives`);
6. analytic router: ``s_i = |(x . u^_rep_i) * silu(x . g^_rep_i)|`` with the normalized gate/up rows of
   the representatives (x not normalized), ``p = softmax(s)``, top-A of ``p + bias``; every selected
   expert has weight 1 (the paper's learnable ``extra_scale`` is initialised to zero);
7. load-balancing bias (DeepSeek-V3 style, only changes the selection): ``bias -= gamma`` for experts
   above the mean load and ``+= gamma`` below (:meth:`CarvedLayer.update_bias`); CMoE applies it
   during fine-tuning, here optionally for ``balance_steps`` passes over the calibration tokens.
   The step must be small against the spread of p: for SmolLM2 (H = 576) the router scores are
   small and p is nearly uniform (differences ~1e-3), so the paper's gamma = 1e-3 oscillates and
   ~3e-6 balances.

Layers are carved in order, each on the outputs of the already carved ones (:func:`carve_model`),
with dequantized weights in the model's host precision (float64 in ``make eval-smollm``, see
:mod:`sw.smollm`); the statistics (activation scores, router scores and probabilities, expert
output norms) are computed in float64 whatever the input dtype, and every choice breaks ties by
index: top-k keeps the lowest indices among equal values (:func:`top_indices`), representatives the
lowest index at equal (integer) distance. A carving therefore does not depend on the CPU's kernels.

Routers (``router=``): ``"analytic"`` is the paper's (step 6). ``"fitted"`` is an extension, also
training-free: a linear router ``s = [x, 1] W`` ((H + 1) x (N - S), the analytic router's cost)
whose W is the ridge least-squares fit (:func:`fit_router`), on the layer's calibration tokens, of
each routed expert's true output norm ``||expert_e(x)||``; top-A of ``s + bias``. Two diagnostics
change only the selection of an existing carving (:class:`MoEFFN` ``selection=``), float rows only:
``"oracle"`` picks the A experts with the largest true output norm (every expert computed on the
host: a ceiling for any router on this partition, not a deployable one), ``"random"`` picks A
uniformly (seeded): the floor a router must beat.

Expert weights (:class:`MoEFFN`): gate and up of an expert are whole rows of the dense Q4_1 gate and
up, so they keep their codes, d and m exactly. Down's expert slice is a set of K columns scattered
over the dense down's groups of 32, which the array cannot run (groups must be contiguous along K).
``down_mode="requantized"`` (the default, and the only one that runs on the array) re-quantizes each
expert's dequantized down columns to Q4_1 with llama.cpp's own quantizer (``gguf.quants``),
groups of 32 along the expert's K (m must then be a multiple of 32); ``down_mode="exact"`` keeps the
dequantized columns in float (float backend only), which makes the carved FFN with every expert
active equal to the dense one up to summation order.
"""

from __future__ import annotations

import dataclasses
import re
import time

import numpy as np
import torch
import torch.nn.functional as F

from hw.errors import MixPEError
from sw.checkpoint import import_gguf
from sw.settings import CMOE_ROUTERS as ROUTERS, DEFAULT_K_ACT
from sw.smollm import FloatLinear, Layer, Linear, QLinear, SmolLM, attention_block, rms_norm, swiglu

__all__ = ["CMoEError", "CMoEConfig", "CarvedLayer", "CarvedModel", "MoEFFN", "DOWN_MODES", "DEFAULT_K_ACT",
           "DEFAULT_BIAS_SPEED", "activation_scores", "atopk_markers", "balanced_assignment", "representatives",
           "carve_layer", "carve_model", "requantize_q4_1", "fit_router", "expert_output_norms", "ROUTERS",
           "SELECTIONS", "top_indices"]

#: Step of the load-balancing bias (the paper's gamma, ``--bias-speed`` default).
DEFAULT_BIAS_SPEED = 1e-3
DOWN_MODES = ("requantized", "exact")
SELECTIONS = ("oracle", "random")
#: Ridge of :func:`fit_router`, relative to the mean squared norm of the regressors [x, 1].
ROUTER_RIDGE = 1e-3
Q4_1_BLOCK = 32
_NAME = re.compile(r"^S(\d+)A(\d+)E(\d+)$")


class CMoEError(MixPEError, ValueError):
    """A bad carving parameter; the message names it, its value and what is allowed."""


@dataclasses.dataclass(frozen=True)
class CMoEConfig:
    """S shared experts (always on), A active routed experts per token, N experts in all."""
    shared: int
    active: int
    experts: int

    def __post_init__(self):
        for field in ("shared", "active", "experts"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise CMoEError(f"{field}={value!r}: must be a non-negative integer")
        if self.experts < 2:
            raise CMoEError(f"experts={self.experts}: need at least 2 experts")
        if not 0 <= self.shared < self.experts:
            raise CMoEError(f"shared={self.shared}: must be in [0, experts - 1] = [0, {self.experts - 1}] "
                            f"(at least one routed expert)")
        if not 1 <= self.active <= self.routed:
            raise CMoEError(f"active={self.active}: must be in [1, experts - shared] = [1, {self.routed}]")

    @classmethod
    def parse(cls, name: str) -> CMoEConfig:
        """``"S2A2E16"`` -> 2 shared, 2 active routed, 16 experts."""
        match = _NAME.match(name) if isinstance(name, str) else None
        if match is None:
            raise CMoEError(f"CMoE configuration {name!r}: expected 'S<shared>A<active>E<experts>', e.g. 'S2A2E16'")
        return cls(*(int(v) for v in match.groups()))

    @property
    def name(self) -> str:
        return f"S{self.shared}A{self.active}E{self.experts}"

    @property
    def routed(self) -> int:
        return self.experts - self.shared

    @property
    def activation_ratio(self) -> float:
        """Fraction of FFN neurons computed per token, (S + A) / N."""
        return (self.shared + self.active) / self.experts

    def expert_width(self, ffn: int) -> int:
        """m = D / N neurons per expert."""
        if ffn % self.experts:
            raise CMoEError(f"experts={self.experts}: must divide the FFN width {ffn} (equal-size experts)")
        return ffn // self.experts

    def check_requantizable(self, ffn: int) -> None:
        """Raise unless every expert's down (m = D / N columns) splits into whole Q4_1 blocks of 32,
        as ``down_mode="requantized"`` needs."""
        width = self.expert_width(ffn)
        if width % Q4_1_BLOCK:
            raise CMoEError(f"{self.name}: experts of D/N = {ffn}/{self.experts} = {width} neurons; a re-quantized "
                            f"down needs a multiple of {Q4_1_BLOCK} (experts must divide {ffn // Q4_1_BLOCK})")


# -- the carving steps -----------------------------------------------------------------------

def top_indices(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices int64 (..., k) of the k largest values along the last dimension, largest first; equal
    values by increasing index (``torch.topk`` leaves ties in an order that depends on the kernel)."""
    return torch.argsort(values, dim=-1, descending=True, stable=True)[..., :k]


def activation_scores(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor) -> torch.Tensor:
    """Normalized SwiGLU activations float64 (T, D) of tokens x (T, H) for gate/up weights (D, H)."""
    xn = F.normalize(x.double(), dim=-1)
    return F.silu(xn @ F.normalize(w_gate.double(), dim=-1).T) * (xn @ F.normalize(w_up.double(), dim=-1).T)


def atopk_markers(scores: torch.Tensor, k_act: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(markers bool (T, D): the k_act largest |score| per token, ties by index; rates float32 (D,))."""
    tokens, neurons = scores.shape
    if not isinstance(k_act, int) or not 1 <= k_act <= neurons:
        raise CMoEError(f"k_act={k_act!r}: must be an integer in [1, {neurons}] (neurons per layer)")
    top = top_indices(scores.abs(), k_act)
    markers = torch.zeros(tokens, neurons, dtype=torch.bool).scatter_(1, top, True)
    return markers, markers.float().mean(dim=0)


def _by_rate(rates: torch.Tensor) -> torch.Tensor:
    """Indices by decreasing rate, ties by increasing index."""
    return torch.argsort(rates, descending=True, stable=True)


def balanced_assignment(markers: torch.Tensor, seeds: torch.Tensor, size: int) -> torch.Tensor:
    """Cluster label (n,) int64 of each of n neurons (marker columns of ``markers`` (T, n)) into
    ``len(seeds)`` clusters of exactly ``size`` (n = len(seeds) * size), minimizing the total L1
    distance to the seed columns (a linear assignment with each seed repeated ``size`` times)."""
    from scipy.optimize import linear_sum_assignment
    columns = markers.T.float()
    n = columns.shape[0]
    if n != len(seeds) * size:
        raise CMoEError(f"size={size}: {len(seeds)} clusters of {size} need {len(seeds) * size} neurons, got {n}")
    cost = torch.cdist(columns, columns[seeds], p=1)                     # (n, clusters), exact integer counts
    rows, slots = linear_sum_assignment(cost.repeat_interleave(size, dim=1).double().numpy())
    labels = torch.empty(n, dtype=torch.int64)
    labels[torch.from_numpy(rows)] = torch.from_numpy(slots // size).long()
    return labels


def representatives(markers: torch.Tensor, labels: torch.Tensor, clusters: int) -> torch.Tensor:
    """Per cluster, the member (index into the n columns of ``markers`` (T, n)) whose marker column
    is L1-closest to the cluster's mean column (ties: lowest index). Distances are compared exactly,
    in integers scaled by the cluster size: ``sum_t |size * column_t - count_t|``."""
    columns = markers.T.long()
    chosen = []
    for cluster in range(clusters):
        members = (labels == cluster).nonzero().squeeze(1)
        counts = columns[members].sum(dim=0, keepdim=True)
        distance = (columns[members] * len(members) - counts).abs().sum(dim=1)
        chosen.append(int(members[int(torch.argmin(distance))]))       # argmin: the first of equal minima
    return torch.tensor(chosen, dtype=torch.int64)


@dataclasses.dataclass(eq=False)
class CarvedLayer:
    """The carving of one FFN of D neurons (indices into the dense FFN) and its router.

    shared (S*m,), experts (N-S, m) ascending per expert, representative (N-S,) neuron ids;
    router_gate, router_up float64 (N-S, H) normalized gate/up rows of the representatives;
    bias float32 (N-S,) load-balancing bias; rates float32 (D,) ATopK activation rates;
    router_weight float32 (H+1, N-S) of the fitted router (None: the analytic router);
    extra_scale (N-S,) CMoE's learnable routing scale: a selected expert's output is weighted
    ``1 + p_e * extra_scale_e`` (None: weight 1, as carved; set by :mod:`sw.lora`)."""
    shared: torch.Tensor
    experts: torch.Tensor
    representative: torch.Tensor
    router_gate: torch.Tensor
    router_up: torch.Tensor
    bias: torch.Tensor
    rates: torch.Tensor
    router_weight: torch.Tensor | None = None
    extra_scale: torch.Tensor | None = None

    @property
    def router(self) -> str:
        return "analytic" if self.router_weight is None else "fitted"

    def route(self, x: torch.Tensor, active: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(selected experts int64 (T, A), router probabilities (T, N-S) in x's dtype) for x (T, H);
        scores and the top-A in float64, ties to the lower expert index."""
        wide = x.double()
        if self.router_weight is None:
            scores = ((wide @ self.router_up.double().T) * F.silu(wide @ self.router_gate.double().T)).abs()
            probs = scores.softmax(dim=-1)
            return top_indices(probs + self.bias.double(), active), probs.to(x.dtype)
        weight = self.router_weight.double()
        scores = wide @ weight[:-1] + weight[-1]
        return top_indices(scores + self.bias.double(), active), scores.softmax(dim=-1).to(x.dtype)

    def loads(self, x: torch.Tensor, active: int) -> torch.Tensor:
        """Tokens routed to each routed expert, int64 (N-S,)."""
        selected, _ = self.route(x, active)
        return torch.bincount(selected.flatten(), minlength=self.experts.shape[0])

    def update_bias(self, counts: torch.Tensor, speed: float) -> None:
        """The paper's ``update_bias``: experts above the mean load get ``bias -= speed``, below ``+= speed``."""
        mean = counts.float().mean()
        self.bias = self.bias - speed * (counts.float() > mean).float() + speed * (counts.float() < mean).float()


def carve_layer(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, config: CMoEConfig,
                k_act: int = DEFAULT_K_ACT) -> CarvedLayer:
    """Carve one FFN with gate/up weights (D, H) on calibration tokens x (T, H) (steps 1-6)."""
    neurons = w_gate.shape[0]
    width = config.expert_width(neurons)
    markers, rates = atopk_markers(activation_scores(x, w_gate, w_up), k_act)
    order = _by_rate(rates)
    shared = order[:config.shared * width].sort().values
    remaining = order[config.shared * width:].sort().values                # routed neurons, ascending
    local_rates = rates[remaining]
    seeds = _by_rate(local_rates)[:config.routed]
    labels = balanced_assignment(markers[:, remaining], seeds, width)
    reps = representatives(markers[:, remaining], labels, config.routed)
    experts = torch.stack([remaining[labels == c] for c in range(config.routed)])   # ascending within each
    representative = remaining[reps]
    return CarvedLayer(shared=shared, experts=experts, representative=representative,
                       router_gate=F.normalize(w_gate[representative].double(), dim=-1),
                       router_up=F.normalize(w_up[representative].double(), dim=-1),
                       bias=torch.zeros(config.routed), rates=rates)


def expert_output_norms(x: torch.Tensor, experts: list[tuple[QLinear, QLinear, QLinear]]) -> torch.Tensor:
    """||down_e(silu(gate_e x) * up_e x)|| per token and expert, float64 (T, E), in float64 with the
    experts' dequantized weights (on the host; no array GEMM is recorded)."""
    x = x.double()
    return torch.stack([(F.silu(x @ gate.dense.double().T) * (x @ up.dense.double().T) @ down.dense.double().T
                         ).norm(dim=1) for gate, up, down in experts], dim=1)


def fit_router(x: torch.Tensor, targets: torch.Tensor, ridge: float = ROUTER_RIDGE) -> torch.Tensor:
    """W float32 (H+1, E) minimizing ``||[x, 1] W - targets||^2 + lam ||W||^2`` (float64 normal
    equations) for tokens x (T, H) and targets (T, E), lam = ``ridge`` x mean ||[x, 1]||^2."""
    design = torch.cat([x.double(), torch.ones(x.shape[0], 1, dtype=torch.float64)], dim=1)
    gram = design.T @ design
    lam = ridge * float(gram.trace()) / design.shape[0]
    solution = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=torch.float64),
                                  design.T @ targets.double())
    return solution.float()


def requantize_q4_1(weight: torch.Tensor, name: str) -> QLinear:
    """Re-quantize float weights (N, K), K a multiple of 32, to Q4_1 with llama.cpp's reference
    quantizer (``gguf.quants.quantize``: per block of 32, d = (max - min) / 15, m = min, both FP16)."""
    import gguf
    n, k = weight.shape
    if k % Q4_1_BLOCK:
        raise CMoEError(f"{name}: K={k} columns is not a multiple of the Q4_1 block {Q4_1_BLOCK}; choose a number "
                        f"of experts whose width D/N is a multiple of {Q4_1_BLOCK}, or down_mode='exact'")
    raw = gguf.quants.quantize(weight.float().numpy().astype(np.float32), gguf.GGMLQuantizationType.Q4_1)
    return QLinear(name, import_gguf(raw, (n, k), "Q4_1", name=name))


class MoEFFN:
    """A carved FFN that replaces layer ``index``'s dense FFN in :func:`sw.smollm.forward`.

    ``y = shared(x) + sum over the A selected routed experts e of expert_e(x)``; each expert is a
    SwiGLU on its neurons' gate/up rows (exact Q4_1 slices) and down columns (``down_mode``).
    Every GEMM runs on the linear backend given at call time; stage names match the dense FFN's
    (``"<layer>.gate_up"``, ``"<layer>.down"``). ``loads`` holds the routed token counts of the
    last call (int64 (N-S,))."""

    def __init__(self, layer: Layer, carved: CarvedLayer, active: int, down_mode: str = "requantized",
                 name: str = "ffn", selection: str | None = None, seed: int = 0):
        if down_mode not in DOWN_MODES:
            raise CMoEError(f"down_mode={down_mode!r}: allowed values are {DOWN_MODES}")
        if selection is not None and selection not in SELECTIONS:
            raise CMoEError(f"selection={selection!r}: allowed values are None (the carving's router) or {SELECTIONS}")
        self.carved, self.active, self.down_mode, self.selection = carved, active, down_mode, selection
        self._generator = torch.Generator().manual_seed(seed)
        dense_down = layer.down.dense

        def expert(neurons: torch.Tensor, label: str) -> tuple[QLinear, QLinear, QLinear]:
            columns = dense_down[:, neurons]
            down = (requantize_q4_1(columns, f"{name}.{label}.down") if down_mode == "requantized"
                    else QLinear(f"{name}.{label}.down", dense=columns.contiguous()))
            return layer.gate.rows(neurons, f"{name}.{label}.gate"), layer.up.rows(neurons, f"{name}.{label}.up"), down

        self.shared = expert(carved.shared, "shared") if carved.shared.numel() else None
        self.experts = [expert(neurons, f"expert{e}") for e, neurons in enumerate(carved.experts)]
        self.loads = torch.zeros(len(self.experts), dtype=torch.int64)

    def __call__(self, model: SmolLM, index: int, x: torch.Tensor, linear: Linear) -> torch.Tensor:
        stage = str(index)
        y = swiglu(x, *self.shared, linear, stage) if self.shared is not None else torch.zeros_like(x)
        selected = self.select(x)
        self.loads = torch.bincount(selected.flatten(), minlength=len(self.experts))
        scale = self.carved.extra_scale
        probs = self.carved.route(x, self.active)[1] if scale is not None else None
        for e, weights in enumerate(self.experts):
            tokens = (selected == e).any(dim=1).nonzero().squeeze(1)
            if tokens.numel():
                out = swiglu(x[tokens], *weights, linear, stage)
                if scale is not None:
                    out = out * (1 + probs[tokens, e] * scale[e])[:, None]
                y = y.index_add(0, tokens, out)
        return y

    def select(self, x: torch.Tensor) -> torch.Tensor:
        """The A routed experts of each token, int64 (T, A): the carving's router, or a diagnostic
        ``selection`` (see the module docstring)."""
        if self.selection is None:
            return self.carved.route(x, self.active)[0]
        if self.selection == "oracle":
            return top_indices(expert_output_norms(x, self.experts), self.active)
        noise = torch.rand(x.shape[0], len(self.experts), generator=self._generator)
        return top_indices(noise, self.active)


@dataclasses.dataclass(eq=False)
class CarvedModel:
    """Every layer's carving, with the options used and the carving time: wall clock and CPU (s,
    all threads of the process)."""
    config: CMoEConfig
    layers: list[CarvedLayer]
    k_act: int
    down_mode: str
    balance_steps: int
    calibration_tokens: int
    seconds: float
    cpu_seconds: float
    router: str = "analytic"

    def ffns(self, model: SmolLM, down_mode: str | None = None, selection: str | None = None,
             seed: int = 0) -> list[MoEFFN]:
        """The MoE FFNs for :func:`sw.smollm.forward` (``down_mode`` defaults to the carving's;
        ``selection`` a diagnostic, seeded per layer from ``seed``)."""
        mode = down_mode or self.down_mode
        return [MoEFFN(model.layers[i], carved, self.config.active, mode, name=f"blk.{i}.{self.config.name}",
                       selection=selection, seed=seed + i)
                for i, carved in enumerate(self.layers)]


def carve_model(model: SmolLM, calibration: list[torch.Tensor], config: CMoEConfig, *,
                k_act: int = DEFAULT_K_ACT, down_mode: str = "requantized", balance_steps: int = 0,
                bias_speed: float = DEFAULT_BIAS_SPEED, router: str = "analytic") -> CarvedModel:
    """Carve every FFN of ``model`` on the calibration windows (each an int64 (L,) token sequence),
    layer by layer on the outputs of the already carved layers (dequantized weights, the model's host
    precision: :func:`sw.smollm.with_host_dtype`).
    ``router="fitted"`` fits each layer's router on its calibration tokens (:func:`fit_router`,
    targets from the exact expert slices) before the layer's outputs are computed with it.
    ``balance_steps`` passes of :meth:`CarvedLayer.update_bias` per layer on the calibration tokens."""
    if not calibration:
        raise CMoEError("calibration: need at least one token window")
    if router not in ROUTERS:
        raise CMoEError(f"router={router!r}: allowed values are {ROUTERS}")
    if down_mode == "requantized":
        config.check_requantizable(model.shape.ffn)
    if not isinstance(balance_steps, int) or balance_steps < 0:
        raise CMoEError(f"balance_steps={balance_steps!r}: must be a non-negative integer")
    start, cpu_start = time.perf_counter(), time.process_time()
    linear = FloatLinear()
    hidden = [model.embedding[window] for window in calibration]
    layers = []
    for index, layer in enumerate(model.layers):
        hidden = [attention_block(model, index, h, linear) for h in hidden]
        inputs = [rms_norm(h, layer.ffn_norm, model.shape.norm_eps) for h in hidden]
        tokens = torch.cat(inputs)
        carved = carve_layer(tokens, layer.gate.dense, layer.up.dense, config, k_act)
        if router == "fitted":
            exact = MoEFFN(layer, carved, config.active, "exact")
            carved.router_weight = fit_router(tokens, expert_output_norms(tokens, exact.experts))
        for _ in range(balance_steps):
            carved.update_bias(carved.loads(tokens, config.active), bias_speed)
        ffn = MoEFFN(layer, carved, config.active, down_mode, name=f"blk.{index}.{config.name}")
        hidden = [h + ffn(model, index, x, linear) for h, x in zip(hidden, inputs)]
        layers.append(carved)
    return CarvedModel(config=config, layers=layers, k_act=k_act, down_mode=down_mode, balance_steps=balance_steps,
                       calibration_tokens=sum(len(w) for w in calibration), seconds=time.perf_counter() - start,
                       cpu_seconds=time.process_time() - cpu_start, router=router)
