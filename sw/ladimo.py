"""LaDiMo-style layer-wise distillation of a CMoE carving (Kim et al., arXiv 2408.04278): each
carved FFN is trained to reproduce its dense FFN on the layer's own inputs.

Per layer, in order (layer l sees the outputs of the already converted layers 0 .. l-1, float32):

1. the FFN is carved by :func:`sw.cmoe.carve_layer` on the calibration tokens, and its router is the
   fitted one (:func:`sw.cmoe.fit_router` on the exact experts' output norms): the initialization;
2. the targets are the dense FFN's outputs ``t = FFN(x)`` on the training tokens x (T, H) of that
   layer (captured from text disjoint from calibration and held-out, :data:`TRAINING_MODULES`);
3. Adam trains every expert's gate, up and down (float, initialized from the dequantized Q4_1
   weights) and the router's W ((H + 1) x (N - S)) on mini-batches of ``batch_tokens`` tokens for
   ``steps`` steps: loss = ``||y - t||^2 / ||t||^2`` + ``balance_weight`` x the Switch
   load-balancing term ``E sum_e f_e P_e`` (f_e the share of routed slots, P_e the mean router
   probability of expert e). The forward keeps the deployed arithmetic (each selected expert has
   weight exactly 1, :class:`sw.cmoe.MoEFFN`); the router is trained through a straight-through
   weight ``1 + p_e - stopgrad(p_e)`` (value 1, gradient of the softmax probability p_e);
4. the layer's outputs on both token sets are recomputed with the trained experts before the next.

The MoE forward used for training is the dense SwiGLU with a per-token neuron mask (1 on the shared
neurons and on the selected experts' neurons): the same sum as the expert-by-expert forward, with
big GEMMs. ``active`` may differ per layer (a routing policy, :mod:`sw.routing_policy`).

The result (:class:`DistilledModel`) builds :class:`sw.cmoe.MoEFFN` layers like a
:class:`sw.cmoe.CarvedModel`: ``down_mode="exact"`` keeps the trained float weights (float rows);
``"requantized"`` quantizes them again to Q4_1 with llama.cpp's quantizer (gate and up whole, down
per expert in groups of 32 along the expert's K), which is what the array runs.
"""

from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn.functional as F

from sw.cmoe import (CarvedLayer, CMoEConfig, CMoEError, DEFAULT_K_ACT, MoEFFN, carve_layer,
                     expert_output_norms, fit_router, requantize_q4_1)
from sw.smollm import FloatLinear, Layer, QLinear, SmolLM, attention_block, rms_norm

__all__ = ["TRAINING_MODULES", "DistillSettings", "LayerStats", "DistilledModel", "neuron_owner", "masked_moe",
           "distill_layer", "distill_model"]

#: Standard-library modules whose docstrings are the distillation text: disjoint from
#: :data:`sw.corpus.CALIBRATION_MODULES` and :data:`sw.corpus.EVALUATION_MODULES` (a test checks it).
TRAINING_MODULES = (
    "collections", "ast", "doctest", "pydoc", "ipaddress", "asyncio.base_events", "asyncio.events",
    "xmlrpc.client", "http.server", "http.cookiejar", "urllib.request", "email.utils", "multiprocessing.pool",
    "concurrent.futures._base", "os", "platform", "tokenize", "traceback", "types", "locale", "ftplib",
    "poplib", "hmac", "secrets", "base64", "bz2", "lzma", "selectors", "socketserver", "pdb", "bdb", "dis",
    "pstats", "profile", "linecache", "plistlib", "runpy", "shelve", "wave", "zipapp", "graphlib", "operator",
    "ssl", "xml.dom.minidom", "html.parser", "importlib.metadata", "mimetypes", "code", "codeop", "sysconfig",
    "symtable", "webbrowser",
    # Added later (more training text; appended so that the first 188 windows stay what they were):
    # every other standard-library module with at least 600 characters of docstrings, except tests,
    # encodings, modules removed in Python 3.12/3.13, asyncio.queues and _py_abc (their held-out
    # counterparts queue and abc), in an order shuffled once (random.Random(18)) so that any run of
    # consecutive windows sees varied modules.
    "idlelib.parenmatch", "idlelib.hyperparser", "xml.sax.handler", "idlelib.colorizer", "dbm.dumb",
    "pickletools", "_collections_abc", "idlelib.runscript", "importlib.util", "idlelib.redirector",
    "idlelib.editor", "importlib", "email.header", "idlelib.autocomplete_w", "asyncio.transports",
    "urllib.response", "wsgiref.simple_server", "multiprocessing.spawn", "stat", "tkinter.font", "email.policy",
    "logging.handlers", "asyncio.exceptions", "tracemalloc", "asyncio.runners", "email.mime.audio",
    "xml.etree.ElementTree", "email.errors", "tkinter.ttk", "urllib.error", "rlcompleter", "wsgiref.headers",
    "asyncio.locks", "_pyio", "idlelib.configdialog", "ntpath", "xml.sax.saxutils", "tkinter.filedialog",
    "__future__", "tkinter.messagebox", "json", "email._header_value_parser", "tabnanny", "urllib.robotparser",
    "xml.sax", "tkinter.dnd", "hashlib", "curses.textpad", "zipimport", "concurrent.futures.process",
    "idlelib.tooltip", "email.parser", "py_compile", "unittest.loader", "posixpath", "unittest.mock",
    "_threading_local", "importlib.metadata._itertools", "email.mime.application", "ctypes", "fileinput",
    "asyncio.protocols", "idlelib.debugger", "idlelib.squeezer", "xml.sax.xmlreader", "quopri",
    "xml.dom.expatbuilder", "turtle", "multiprocessing.forkserver", "importlib.resources.simple",
    "logging.config", "idlelib.tree", "idlelib.pyshell", "asyncio.windows_events", "ctypes.macholib.framework",
    "multiprocessing.connection", "email.headerregistry", "idlelib.history", "multiprocessing.shared_memory",
    "_strptime", "pkgutil", "idlelib.config_key", "unittest.util", "dbm", "asyncio.staggered",
    "importlib._bootstrap", "tkinter", "modulefinder", "http", "asyncio.timeouts", "asyncio.selector_events",
    "unittest.runner", "idlelib.grep", "email.charset", "venv", "idlelib.searchengine", "email.base64mime",
    "idlelib.search", "html", "importlib._bootstrap_external", "tkinter.simpledialog", "asyncio.tasks", "io",
    "re", "multiprocessing.managers", "xmlrpc.server", "pty", "getpass", "idlelib.multicall", "idlelib.outwin",
    "idlelib.calltip", "importlib.resources._adapters", "importlib.metadata._functools", "copyreg",
    "email._encoded_words", "idlelib.searchbase", "ctypes._aix", "tomllib._parser", "wsgiref.handlers",
    "idlelib.textview", "wsgiref.util", "idlelib.config", "idlelib.query", "importlib.resources._common",
    "_osx_support", "xml.dom", "email._policybase", "email.feedparser", "email.quoprimime", "idlelib.rpc",
    "http.cookies", "importlib._abc", "importlib.abc", "idlelib.calltip_w", "multiprocessing.resource_tracker",
    "idlelib.replace", "asyncio.unix_events", "idlelib.run", "importlib.metadata._text", "compileall",
    "unittest.suite", "importlib.resources.abc", "tkinter.colorchooser", "multiprocessing.util",
    "email._parseaddr", "multiprocessing.process", "unittest.result", "_pydecimal", "email.iterators",
    "idlelib.help", "email.generator", "email", "idlelib.autoexpand", "_aix_support", "sqlite3",
    "idlelib.macosx", "wsgiref.validate", "idlelib.zzdummy", "asyncio.sslproto", "idlelib.browser",
    "idlelib.format", "xml.dom.domreg", "multiprocessing.context", "site", "xml.sax._exceptions", "wsgiref",
    "pyclbr", "idlelib.autocomplete", "idlelib.sidebar", "email.mime.image", "asyncio.proactor_events",
    "genericpath", "email.mime.multipart", "idlelib.help_about", "idlelib.pyparse", "idlelib.codecontext",
    "idlelib.debugger_r", "unittest", "asyncio.taskgroups", "asyncio.streams", "asyncio.futures",
)


@dataclasses.dataclass(frozen=True)
class DistillSettings:
    """Optimizer settings of :func:`distill_layer` (per layer)."""
    steps: int = 60
    batch_tokens: int = 512
    lr: float = 1e-3                  # Adam, expert weights
    router_lr: float = 1e-4           # Adam, router W
    balance_weight: float = 1e-2
    seed: int = 0

    def __post_init__(self):
        for field in ("steps", "batch_tokens"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise CMoEError(f"{field}={value!r}: must be a positive integer")
        for field in ("lr", "router_lr", "balance_weight"):
            if not getattr(self, field) >= 0:
                raise CMoEError(f"{field}={getattr(self, field)!r}: must be >= 0")


@dataclasses.dataclass(frozen=True)
class LayerStats:
    """Relative squared error ``||y - t||^2 / ||t||^2`` of one layer on its calibration tokens (not
    trained on) before (the carving, fitted router) and after distillation, and the active experts."""
    active: int
    error_before: float
    error_after: float
    train_tokens: int


def neuron_owner(carved: CarvedLayer, neurons: int) -> torch.Tensor:
    """Routed expert of each neuron, int64 (D,); the shared neurons get the index N - S (one past)."""
    owner = torch.full((neurons,), carved.experts.shape[0], dtype=torch.int64)
    for expert, members in enumerate(carved.experts):
        owner[members] = expert
    return owner


def router_logits(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Fitted-router scores ``[x, 1] W`` (T, N - S) (:meth:`sw.cmoe.CarvedLayer.route`)."""
    return x @ weight[:-1] + weight[-1]


def masked_moe(x: torch.Tensor, gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor, owner: torch.Tensor,
               expert_weight: torch.Tensor, round_hidden=None) -> torch.Tensor:
    """``sum_e w_e expert_e(x) + shared(x)`` for x (T, H) as one masked SwiGLU: gate/up (D, H), down
    (H, D), owner (D,) from :func:`neuron_owner`, expert_weight (T, N - S) (0 for unselected);
    ``round_hidden``: applied to down's input (T, D), e.g. :func:`sw.qat.int8_aware_hidden`."""
    per_neuron = F.pad(expert_weight, (0, 1), value=1.0)[:, owner]            # shared column: weight 1
    hidden = F.silu(x @ gate.T) * (x @ up.T) * per_neuron
    return (round_hidden(hidden) if round_hidden is not None else hidden) @ down.T


def _selection_weights(logits: torch.Tensor, active: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(straight-through weights (T, E): 1 on the top-``active`` experts with the gradient of their
    softmax probability, 0 elsewhere; the selection mask float (T, E))."""
    probs = logits.softmax(dim=-1)
    mask = torch.zeros_like(probs).scatter_(1, torch.topk(logits.detach(), active, dim=-1).indices, 1.0)
    return mask * (1.0 + probs - probs.detach()), mask


def _relative_error(y: torch.Tensor, target: torch.Tensor) -> float:
    return float((y - target).pow(2).sum() / target.pow(2).sum())


def distill_layer(x: torch.Tensor, target: torch.Tensor, weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                  carved: CarvedLayer, active: int, settings: DistillSettings
                  ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor, int]:
    """Train one carved FFN on tokens x (T, H) towards the dense outputs ``target`` (T, H):
    ``weights`` = (gate (D, H), up (D, H), down (H, D)) float32, the carving's fitted router
    ``carved.router_weight``. Returns ((gate, up, down), router W, tokens processed), all detached."""
    if carved.router_weight is None:
        raise CMoEError("carved.router_weight=None: distillation starts from the fitted router (router='fitted')")
    generator = torch.Generator().manual_seed(settings.seed)
    owner = neuron_owner(carved, weights[0].shape[0])
    params = [w.detach().clone().requires_grad_(True) for w in weights]
    router = carved.router_weight.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([{"params": params, "lr": settings.lr},
                                  {"params": [router], "lr": settings.router_lr}])
    experts = carved.experts.shape[0]
    tokens = x.shape[0]
    batch = min(settings.batch_tokens, tokens)
    order, cursor, seen = torch.randperm(tokens, generator=generator), 0, 0
    for _ in range(settings.steps):
        if cursor + batch > tokens:
            order, cursor = torch.randperm(tokens, generator=generator), 0
        index = order[cursor:cursor + batch]
        cursor += batch
        xb, tb = x[index], target[index]
        logits = router_logits(xb, router)
        expert_weight, mask = _selection_weights(logits, active)
        y = masked_moe(xb, *params, owner, expert_weight)
        balance = experts * (mask.mean(dim=0) / active * logits.softmax(dim=-1).mean(dim=0)).sum()
        loss = (y - tb).pow(2).sum() / tb.pow(2).sum() + settings.balance_weight * balance
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += batch
    return tuple(p.detach() for p in params), router.detach(), seen


def _apply(x: torch.Tensor, weights, owner: torch.Tensor, router: torch.Tensor, active: int) -> torch.Tensor:
    """The converted FFN's output (no gradient): selected experts with weight 1."""
    with torch.no_grad():
        return masked_moe(x, *weights, owner, _selection_weights(router_logits(x, router), active)[1])


def _dense(x: torch.Tensor, layer: Layer) -> torch.Tensor:
    return (F.silu(x @ layer.gate.dense.T) * (x @ layer.up.dense.T)) @ layer.down.dense.T


@dataclasses.dataclass(eq=False)
class DistilledModel:
    """Every layer's carving (router W trained), trained float expert weights (gate, up, down of all
    D neurons, dense-FFN order) and active routed experts per layer; tokens and time of the training
    (wall and CPU seconds, carving included)."""
    config: CMoEConfig
    layers: list[CarvedLayer]
    weights: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    active: list[int]
    stats: list[LayerStats]
    settings: DistillSettings
    calibration_tokens: int
    train_tokens: int
    seconds: float
    cpu_seconds: float
    router: str = "ladimo"

    @property
    def activation_ratios(self) -> list[float]:
        """(S + k_l) / N per layer."""
        return [(self.config.shared + k) / self.config.experts for k in self.active]

    def trained_layer(self, model: SmolLM, index: int, down_mode: str) -> Layer:
        """Layer ``index`` with the trained gate/up/down: float-only (``exact``), or gate and up
        re-quantized to Q4_1 (``requantized``; :class:`MoEFFN` re-quantizes down per expert)."""
        gate, up, down = self.weights[index]
        name = f"blk.{index}.{self.config.name}.ladimo"
        if down_mode == "requantized":
            gate_q, up_q = requantize_q4_1(gate, f"{name}.gate"), requantize_q4_1(up, f"{name}.up")
        else:
            gate_q, up_q = QLinear(f"{name}.gate", dense=gate), QLinear(f"{name}.up", dense=up)
        return dataclasses.replace(model.layers[index], gate=gate_q, up=up_q, down=QLinear(f"{name}.down", dense=down))

    def ffns(self, model: SmolLM, down_mode: str | None = None, selection: str | None = None,
             seed: int = 0) -> list[MoEFFN]:
        """The MoE FFNs for :func:`sw.smollm.forward` (as :meth:`sw.cmoe.CarvedModel.ffns`)."""
        mode = down_mode or "requantized"
        return [MoEFFN(self.trained_layer(model, i, mode), carved, self.active[i], mode,
                       name=f"blk.{i}.{self.config.name}", selection=selection, seed=seed + i)
                for i, carved in enumerate(self.layers)]


def distill_model(model: SmolLM, calibration: list[torch.Tensor], training: list[torch.Tensor], config: CMoEConfig,
                  settings: DistillSettings = DistillSettings(), *, active: list[int] | None = None,
                  k_act: int = DEFAULT_K_ACT, log=None) -> DistilledModel:
    """Carve and distill every layer in order (module docstring) on calibration and training token
    windows (int64 (L,) each, disjoint texts). ``active``: routed experts per layer (default A)."""
    if not calibration or not training:
        raise CMoEError("calibration, training: need at least one token window each")
    layers_count = model.shape.layers
    active = list(active) if active is not None else [config.active] * layers_count
    if len(active) != layers_count or any(not 1 <= k <= config.routed for k in active):
        raise CMoEError(f"active={active!r}: need {layers_count} values in [1, {config.routed}]")
    start, cpu_start = time.perf_counter(), time.process_time()
    linear = FloatLinear()
    cal = [model.embedding[w] for w in calibration]
    train = [model.embedding[w] for w in training]
    carved_layers, weights, stats, seen = [], [], [], 0
    for index, layer in enumerate(model.layers):
        with torch.no_grad():
            cal = [attention_block(model, index, h, linear) for h in cal]
            train = [attention_block(model, index, h, linear) for h in train]
            x_cal = torch.cat([rms_norm(h, layer.ffn_norm, model.shape.norm_eps) for h in cal])
            x_train = torch.cat([rms_norm(h, layer.ffn_norm, model.shape.norm_eps) for h in train])
            carved = carve_layer(x_cal, layer.gate.dense, layer.up.dense, config, k_act)
            exact = MoEFFN(layer, carved, active[index], "exact")
            carved.router_weight = fit_router(x_cal, expert_output_norms(x_cal, exact.experts))
            initial = (layer.gate.dense, layer.up.dense, layer.down.dense)
            owner = neuron_owner(carved, model.shape.ffn)
            t_cal, t_train = _dense(x_cal, layer), _dense(x_train, layer)
            before = _relative_error(_apply(x_cal, initial, owner, carved.router_weight, active[index]), t_cal)
        trained, router, tokens = distill_layer(x_train, t_train, initial, carved, active[index],
                                                dataclasses.replace(settings, seed=settings.seed + index))
        carved.router_weight = router
        with torch.no_grad():
            after = _relative_error(_apply(x_cal, trained, owner, router, active[index]), t_cal)
            outputs = _apply(x_cal, trained, owner, router, active[index]).split([len(h) for h in cal])
            cal = [h + y for h, y in zip(cal, outputs)]
            outputs = _apply(x_train, trained, owner, router, active[index]).split([len(h) for h in train])
            train = [h + y for h, y in zip(train, outputs)]
        seen += tokens
        carved_layers.append(carved)
        weights.append(trained)
        stats.append(LayerStats(active[index], before, after, tokens))
        if log is not None:
            log(f"ladimo {config.name} layer {index}: k={active[index]}, relative error {before:.4f} -> {after:.4f} "
                f"({time.perf_counter() - start:.0f} s)")
    return DistilledModel(config=config, layers=carved_layers, weights=weights, active=active, stats=stats,
                          settings=settings, calibration_tokens=sum(len(w) for w in calibration), train_tokens=seen,
                          seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu_start)
