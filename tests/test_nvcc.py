"""nvcc: the kernels of test_emu_core compile to cubins for sm_80 and sm_90; ptxas resources parse.

Skipped (with the reason) where nvcc is not installed; the ptxas parser tests always run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from theta.runtime.cache import KernelCache
from theta.runtime.nvcc import NvccError, compile_cubin, find_nvcc, nvcc_version, parse_ptxas_info, resources

sys.path.insert(0, str(Path(__file__).parent))
from test_emu_core import KERNELS, SIGS, remove_repro_files  # noqa: E402  (the same CUDA source emu runs)

needs_nvcc = pytest.mark.skipif(
    find_nvcc() is None,
    reason="nvcc not found on PATH: install the CUDA toolkit, or set THETA_NVCC / CUDA_HOME",
)

PTXAS_SAMPLE = """\
ptxas info    : 46 bytes gmem
ptxas info    : Compiling entry function '_Z7row_sumPKfPfi' for 'sm_80'
ptxas info    : Function properties for _Z7row_sumPKfPfi
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 13 registers, used 1 barriers, 4096 bytes smem, 372 bytes cmem[0]
ptxas info    : Function properties for _Z6helperf
    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Compiling entry function 'softmax_rows' for 'sm_80'
ptxas info    : Function properties for softmax_rows
    24 bytes stack frame, 16 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 255 registers, used 0 barriers, 368 bytes cmem[0]
ptxas info    : Compiling entry function '_ZN5theta4gemmEPf' for 'sm_80'
ptxas info    : Used 40 registers
"""


def test_parse_ptxas_info() -> None:
    info = parse_ptxas_info(PTXAS_SAMPLE)
    assert set(info) == {"row_sum", "softmax_rows", "theta::gemm"}  # device function helper: not a kernel
    assert info["row_sum"] == {"mangled": "_Z7row_sumPKfPfi", "registers": 13, "barriers": 1, "shared_bytes": 4096,
                               "constant_bytes": 372, "stack_frame": 0, "spill_stores": 0, "spill_loads": 0}
    assert info["softmax_rows"]["spill_stores"] == 16 and info["softmax_rows"]["registers"] == 255
    assert info["theta::gemm"]["registers"] == 40 and info["theta::gemm"]["shared_bytes"] == 0


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> KernelCache:
    return KernelCache(tmp_path_factory.mktemp("nvcc-cache"))


@needs_nvcc
def test_nvcc_version() -> None:
    assert nvcc_version()[0].isdigit()


@needs_nvcc
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_emu_kernels_compile_to_cubins(cache: KernelCache, arch: str) -> None:
    cubin = compile_cubin(KERNELS, arch, cache=cache)
    assert cubin[:4] == b"\x7fELF"
    res = resources(KERNELS, arch, cache=cache)
    assert set(res) == {sig.name for sig in SIGS}
    for name, info in res.items():
        assert info["registers"] > 0, name
        assert info["spill_stores"] == 0 and info["spill_loads"] == 0, name
    assert res["row_sum"]["shared_bytes"] == 1024 * 4
    assert res["transpose"]["shared_bytes"] == 16 * 17 * 4
    assert res["axpy"]["shared_bytes"] == 0 and res["axpy"]["barriers"] == 0
    assert res["row_sum"]["barriers"] == 1


@needs_nvcc
def test_second_compile_is_a_cache_hit(cache: KernelCache) -> None:
    compile_cubin(KERNELS, "sm_90", cache=cache)
    misses, hits = cache.misses, cache.hits
    assert compile_cubin(KERNELS, "sm_90", cache=cache)[:4] == b"\x7fELF"
    assert cache.misses == misses and cache.hits == hits + 2  # cubin and its ptxas report


@needs_nvcc
def test_nvcc_error_shows_the_failing_line(cache: KernelCache) -> None:
    src = "__global__ void k(float* y) {\n    int i = threadIdx.x;\n    y[i] = undefined_name * 2.0f;\n}\n"
    with pytest.raises(NvccError) as info:
        compile_cubin(src, "sm_90", cache=cache)
    message = str(info.value)
    assert "kernel.cu(3): error" in message and "undefined_name" in message
    assert ">> 3 |     y[i] = undefined_name * 2.0f;" in message
    assert "repro: " in message and "-arch=sm_90" in message
    remove_repro_files(message)


def test_bad_arch_is_rejected(cache: KernelCache) -> None:
    with pytest.raises(ValueError, match="sm_90"):
        compile_cubin(KERNELS, "90", cache=cache)
