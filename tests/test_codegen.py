"""Kernel generation as a whole: how few kernels a training step becomes, the buffer plan,
the parameter limit, saved Programs, and every template rendered over a grid of shapes and
dtypes, run under AddressSanitizer on emu and compiled by nvcc."""
import json
import re

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.errors import ArtifactError
from theta.compiler.lowering.common import BLOCK, MAX_GRID
from theta.runtime import nvcc

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

RNG = np.random.default_rng(0)


def mlp_step(backend="emu", batch=20, sizes=(64, 32, 32, 10), dtype="float32"):
    """One SGD step of a 2-hidden-layer tanh MLP with softmax-crossentropy loss."""
    x, y = T.matrix("x", dtype=dtype), T.ivector("y")
    params, h = [], x
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = theta.shared((RNG.standard_normal((n_in, n_out)) * 0.1).astype(dtype), name=f"W{k}")
        b = theta.shared(np.zeros(n_out, dtype), name=f"b{k}")
        params += [W, b]
        z = T.dot(h, W) + b
        h = T.tanh(z) if k < len(sizes) - 2 else z
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(h), y))
    grads = theta.grad(cost, params)
    f = theta.function([x, y], cost, updates=[(p, p - 0.1 * g) for p, g in zip(params, grads)], backend=backend)
    xv = RNG.random((batch, sizes[0])).astype(dtype)
    yv = RNG.integers(0, sizes[-1], batch).astype("int32")
    return f, params, (xv, yv)


# The count stated in the README's design notes.
MLP_STEP_KERNELS = 14


def test_mlp_sgd_step_is_fourteen_kernels_with_no_standalone_elementwise_kernel():
    f, params, args = mlp_step()
    f(*args)
    families = [k.family for k in f.kernels]
    assert len(f.kernels) == MLP_STEP_KERNELS, families
    # every elementwise operation (bias adds, tanh and its derivative, the SGD updates, the
    # mean's scaling) rides in the epilogue of a gemm/reduce/softmax kernel
    assert "elemwise" not in families
    assert families.count("gemm") == 8 and families.count("softmax") == 2 and families.count("reduce") == 4


def test_mlp_sgd_step_matches_reference_over_several_steps():
    f, params, args = mlp_step("emu")
    g, params_ref, _ = mlp_step("reference")
    for p, q in zip(params, params_ref):
        q.set_value(p.get_value())
    for _ in range(3):
        np.testing.assert_allclose(f(*args), g(*args), rtol=1e-5)
    for p, q in zip(params, params_ref):
        np.testing.assert_allclose(p.get_value(), q.get_value(), rtol=1e-4, atol=1e-6)


def test_arena_reuses_dead_buffers():
    x = T.fmatrix("x")
    W = theta.shared(RNG.random((64, 64)).astype("float32"), name="W")
    h = x
    for _ in range(6):   # a chain: each temporary dies once the next one is computed
        h = T.nnet.softmax(T.dot(h, W))
    f = theta.function([x], h.sum(), backend="emu")
    f(RNG.random((16, 64)).astype("float32"))
    prog = f.program
    assert 0 < prog.arena_bytes < prog.naive_bytes


def test_parameter_limit_splits_a_group():
    xs = [T.fvector(f"x{i}") for i in range(700)]
    out = xs[0]
    for v in xs[1:]:
        out = out + v
    f = theta.function(xs, out, backend="emu")
    vals = [np.full(3, i, "float32") for i in range(700)]
    np.testing.assert_allclose(f(*vals), np.full(3, sum(range(700))))
    assert len(f.kernels) > 1
    assert all(len(k.params) * 8 <= 4096 for k in f.kernels)


def test_program_save_load_roundtrip_and_tamper(tmp_path):
    f, params, args = mlp_step()
    f(*args)
    path = f.program.save(tmp_path / "prog")
    manifest = json.loads((path / "manifest.json").read_text())
    assert len(manifest["kernels"]) == MLP_STEP_KERNELS
    prog = theta.compiler.program.Program.load(path)
    assert [k.source for k in prog.kernels] == [k.source for k in f.kernels]
    # a modified kernel source is refused
    cu = path / manifest["kernels"][0]["file"]
    cu.write_text(cu.read_text().replace("__global__", "__global__ /* edited */", 1))
    with pytest.raises(ArtifactError, match="checksum"):
        theta.compiler.program.Program.load(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt"):
        theta.compiler.program.Program.load(path)
    with pytest.raises(ArtifactError):
        theta.compiler.program.Program.load(tmp_path / "nothing-here")
    (tmp_path / "a-file").write_text("not a program")
    with pytest.raises(ArtifactError, match="not a saved theta program"):
        theta.load(tmp_path / "a-file")


def test_bare_program_loads_as_a_callable(tmp_path):
    x, W = T.fmatrix("x"), theta.shared(np.ones((3, 2), "float32"), name="W")
    f = theta.function([x], T.tanh(T.dot(x, W)), updates=[(W, W * 2)], backend="emu")
    xv = RNG.random((4, 3)).astype("float32")
    want = f(xv)
    f.program.save(tmp_path / "bare")
    g = theta.load(tmp_path / "bare", backend="emu")
    out, new_w = g(xv, np.ones((3, 2), "float32"))   # every leaf in; outputs and update values out
    np.testing.assert_allclose(out, want, rtol=1e-6)
    np.testing.assert_allclose(new_w, 2.0)


def test_saved_training_step_runs_later(tmp_path):
    f, params, args = mlp_step()
    f(*args)
    f.save(tmp_path / "job")
    before = [p.get_value() for p in params]
    loaded = theta.load(tmp_path / "job", backend="emu")
    for _ in range(2):
        np.testing.assert_allclose(loaded(*args), f(*args), rtol=1e-5)
    for p in params:
        np.testing.assert_allclose(loaded.get_value(p.name), p.get_value(), rtol=1e-5, atol=1e-7)
    assert not np.allclose(before[0], params[0].get_value())
    with pytest.raises(theta.errors.ShapeError):
        loaded(args[0][:3], args[1][:3])   # a saved program is specialized to its shapes


def test_kernels_expose_nvcc_resources():
    if nvcc.find_nvcc() is None:
        pytest.skip("nvcc not found on PATH: ptxas resource reports need it")
    x = T.fmatrix("x")
    f = theta.function([x], T.tanh(x) * 2, backend="emu")
    f(np.ones((4, 4), "float32"))
    k = f.kernels[0]
    res = nvcc.resources(k.source, "sm_90")[k.name]
    assert res["registers"] > 0 and res["spill_stores"] == 0


# -- every template over a grid of shapes and dtypes, under AddressSanitizer, then nvcc -------

def _family_graphs(dtype):
    is_float = dtype.startswith("float")
    graphs = {
        "elemwise": lambda x, y: [x * 2 + y[0], abs(x - y)] if not is_float else [T.tanh(x) * y + 1, T.exp(-x * x)],
        "reduce": lambda x, y: [T.sum(x, axis=0), T.max(x, axis=1), T.sum(x * y)],
        "gemm": lambda x, y: [T.dot(x, y.T), T.dot(x.T, y) + 1],
        "gather": lambda x, y: [x[np.array([0, -1, 0])], x[np.array([0, 0]), np.array([1, 0])]],
        "scatter": lambda x, y: [T.inc_subtensor(x[np.array([0, 0, 1])], y[:3]), T.set_subtensor(x[1:], y[1:] * 2)],
        "concat": lambda x, y: [T.concatenate([x, y], axis=1)],
    }
    if is_float:
        graphs["softmax"] = lambda x, y: [T.nnet.softmax(x), T.nnet.log_softmax(x + y)]
    return graphs


GRID = [("float32", (3, 5)), ("float64", (1, 7)), ("int32", (4, 3)), ("float32", (33, 17))]


@pytest.mark.slow
@pytest.mark.parametrize("dtype,shape", GRID)
def test_templates_under_asan_and_nvcc(dtype, shape):
    theta.config.emu_asan = True
    for family, make in _family_graphs(dtype).items():
        x, y = T.matrix(dtype=dtype), T.matrix(dtype=dtype)
        outs = make(x, y)
        if family in ("gather", "scatter") and shape[0] < 2:
            continue
        xv = (RNG.standard_normal(shape) * 3).astype(dtype)
        yv = (RNG.standard_normal(shape) * 3).astype(dtype)
        want = theta.function([x, y], outs, backend="reference", on_unused_input="ignore")(xv, yv)
        f = theta.function([x, y], outs, backend="emu", on_unused_input="ignore")
        got = f(xv, yv)
        for w, g in zip(want, got):
            # float32 sums of many terms cancel: compare relative to the largest magnitude
            atol = 1e-4 * float(np.abs(w).max()) if w.size and w.dtype.kind == "f" else 0
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=atol, err_msg=f"{family} {dtype}{shape}")
        if nvcc.find_nvcc() is not None:
            source = "\n".join(k.source for k in f.kernels)
            for arch in ("sm_90", "sm_80"):
                nvcc.compile_cubin(source, arch)


def _index_types(outputs, leaves) -> dict:
    """family -> the index_t of each kernel lowered for a graph over static-shaped ``leaves``
    (compiled only: nothing is allocated, so sizes near 2**31 cost nothing)."""
    from theta.compiler.pipeline import build_program
    types: dict = {}
    for k in build_program(outputs, leaves, []).kernels:
        family = "copy" if k.name.endswith("_copy") else k.family   # a scatter's first kernel
        types.setdefault(family, []).extend(re.findall(r"typedef (.*) index_t;", k.source))
    return types


def _big(dtype, shape, name):
    from theta.compiler.graph import Variable
    from theta.compiler.types import TensorType
    return Variable(TensorType(dtype, shape), name=name)


@pytest.mark.parametrize("n,want", [(1000, "int"), (2 ** 31 - 1 - MAX_GRID * BLOCK // 2, "long long")])
def test_grid_stride_loops_index_with_headroom_for_one_stride(n, want):
    # finding b1: the loop's last `i += gridDim.x * blockDim.x` passes n before the i < n test
    # fails, so n just below 2**31 needs 64-bit indexing even though n itself fits an int
    x, col = _big("float32", (n,), "x"), _big("float32", (n, 1), "col")
    idx, small = _big("int64", (n,), "idx"), _big("float32", (10,), "small")
    types = _index_types([T.tanh(x) * 2, T.nnet.softmax(col), small[idx],
                          T.inc_subtensor(x[np.array([0, 1])], small[:2])], [x, col, idx, small])
    for family in ("elemwise", "softmax", "gather", "copy"):
        assert types.get(family) and set(types[family]) == {want}, (family, types)


def test_elementwise_strided_input_indexes_with_its_span():
    # a column view of a (2**20, 4096) matrix: 2**20 elements, offsets up to 2**32
    x = _big("float32", (2 ** 20, 4096), "x")
    assert _index_types([x[:, 0] * 2], [x])["elemwise"] == ["long long"]


def test_elementwise_producer_of_an_epilogue_joins_it():
    x, W = T.fmatrix("x"), T.fmatrix("W")
    f = theta.function([x, W], T.dot(x, W) + T.tanh(x) * 3.0, backend="emu")
    xv, wv = RNG.random((5, 5)).astype("float32"), RNG.random((5, 5)).astype("float32")
    np.testing.assert_allclose(f(xv, wv), xv @ wv + np.tanh(xv) * 3, rtol=1e-5)
    assert [k.family for k in f.kernels] == ["gemm"]


def test_kernel_failures_reach_the_user_as_backend_errors(monkeypatch):
    from theta.compiler import codegen
    x = T.fvector("x")
    f = theta.function([x], T.exp(x) + 1, backend="emu")
    real_render = codegen.render

    def broken(template, **context):   # a template bug: the C no longer compiles
        return real_render(template, **context).replace("extern \"C\"", "extern \"C\" this is not C", 1)

    monkeypatch.setattr(codegen, "render", broken)
    with pytest.raises(theta.errors.BackendError, match="could not build"):
        f(np.ones(3, "float32"))


def test_asan_accepts_views_read_backwards():
    """Negative strides read before a view's first element, inside its buffer: under
    AddressSanitizer that is not an overflow (the whole buffer is the extent)."""
    theta.config.emu_asan = True
    x = T.fmatrix("x")
    f = theta.function([x], [T.sum(x[3:, ::-3], axis=1), T.exp(x[::-1, ::-2])], backend="emu")
    xv = RNG.random((7, 8)).astype("float32")
    a, b = f(xv)
    np.testing.assert_allclose(a, xv[3:, ::-3].sum(1), rtol=1e-5)
    np.testing.assert_allclose(b, np.exp(xv[::-1, ::-2]), rtol=1e-6)


def test_emu_without_a_compiler_is_a_clear_error(monkeypatch):
    import shutil
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "g++" else real_which(name, *a, **k))
    x = T.fvector("x")
    f = theta.function([x], T.exp(x) * 3 + 1, backend="emu")
    with pytest.raises(theta.errors.BackendError, match="not on PATH"):
        f(np.ones(3, "float32"))
