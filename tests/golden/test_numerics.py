"""The shared FP constants (golden/numerics.py) against torch and the RTL's own, gamma_n, and the
one utilization formula (golden/cycles.py)."""

import pytest
import torch

from golden.cycles import predict_cycles, utilization
from golden.fp32 import fp16_to_fp32
from golden.numerics import (CANONICAL_NAN_BITS, FP16_MAX, FP16_MAX_BITS, FP16_MIN_NORMAL, FP32_MAX, FP32_MIN_NORMAL,
                             FP32_UNIT_ROUNDOFF, FP64_UNIT_ROUNDOFF, NumericsError, gamma)
from hw.config import MixPEConfig


def test_constants_agree_with_torch_and_the_rtl():
    from hw.fp_common import CANONICAL_NAN
    assert CANONICAL_NAN == CANONICAL_NAN_BITS
    assert FP16_MAX == torch.finfo(torch.float16).max
    assert float(fp16_to_fp32(torch.tensor([FP16_MAX_BITS]))[0]) == FP16_MAX
    assert FP16_MIN_NORMAL == torch.finfo(torch.float16).tiny
    assert FP32_MAX == torch.finfo(torch.float32).max
    assert FP32_MIN_NORMAL == torch.finfo(torch.float32).tiny
    assert FP32_UNIT_ROUNDOFF == torch.finfo(torch.float32).eps / 2
    assert FP64_UNIT_ROUNDOFF == torch.finfo(torch.float64).eps / 2


def test_gamma():
    assert gamma(0, FP32_UNIT_ROUNDOFF) == 0.0
    assert gamma(3, 0.25) == 3.0
    with pytest.raises(NumericsError, match="n=4"):
        gamma(4, 0.25)


def test_one_utilization_formula():
    config = MixPEConfig(rows=4, cols=8)
    assert utilization(config, 64, 4) == 0.5
    assert utilization(config, 0, 0) == 0.0
    report = predict_cycles(config, [2, 3], useful_macs=1000)
    assert report.utilization(config) == utilization(config, 1000, report.cycles) == 1000 / (32 * report.cycles)
