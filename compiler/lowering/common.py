"""Helpers shared by the family lowerers."""
from __future__ import annotations

import math

BLOCK = 256          # threads per block for elementwise-style kernels
MAX_GRID = 65535     # grid-stride loops cover the rest; also keeps emu's block count sane


def index_type(*sizes: int) -> str:
    """32-bit indexing when every offset fits (faster on the GPU), else 64-bit."""
    return "int" if max(sizes, default=0) < 2 ** 31 - 1 else "long long"


def loop_index_type(n: int, *sizes: int, step: int = MAX_GRID * BLOCK) -> str:
    """``index_type`` for a grid-stride loop ``for (i = first; i < n; i += step)`` over ``n``
    elements: the last ``i += step`` runs before ``i < n`` fails, so ``n + step`` must fit too
    (a signed overflow there is undefined behaviour: in practice a negative index and an
    out-of-bounds access for n just below 2**31). ``step`` bounds the kernel's grid stride."""
    return index_type(n + step, *sizes)


def span(shape, strides) -> int:
    """One past the largest |element offset| a strided read of ``shape`` reaches."""
    return sum(abs(s) * max(d - 1, 0) for d, s in zip(shape, strides)) + 1


def grid_for(n: int, block: int = BLOCK, max_grid: int = MAX_GRID) -> int:
    return max(1, min(math.ceil(n / block), max_grid))


def size(shape) -> int:
    return math.prod(shape) if shape else 1
