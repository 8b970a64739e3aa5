"""Helpers shared by the family lowerers."""
from __future__ import annotations

import math

BLOCK = 256          # threads per block for elementwise-style kernels
MAX_GRID = 65535     # grid-stride loops cover the rest; also keeps emu's block count sane


def index_type(*sizes: int) -> str:
    """32-bit indexing when every offset fits (faster on the GPU), else 64-bit."""
    return "int" if max(sizes, default=0) < 2 ** 31 - 1 else "long long"


def grid_for(n: int, block: int = BLOCK, max_grid: int = MAX_GRID) -> int:
    return max(1, min(math.ceil(n / block), max_grid))


def size(shape) -> int:
    return math.prod(shape) if shape else 1
