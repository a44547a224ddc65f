"""The shared tensor checks (golden/checks.py): the caller's error class, one line naming the tensor,
the value and its index, and what is allowed."""

import pytest
import torch

from golden.checks import check_finite, check_range, check_tensor, first_index, real_matrix
from hw.errors import MixPEError


class CallerError(MixPEError, ValueError):
    pass


def test_first_index():
    assert first_index(torch.tensor([[False, False], [False, True]])) == (1, 1)
    assert first_index(torch.tensor([False, True, True])) == (1,)


@pytest.mark.parametrize("call, message", [
    (lambda: check_tensor(CallerError, "t", [1], torch.int64, rank=2, why="codes"),
     "t: got list, expected a torch.int64 tensor of rank 2 (codes)"),
    (lambda: check_tensor(CallerError, "t", torch.zeros(2), (torch.int32, torch.int64)),
     "t: dtype torch.float32, expected torch.int32 or torch.int64"),
    (lambda: check_tensor(CallerError, "t", torch.zeros(2, dtype=torch.int64), torch.int64, rank=2),
     "t: shape (2,) has rank 1, expected rank 2"),
    (lambda: check_tensor(CallerError, "t", torch.zeros(2, dtype=torch.int64), torch.int64, shape=(3,), why="N=3"),
     "t: shape (2,), expected (3,) (N=3)"),
    (lambda: check_tensor(CallerError, "t", torch.zeros(0, 2, dtype=torch.int64), torch.int64, nonempty=True),
     "t: shape (0, 2) has an empty dimension; all dimensions must be >= 1"),
    (lambda: check_range(CallerError, "t", torch.tensor([[0, 3], [16, -1]]), 0, 15, "the 4-bit code range"),
     "t: value 16 at index (1, 0) is outside the 4-bit code range [0, 15]"),
    (lambda: check_finite(CallerError, "t", torch.tensor([1.0, float("inf")])),
     "t: value inf at index (1,) is not finite"),
    (lambda: real_matrix(CallerError, "w", torch.zeros(3), "(N, K)", "weights"),
     "w: expected a floating-point tensor of rank 2 (N, K), got torch.float32 of shape (3,)"),
    (lambda: real_matrix(CallerError, "w", torch.full((1, 2), float("nan")), "(N, K)", "weights"),
     "w: contains non-finite values; weights must be finite"),
])
def test_checks_raise_the_callers_error(call, message):
    with pytest.raises(CallerError) as error:
        call()
    assert str(error.value) == message


def test_checks_pass_good_tensors():
    check_tensor(CallerError, "t", torch.zeros(2, 3, dtype=torch.int64), torch.int64, rank=2, shape=(2, 3), nonempty=True)
    check_range(CallerError, "t", torch.tensor([0, 15]), 0, 15, "the 4-bit code range")
    check_range(CallerError, "t", torch.zeros(0, dtype=torch.int64), 0, 15, "the 4-bit code range")
    check_finite(CallerError, "t", torch.tensor([0.0, -1.0]))
    assert real_matrix(CallerError, "w", torch.ones(2, 2), "(N, K)", "weights").dtype == torch.float64
