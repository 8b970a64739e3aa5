"""emu's checking mode (kernels/emu_check.h, theta.config.emu_check) catches what only a GPU
would otherwise show: each check has a deliberately broken kernel that it must catch, naming
the kernel line, and a correct twin that must pass. ``pytest -m sanitizer`` runs these.

The kernels include theta's prelude and declare shared memory and global scratch through its
macros, as the templates do (plain CUDA under nvcc; instrumented in checking mode).
"""
import numpy as np
import pytest

from theta.compiler.codegen import render
from theta.compiler.program import Binding, Kernel, Param as KParam, Ref
from theta.runtime.emu import EmuDevice
from theta.runtime.emu_build import EmuLaunchError, EmuModule, KernelSig, Param

pytestmark = pytest.mark.sanitizer

PRELUDE = render("prelude.cuh.j2")
XY = (Param("x", "const float*"), Param("y", "float*"))


def run(body: str, block: int = 64, grid: int = 1, n: int = 64, check: bool = True) -> np.ndarray:
    """Launch kernel ``k(const float* x, float* y)`` of ``body`` in checking mode; y back."""
    module = EmuModule(PRELUDE + body, [KernelSig("k", XY)], check=check)
    x = np.arange(n, dtype=np.float32) + 1
    y = np.zeros(n, np.float32)
    module.launch("k", grid, block, [x, y])
    return y


def caught(body: str, *patterns: str, **kw) -> str:
    with pytest.raises(EmuLaunchError) as e:
        run(body, **kw)
    message = str(e.value)
    for p in patterns:
        assert p in message, message
    return message


# -- the five broken kernels of issue 8, each with its correct twin ------------------------------

ACC_RACE = """
extern "C" __global__ void k(const float* x, float* y) {
  THETA_SHARED_VAR(float, acc);
  if (threadIdx.x == 0) acc = 0.0f;
  __syncthreads();
  acc = acc + x[threadIdx.x];
  __syncthreads();
  if (threadIdx.x == 0) y[0] = acc;
}"""
ACC_OK = """
extern "C" __global__ void k(const float* x, float* y) {
  THETA_SHARED(float, part, 64);
  part[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  if (threadIdx.x == 0) {
    float acc = 0.0f;
    for (int i = 0; i < 64; ++i) acc += part[i];
    y[0] = acc;
  }
}"""


def test_non_atomic_accumulation_in_shared_memory():
    message = caught(ACC_RACE, "shared-memory race", "acc[0]", "`acc = acc + x[threadIdx.x];`")
    assert "thread (0,0,0)" in message and "thread (1,0,0)" in message
    assert run(ACC_OK)[0] == sum(range(1, 65))


NEIGHBOUR = """
extern "C" __global__ void k(const float* x, float* y) {
  THETA_SHARED(float, s, 64);
  const int t = threadIdx.x;
  s[t] = x[t];
  %s
  y[t] = t ? s[t - 1] : 0.0f;
}"""


def test_read_of_a_neighbours_element_without_a_barrier():
    caught(NEIGHBOUR % "", "shared-memory race", "`y[t] = t ? s[t - 1] : 0.0f;`", "`s[t] = x[t];`")
    y = run(NEIGHBOUR % "__syncthreads();")
    np.testing.assert_array_equal(y, np.concatenate([[0], np.arange(1, 64)]).astype(np.float32))


DIVERGENT = """
extern "C" __global__ void k(const float* x, float* y) {
  const int t = threadIdx.x;
  if (t %% 2) {
    __syncthreads();
    y[t] = x[t];
  } else {
    %s
    y[t] = -x[t];
  }
}"""


def test_syncthreads_in_two_divergent_branches():
    caught(DIVERGENT % "__syncthreads();", "divergent __syncthreads", "`__syncthreads();`")
    # a barrier in one branch only: odd threads wait while even ones exit (reported as well)
    caught(DIVERGENT % "", "divergent __syncthreads", "exited")


def test_syncthreads_reached_by_every_thread_passes():
    body = """
extern "C" __global__ void k(const float* x, float* y) {
  const int t = threadIdx.x;
  float v = (t % 2) ? x[t] : -x[t];
  __syncthreads();
  y[t] = v;
}"""
    y = run(body)
    assert y[1] == 2 and y[0] == -1


WARP_MIX = """
extern "C" __global__ void k(const float* x, float* y) {
  const int t = threadIdx.x;
  float v = x[t];
  if (t %% 2)
    v += __shfl_xor_sync(0xffffffffu, v, 1);
  else
    v += %s;
  y[t] = v;
}"""


def test_shuffle_in_one_branch_and_ballot_in_the_other():
    caught(WARP_MIX % "(float)__ballot_sync(0xffffffffu, v > 0)", "not converged", "__ballot_sync", "__shfl_xor_sync")
    body = """
extern "C" __global__ void k(const float* x, float* y) {
  const int t = threadIdx.x;
  float v = x[t];
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  y[t] = v;
}"""
    y = run(body)
    assert y[0] == 1 + 2 and y[1] == 2 + 1


UNWRITTEN = """
extern "C" __global__ void k(const float* x, float* y) {
  THETA_SHARED(float, s, 64);
  const int t = threadIdx.x;
  if (t < %d) s[t] = x[t];
  __syncthreads();
  y[t] = s[t];
}"""


def test_read_of_shared_memory_the_block_never_wrote():
    # on emu's plain mode this returns whatever the previous block left: silent
    caught(UNWRITTEN % 32, "never wrote", "s[32]", "`y[t] = s[t];`", grid=2)
    np.testing.assert_array_equal(run(UNWRITTEN % 64, grid=2), np.arange(1, 65, dtype=np.float32))


# -- warp masks, the static shared limit, unfenced publication ------------------------------------

def test_lanes_that_disagree_on_the_mask():
    body = """
extern "C" __global__ void k(const float* x, float* y) {
  const int t = threadIdx.x;
  const unsigned mask = t < 16 ? 0xffffffffu : 0xffff0000u;
  y[t] = __shfl_xor_sync(mask, x[t], 1);
}"""
    caught(body, "not converged", "mask 0xffffffff", "mask 0xffff0000", block=32, n=32)


def test_a_lane_outside_its_own_mask():
    body = """
extern "C" __global__ void k(const float* x, float* y) {
  const int t = threadIdx.x;
  y[t] = __shfl_xor_sync(0x0000ffffu, x[t], 1);
}"""
    caught(body, "is not in the mask", block=32, n=32)


def test_a_mask_naming_lanes_that_exited():
    body = """
extern "C" __global__ void k(const float* x, float* y) {
  const int t = threadIdx.x;
  if (t >= 16) return;
  y[t] = __shfl_xor_sync(0xffffffffu, x[t], 1);
}"""
    caught(body, "have exited", block=32, n=32)
    ok = body.replace("0xffffffffu", "0x0000ffffu")
    y = run(ok, block=32, n=32)
    assert y[0] == 2 and y[1] == 1


BIG_SHARED = """
extern "C" __global__ void k(const float* x, float* y) {
  THETA_SHARED(float, big, %d);
  const int t = threadIdx.x;
  big[t] = x[t];
  __syncthreads();
  y[t] = big[63 - t];
}"""


def test_static_shared_memory_over_48_kb():
    caught(BIG_SHARED % 13000, "static shared memory", "big", "49152")
    assert run(BIG_SHARED % 12000)[0] == 64


SPLIT = """
THETA_DEVICE_ARRAY(float, part, 8);
__device__ unsigned int count[1];
extern "C" __global__ void k(const float* x, float* y) {
  // CUDA's threadFenceReduction: each block publishes a partial sum, the last to arrive adds them
  THETA_SHARED_VAR(int, last);
  if (threadIdx.x == 0) {
    float s = 0.0f;
    for (int i = 0; i < 8; ++i) s += x[blockIdx.x * 8 + i];
    part[blockIdx.x] = s;
    %s
    last = atomicAdd(&count[0], 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int b = 0; b < (int)gridDim.x; ++b) total += THETA_VOLATILE_LOAD(float, part, b);
    y[0] = total;
    count[0] = 0;
  }
}"""


def test_split_reduction_without_a_fence_before_the_counter():
    caught(SPLIT % "", "no __threadfence()", "part[0]", "`part[blockIdx.x] = s;`", block=32, grid=8)
    assert run(SPLIT % "__threadfence();", block=32, grid=8)[0] == sum(range(1, 65))


# -- more than one schedule ------------------------------------------------------------------------

def _device_launch(body: str, block: int = 64):
    """Launch through the emu device in checking mode: every launch runs forward, reverse and
    shuffled from the same memory, and must leave the same result."""
    kernel = Kernel("k", "test", PRELUDE + body, [KParam("x", "const float*"), KParam("y", "float*")],
                    [Binding("ptr", Ref(0)), Binding("ptr", Ref(1))], (1, 1, 1), (block, 1, 1))

    class _Program:
        kernels = [kernel]
        artifacts: dict = {}

    device = EmuDevice(check=True)
    (handle,) = device.load(_Program)
    x, y = device.alloc(4 * block), device.alloc(4 * block)
    x.array.view(np.float32)[:] = np.arange(block) + 1
    device.launch(handle, [int(x), int(y)])
    return y.array.view(np.float32).copy()


def test_a_global_write_race_shows_as_a_schedule_dependent_result():
    body = """
extern "C" __global__ void k(const float* x, float* y) {
  y[0] = x[threadIdx.x];   // every thread writes one element of global memory
}"""
    from theta.compiler.errors import BackendError
    with pytest.raises(BackendError, match="depends on the order of the threads.*element 0"):
        _device_launch(body)
    ok = body.replace("y[0] = x[threadIdx.x];", "y[threadIdx.x] = x[threadIdx.x];")
    np.testing.assert_array_equal(_device_launch(ok), np.arange(1, 65, dtype=np.float32))


def test_plain_mode_lets_these_through():
    """Why the checking mode exists: without it the racy kernels run 'fine'."""
    assert run(ACC_RACE, check=False)[0] == sum(range(1, 65))
    run(NEIGHBOUR % "", check=False)


def test_launch_resources_ptxas_reports():
    """Where ptxas says a kernel takes more registers or static shared memory than a block of
    its size may have, the launch is refused on a GPU: the template tests check every kernel
    with this (test_emu_gemm/reduce/softmax, nvcc)."""
    from theta.runtime.nvcc import launch_problems
    assert not launch_problems({"registers": 64, "shared_bytes": 8192}, 1024)
    assert launch_problems({"registers": 128, "shared_bytes": 0}, 1024)   # 131072 registers per block
    assert launch_problems({"registers": 32, "shared_bytes": 50000}, 256)


MANY_REGISTERS = r"""
extern "C" __global__ void many(const float* x, float* y) {
  float a[160];   // 160 values live across the loop: ptxas keeps them in registers
#pragma unroll
  for (int i = 0; i < 160; ++i) a[i] = x[threadIdx.x + i * 7];
  for (int r = 0; r < 100; ++r) {
#pragma unroll
    for (int i = 0; i < 160; ++i) a[i] = a[i] * a[(i + 1) % 160] + 1.0f;
  }
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 160; ++i) s += a[i];
  y[threadIdx.x] = s;
}
"""


def test_more_registers_per_block_than_the_register_file_holds():
    from theta.runtime.nvcc import find_nvcc, launch_problems, resources
    if find_nvcc() is None:
        pytest.skip("ptxas (nvcc) reports register use")
    info = resources(MANY_REGISTERS, "sm_90")["many"]
    assert any("register file" in p for p in launch_problems(info, 1024)), info   # a 1024-thread block
    assert not launch_problems(info, 256), info                                  # its correct twin


def test_correct_kernels_the_review_found_flagged_now_pass():
    # two half-warps, each shuffling within itself under its own mask (legal)
    halves = """
extern "C" __global__ void k(const float* x, float* y) {
  const int lane = threadIdx.x;
  const unsigned m = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  float v = x[lane];
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(m, v, o, 16);
  y[lane] = v;
}"""
    y = run(halves, block=32, n=32)
    assert y[0] == sum(range(1, 17)) and y[16] == sum(range(17, 33))
    # more than 64 scratch writes before one fence
    many = """
THETA_DEVICE_ARRAY(float, part, 100);
__device__ unsigned int count[1];
extern "C" __global__ void k(const float* x, float* y) {
  THETA_SHARED_VAR(int, last);
  if (threadIdx.x == 0) {
    for (int i = 0; i < 50; ++i) part[blockIdx.x * 50 + i] = x[i];
    __threadfence();
    last = atomicAdd(&count[0], 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (threadIdx.x == 0) {
    float s = 0.0f;
    for (int i = 0; i < 100; ++i) s += THETA_VOLATILE_LOAD(float, part, i);
    y[0] = s;
    count[0] = 0;
  }
}"""
    assert run(many, block=32, grid=2)[0] == 2 * sum(range(1, 51))


def test_float_atomic_accumulation_is_not_a_race(emu_check):
    """Float atomics add in thread order: with cancellation the schedules differ by more than an
    ulp, which is rounding, not a race."""
    import theta
    import theta.tensor as T
    W, g = T.fmatrix("W"), T.fmatrix("g")
    idx = np.zeros(64, dtype="int64")
    out = T.inc_subtensor(T.zeros_like(W)[idx], g)
    f = theta.function([W, g], out, backend="emu")
    G = (np.random.default_rng(0).standard_normal((64, 4)) * 1000).astype("float32")
    got = f(np.zeros((4, 4), "float32"), G)
    np.testing.assert_allclose(got[0], G.sum(axis=0, dtype="float64"), rtol=1e-3, atol=1e-1)
