"""The numpy K-quant quantizers: byte for byte llama.cpp's reference quantizers on seeded data,
and gguf-py's dequantization of their bytes equal to their own dequantization, bit for bit."""

import hashlib

import gguf
import numpy as np
import pytest
import torch

from sw.gguf_import import import_gguf
from sw.gguf_kquants import K_QUANTS, kquant_fields
from sw.kquant_quantize import KQUANT_QUANTIZERS, dequantize_kquant, pack_kquant, quantize_kquant, quantize_kquant_bytes

T = gguf.GGMLQuantizationType

#: First 16 hex digits of the SHA-256 of ``quantize_row_q*_K_ref``'s bytes for :func:`seeded`,
#: from ``ggml-quants.c`` (the ggml of the ``ggml-python`` 0.0.45 sdist: ``pip download --no-deps
#: ggml-python==0.0.45``) built with ``gcc -O2 -fPIC -shared -Iinclude -Isrc -Isrc/ggml-cpu
#: src/ggml-quants.c`` plus stubs of the four ggml functions it links (ggml_abort, ggml_row_size,
#: ggml_type_name, ggml_type_size) and called through ctypes: x86-64 code as llama.cpp's CMake
#: builds ggml-base (no -march=native, so no FMA).
#: A ``-O3 -march=native`` build contracts a*b + c to FMA and gives other bytes for Q2_K, Q4_K and
#: Q6_K here (e8589552127f5d93, 16be8181e9ab3557, 0b1a270ccb76c741; the same as ours again with
#: -ffp-contract=off).
LLAMA_CPP_SHA256 = {"Q2_K": "8cd7afd2fa143931", "Q3_K": "75969b0aaf726354", "Q4_K": "55530825de938238",
                    "Q5_K": "75f9109bd0850963", "Q6_K": "3c43f25720186d86"}


def seeded() -> np.ndarray:
    """16 x 1024 float32: normal and heavy-tailed rows, an all-zero super-block and sub-block, an
    all-positive sub-block, an outlier, a tiny super-block, near-zero values, a coarse grid."""
    rng = np.random.default_rng(19)
    x = (0.05 * rng.standard_normal((16, 1024))).astype(np.float32)
    x[1] = (0.02 * rng.standard_t(3, 1024)).astype(np.float32)
    x[2, :256] = 0
    x[3, :32] = 0
    x[3, 256:288] = np.abs(x[3, 256:288]) + .01
    x[4, 5] = 2.0
    x[5, 512:768] = 1e-3
    x[6, :16] = -1e-20
    x[7] = np.round(x[7] * 64) / 64
    return x


@pytest.mark.parametrize("label", KQUANT_QUANTIZERS)
def test_bytes_equal_llama_cpp_reference(label):
    data = quantize_kquant_bytes(seeded(), label)
    assert data.shape == (16, 4 * K_QUANTS[label].block_bytes) and data.dtype == np.uint8
    assert hashlib.sha256(data.tobytes()).hexdigest()[:16] == LLAMA_CPP_SHA256[label]


@pytest.mark.parametrize("label", KQUANT_QUANTIZERS)
def test_gguf_dequantizes_the_bytes_as_the_logical_form(label):
    x = seeded()
    fields = quantize_kquant(x, label)
    data = pack_kquant(label, fields).reshape(16, -1)
    ours = dequantize_kquant(label, fields).reshape(x.shape)
    theirs = gguf.quants.dequantize(data, T[label])
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))
    decoded = kquant_fields(label, data.reshape(-1, K_QUANTS[label].block_bytes))     # the importer's decoder
    for name in ("d", "dmin", "codes", "sub_scales", "mins"):
        assert np.array_equal(getattr(decoded, name), getattr(fields, name)), name
    imported = import_gguf(data, x.shape, label)
    assert torch.equal(imported.dequantize(), torch.from_numpy(theirs).double())


def test_error_shrinks_with_the_code_width_and_q4_k_beats_q4_1():
    x = seeded()[8:]                                        # the plain normal rows
    back = {label: dequantize_kquant(label, quantize_kquant(x, label)).reshape(x.shape) for label in KQUANT_QUANTIZERS}
    rms = {label: float(np.sqrt(np.mean((w - x) ** 2))) for label, w in back.items()}
    q4_1 = gguf.quants.dequantize(gguf.quants.quantize(x, T.Q4_1), T.Q4_1)
    assert rms["Q2_K"] > rms["Q3_K"] > rms["Q4_K"] > rms["Q5_K"] > rms["Q6_K"] > 0
    assert rms["Q4_K"] < float(np.sqrt(np.mean((q4_1 - x) ** 2)))


@pytest.mark.parametrize("w, fragment", [(np.zeros((2, 100)), "multiple of 256"),
                                         (np.full((1, 256), np.nan), "not finite")])
def test_bad_input_is_one_line(w, fragment):
    with pytest.raises(ValueError, match=fragment):
        quantize_kquant(w, "Q4_K")
    with pytest.raises(ValueError, match="quantized here"):
        quantize_kquant(np.zeros((1, 256)), "IQ4_XS")
