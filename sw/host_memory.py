"""glibc's allocator told to keep the memory torch frees.

The float64 host forward allocates and frees tensors of megabytes to hundreds of megabytes per
GEMM. By default glibc serves each from a fresh ``mmap`` (above its dynamic threshold) or trims the
heap when it is freed, so the next tensor's pages are faulted in and zeroed by the kernel again:
a third of ``make eval-smollm``'s CPU was system time (583 million minor page faults in one run).
With no trimming and no ``mmap`` below 1 GiB, freed blocks are reused; the process's peak
resident size is what it was, it is only not returned between GEMMs.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["MMAP_THRESHOLD", "keep_freed_memory"]

#: ``mallopt`` parameters (glibc's ``malloc.h``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Blocks below this many bytes come from the heap rather than a fresh ``mmap``.
MMAP_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` to :data:`MMAP_THRESHOLD` and disable trimming
    (``M_TRIM_THRESHOLD`` -1, as ``mallopt(3)`` documents) for this process. True if both took
    effect; False where the C library is not glibc (nothing changes there). Idempotent."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))
