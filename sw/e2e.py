"""End-to-end distillation after LaDiMo's layer-wise stage: every layer's routed experts (and
shared neurons) and router are trained jointly so that the MoE model's next-token distribution
matches the dense model's.

Starting from a :class:`sw.ladimo.DistilledModel` (its float gate/up/down and router W per layer),
each Adam step takes one token window (int64 (L,)) of the training text, runs the dense model
without gradient (the teacher, float32 logits), runs the MoE model with gradient and minimizes

    KL(p_dense || p_moe) per token (nats, mean over the L positions)
    + ``balance_weight`` x the mean over layers of the Switch load-balancing term,

the forward of each converted FFN being :func:`sw.ladimo.masked_moe` with the deployed selection
(top-k of the router's scores, weight 1) and the straight-through router weight of
:mod:`sw.ladimo`. Attention, norms, embedding and head stay frozen (gradients flow through them).
Seeded and deterministic on one thread (window order is the given order).

``quantize_aware``: the forward sees the experts' weights re-quantized to Q4_1 as the array runs
them (:func:`sw.qat.quantize_aware_ffn`, straight-through gradients to the float weights), so the
trained model is the re-quantized one. ``int8_activations``: the training forward also rounds every
GEMM's input per token as the array's INT8 core does (the attention projections'
through :class:`sw.qat.Int8AwareLinear`, the FFN's gate/up input and down's per-expert input through
:func:`sw.qat.int8_aware_tokens` / :func:`sw.qat.int8_aware_hidden`; straight-through gradients; the
router sees the unrounded input, as on the array; the teacher and the curve stay float).
``precision="bfloat16"``: the teacher's and the student's
forward and backward run under CPU autocast to bfloat16 (GEMMs in bfloat16; the router, the
residual stream, the weights and Adam in float32; half the CPU seconds of a float32 step on a CPU
with AMX); the loss and every evaluation stay float32.

``schedule``: the learning rates (experts' and router's) fall from ``lr`` to ``lr_floor`` x ``lr`` over
``decay_steps`` steps, by a cosine or linearly (:func:`lr_factor`), and stay there after.
``windows_per_step``: each Adam step sums the gradients of that many consecutive windows (each
window's loss divided by their number: the mean).

A learning curve is recorded: every ``eval_every`` steps the held-out perplexity of the current
weights (float32, deployed selection, re-quantized if ``quantize_aware``) on the evaluation windows
given, over all of them and per window. At every curve point and at
the end the state (:class:`E2EState`) is saved as ``<checkpoint>-step<N>.pt``; a later call
resumes from the latest snapshot at or below its ``steps``, so that no step is trained twice and a
shorter run is a prefix of a longer one (windows are taken in order).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sw.cmoe import CMoEError
from sw.ladimo import DistilledModel, _selection_weights, masked_moe, neuron_owner, router_logits
from sw.qat import Int8AwareLinear, expert_order, int8_aware_hidden, int8_aware_tokens, quantize_aware_ffn
from sw.smollm import FloatLinear, SmolLM, forward, sequence_nll

__all__ = ["E2ESettings", "E2EState", "lr_factor", "e2e_distill", "held_out_perplexity"]


@dataclasses.dataclass(frozen=True)
class E2ESettings:
    """Optimizer settings of :func:`e2e_distill`."""
    steps: int = 96                   # Adam steps, one training window each
    lr: float = 5e-5                  # Adam, expert weights
    router_lr: float = 1e-4           # Adam, router W
    balance_weight: float = 1e-2
    eval_every: int = 16              # learning-curve points (0: none)
    quantize_aware: bool = False      # train the re-quantized Q4_1 weights (straight-through)
    precision: str = "float32"        # or "bfloat16": GEMMs of the training forward/backward under autocast
    int8_activations: bool = False    # the training forward rounds GEMM inputs as the INT8 core (straight-through)
    schedule: str = "constant"        # or "cosine", "linear": lr decay over decay_steps (lr_factor)
    decay_steps: int = 0              # the decay's length in steps (with a schedule other than constant)
    lr_floor: float = 0.1             # the decay's end, a fraction of lr
    windows_per_step: int = 1         # windows whose gradients one Adam step sums (gradient accumulation)
    text_key: str = ""                # which training text the windows come from (cache key only; sw.recovery)

    #: The fields added after the first cached runs; left out of a cache key at their defaults.
    LATER_FIELDS = ("quantize_aware", "precision", "int8_activations", "schedule", "decay_steps", "lr_floor",
                    "windows_per_step", "text_key")

    def __post_init__(self):
        for field, least in (("steps", 1), ("eval_every", 0), ("windows_per_step", 1), ("decay_steps", 0)):
            value = getattr(self, field)
            if not isinstance(value, int) or value < least:
                raise CMoEError(f"{field}={value!r}: must be a {'positive' if least else 'non-negative'} integer")
        for field in ("lr", "router_lr", "balance_weight"):
            if not getattr(self, field) >= 0:
                raise CMoEError(f"{field}={getattr(self, field)!r}: must be >= 0")
        if self.precision not in PRECISIONS:
            raise CMoEError(f"precision={self.precision!r}: allowed values are {PRECISIONS}")
        if self.schedule not in SCHEDULES:
            raise CMoEError(f"schedule={self.schedule!r}: allowed values are {SCHEDULES}")
        if self.schedule != "constant" and self.decay_steps < 1:
            raise CMoEError(f"decay_steps={self.decay_steps!r}: schedule {self.schedule!r} needs at least 1")
        if not 0 <= self.lr_floor <= 1:
            raise CMoEError(f"lr_floor={self.lr_floor!r}: must be in [0, 1]")


PRECISIONS = ("float32", "bfloat16")
SCHEDULES = ("constant", "cosine", "linear")


def lr_factor(settings: E2ESettings, step: int) -> float:
    """The learning rates' multiplier for the Adam step after ``step`` steps: 1 at step 0, falling
    to ``lr_floor`` at ``decay_steps`` (cosine or linear), ``lr_floor`` after; 1 if constant."""
    if settings.schedule == "constant":
        return 1.0
    done = min(step / settings.decay_steps, 1.0)
    fall = (1 + math.cos(math.pi * done)) / 2 if settings.schedule == "cosine" else 1 - done
    return settings.lr_floor + (1 - settings.lr_floor) * fall


@dataclasses.dataclass(eq=False)
class E2EState:
    """Resumable training state: steps done, trained weights and routers, Adam state, the curve
    (``(steps, tokens, held-out perplexity, mean train KL since the last point)``) and the held-out
    perplexity of each window at each point, the KL of each step (mean over its windows), the dense
    and the MoE model's next-token NLL per token on each training window (nats, before its step: the
    training text's own perplexity), time."""
    step: int
    weights: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    routers: list[torch.Tensor]
    optimizer: dict
    curve: list[tuple[int, int, float, float]]
    losses: list[float]
    train_nll: list[tuple[float, float]]
    seconds: float
    cpu_seconds: float
    curve_windows: list[list[float]] = dataclasses.field(default_factory=list)


def _moe_ffns(distilled: DistilledModel, weights, routers, owners, balance: list, int8: bool = False) -> list:
    """FFN callables for :func:`sw.smollm.forward` on the tensors ``weights`` holds at call time (a
    list of (gate, up, down) per layer); each appends its load-balancing term to ``balance``. ``int8``:
    the GEMM inputs rounded as the INT8 core receives them (module docstring)."""
    experts = distilled.config.routed

    def make(index: int):
        def ffn(model, layer, x, linear):
            with torch.autocast("cpu", enabled=False):          # the selection the float32 evaluation makes
                logits = router_logits(x.float(), routers[index])
            expert_weight, mask = _selection_weights(logits, distilled.active[index])
            balance.append(experts * (mask.mean(dim=0) / distilled.active[index]
                                      * logits.softmax(dim=-1).mean(dim=0)).sum())
            if not int8:
                return masked_moe(x, *weights[index], owners[index], expert_weight)
            carved = distilled.layers[index]
            return masked_moe(int8_aware_tokens(x), *weights[index], owners[index], expert_weight,
                              round_hidden=lambda hidden: int8_aware_hidden(hidden, carved))
        return ffn

    return [make(i) for i in range(len(weights))]


def _snapshot(checkpoint: Path | None, step: int) -> Path | None:
    return None if checkpoint is None else checkpoint.with_name(f"{checkpoint.name}-step{step}.pt")


def _latest_snapshot(checkpoint: Path | None, steps: int) -> E2EState | None:
    """The saved state with the most steps, at most ``steps`` (None if there is none)."""
    if checkpoint is None:
        return None
    done = [int(path.name[len(checkpoint.name) + 5:-3]) for path in checkpoint.parent.glob(f"{checkpoint.name}-step*.pt")]
    done = [step for step in done if step <= steps]
    if not done:
        return None
    # mmap: a finished stage's Adam state is never read into memory.
    state = torch.load(_snapshot(checkpoint, max(done)), weights_only=False, mmap=True)
    state.__dict__.setdefault("curve_windows", [])           # snapshots saved before the field existed
    return state


def _window_nlls(model: SmolLM, ffns, windows: list[torch.Tensor]) -> list[tuple[float, int]]:
    with torch.no_grad():
        return [sequence_nll(forward(model, window, FloatLinear(), ffns), window) for window in windows]


def held_out_perplexity(model: SmolLM, ffns, windows: list[torch.Tensor]) -> float:
    """exp(mean NLL) over the windows (float forward, no gradient)."""
    nlls = _window_nlls(model, ffns, windows)
    return math.exp(sum(nll for nll, _ in nlls) / sum(count for _, count in nlls))


def e2e_distill(model: SmolLM, distilled: DistilledModel, windows: list[torch.Tensor],
                settings: E2ESettings = E2ESettings(), *, held_out: list[torch.Tensor] = (),
                checkpoint: Path | None = None, log=None) -> tuple[DistilledModel, E2EState]:
    """Train ``distilled`` end to end on ``windows[:settings.steps * settings.windows_per_step]`` (module docstring), with
    snapshots ``<checkpoint>-step<N>.pt``. Returns the trained model (``router="ladimo+e2e"``;
    tokens and seconds of both stages) and the state."""
    per_step = settings.windows_per_step
    if len(windows) < settings.steps * per_step:
        raise CMoEError(f"steps={settings.steps}: needs {'as many' if per_step == 1 else settings.steps * per_step} "
                        f"training windows, got {len(windows)}")
    owners = [neuron_owner(carved, model.shape.ffn) for carved in distilled.layers]
    state = _latest_snapshot(checkpoint, settings.steps)
    if state and state.step == settings.steps:
        return _trained(distilled, state, per_step * len(windows[0])), state
    source_weights = state.weights if state else distilled.weights
    source_routers = state.routers if state else [carved.router_weight for carved in distilled.layers]
    weights = [tuple(w.detach().clone().requires_grad_(True) for w in ws) for ws in source_weights]
    routers = [r.detach().clone().requires_grad_(True) for r in source_routers]
    optimizer = torch.optim.Adam([{"params": [w for ws in weights for w in ws], "lr": settings.lr},
                                  {"params": routers, "lr": settings.router_lr}])
    if state:
        optimizer.load_state_dict(state.optimizer)
        state.optimizer = {}                                 # not twice in memory (save() stores it again)
    else:
        state = E2EState(step=0, weights=[], routers=[], optimizer={}, curve=[], losses=[], train_nll=[], seconds=0.0,
                         cpu_seconds=0.0)
    balance: list[torch.Tensor] = []
    orders = [expert_order(carved) for carved in distilled.layers]
    current = list(weights)

    def forward_weights() -> None:
        """The weights the forward sees: as trained, or as the array runs them."""
        current[:] = ([quantize_aware_ffn(*ws, order) for ws, order in zip(weights, orders)]
                      if settings.quantize_aware else weights)

    ffns = _moe_ffns(distilled, current, routers, owners, balance)
    train_ffns = _moe_ffns(distilled, current, routers, owners, balance, int8=True) if settings.int8_activations else ffns
    student_linear = Int8AwareLinear if settings.int8_activations else FloatLinear
    layers = len(weights)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.precision == "bfloat16")

    def save() -> None:
        state.weights = [tuple(w.detach().clone() for w in ws) for ws in weights]
        state.routers = [r.detach().clone() for r in routers]
        state.optimizer = optimizer.state_dict()
        if checkpoint is not None:
            path = _snapshot(checkpoint, state.step)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)

    def curve_point() -> None:
        if not held_out:
            return
        recent = state.losses[-settings.eval_every:] if state.step else []
        with torch.no_grad():
            forward_weights()
            nlls = _window_nlls(model, ffns, held_out)
        point = (state.step, state.step * per_step * len(windows[0]),
                 math.exp(sum(nll for nll, _ in nlls) / sum(count for _, count in nlls)),
                 sum(recent) / len(recent) if recent else float("nan"))
        state.curve.append(point)
        state.curve_windows.append([math.exp(nll / count) for nll, count in nlls])
        if log is not None:
            log(f"e2e step {point[0]} ({point[1]} tokens): held-out perplexity {point[2]:.3f} (first window "
                f"{state.curve_windows[-1][0]:.3f}), train KL {point[3]:.4f}")

    if state.step == 0 and settings.eval_every:
        curve_point()
    start, cpu_start = time.perf_counter(), time.process_time()
    seconds0, cpu0 = state.seconds, state.cpu_seconds
    while state.step < settings.steps:
        factor = lr_factor(settings, state.step)
        for group, lr in zip(optimizer.param_groups, (settings.lr, settings.router_lr)):
            group["lr"] = lr * factor
        optimizer.zero_grad(set_to_none=True)
        kls = []
        for window in windows[state.step * per_step:(state.step + 1) * per_step]:
            with torch.no_grad(), autocast():
                teacher = forward(model, window, FloatLinear()).float().log_softmax(dim=-1)
            balance.clear()
            forward_weights()
            with autocast():
                student = forward(model, window, student_linear(), train_ffns).float().log_softmax(dim=-1)
            kl = F.kl_div(student, teacher, log_target=True, reduction="batchmean")
            targets = window[1:, None]
            state.train_nll.append((float(-teacher[:-1].gather(1, targets).mean()),
                                    float(-student[:-1].detach().gather(1, targets).mean())))
            loss = kl + settings.balance_weight * torch.stack(balance).sum() / layers
            (loss / per_step).backward()
            kls.append(float(kl.detach()))
        optimizer.step()
        state.step += 1
        state.losses.append(sum(kls) / len(kls))
        state.seconds = seconds0 + time.perf_counter() - start
        state.cpu_seconds = cpu0 + time.process_time() - cpu_start
        if log is not None:
            log(f"e2e step {state.step}/{settings.steps}: KL {state.losses[-1]:.4f}, lr x {factor:.3f} "
                f"({state.cpu_seconds:.0f} CPU s)")
        at_point = bool(settings.eval_every) and state.step % settings.eval_every == 0
        if at_point:
            curve_point()
        if at_point or state.step == settings.steps:
            save()
    return _trained(distilled, state, per_step * len(windows[0])), state


def _trained(distilled: DistilledModel, state: E2EState, step_tokens: int) -> DistilledModel:
    """The model of ``state`` (``router="ladimo+e2e"``; tokens and seconds of both stages)."""
    layers = [dataclasses.replace(carved, router_weight=router) for carved, router in zip(distilled.layers, state.routers)]
    return dataclasses.replace(distilled, layers=layers, weights=state.weights, router="ladimo+e2e",
                               train_tokens=distilled.train_tokens + state.step * step_tokens,
                               seconds=distilled.seconds + state.seconds,
                               cpu_seconds=distilled.cpu_seconds + state.cpu_seconds)
