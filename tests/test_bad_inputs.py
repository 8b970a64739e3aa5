"""Wrong usage across the public API, as a table: every row is one kind of mistake a user can
make, the ThetaError subclass it must raise and what its message must name (the culprit, and
the user's line where a variable is involved). Never a raw exception from numpy, sympy,
jinja2, g++ or pycuda, a crash or a hang.

Rows run on the reference backend unless they say emu; the emu rows share two small compiled
functions (module fixtures) so the file stays fast.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Callable

import numpy as np
import pytest
import scipy.sparse

import theta
import theta.tensor as T
from theta.compiler import savedir
from theta.compiler.errors import (ArtifactError, DTypeError, GraphError, IndexingError, InputError, OptionError,
                                   ShapeError, SizeError, ThetaError)
from theta.compiler.ops.pool import PoolArgumentError
from theta.tensor.signal.pool import pool_2d

HERE = os.path.basename(__file__)   # the user's line: messages name this file
N = 10 ** 6                         # T.zeros((N, N)) is 4 TB of float32


@dataclasses.dataclass
class Case:
    id: str
    run: Callable[..., object]     # takes the fixtures it names in ``needs``
    error: type
    names: tuple = ()              # substrings the message must contain
    line: bool = False             # the message must name the user's line (this file)
    needs: tuple = ()              # fixture names passed to ``run``


def f64(*shape):
    return np.zeros(shape)


def f32(*shape):
    return np.zeros(shape, "float32")


def _fn(inputs, outputs, **kw):
    return theta.function(inputs, outputs, **kw)


# -- declarations and theta.function(...) -------------------------------------------------------
def c_inputs_not_list():
    x = T.dvector("x")
    _fn(x, x)


def c_input_expression():
    x = T.dvector("x")
    _fn([x + 1], x)


def c_duplicate_input():
    x = T.dvector("x")
    _fn([x, x], x)


def c_shared_as_input():
    w = theta.shared(f64(3), name="w")
    _fn([w], w * 2)


def c_unknown_keyword():
    x = T.dvector("x")
    _fn([x], x, bogus_option=1)


def c_mode_garbage():
    x = T.dvector("x")
    _fn([x], x, mode="garbage")


def c_unused_typo():
    x = T.dvector("x")
    _fn([x], x, on_unused_input="ignroe")


def c_unused_input():
    x, unused = T.dvector("x"), T.dvector("unused_y")
    _fn([x, unused], x)


def c_missing_input():
    x, hidden = T.dvector("x"), T.dvector("hidden")
    _fn([x], x + hidden)


def c_backend_garbage():
    x = T.dvector("x")
    _fn([x], x, backend="tpu")


def c_givens_string_key():
    x = T.dvector("x")
    _fn([x], x * 2, givens={"x": x})


def c_givens_type_mismatch():
    x, y, m = T.dvector("x"), T.dvector("y"), T.dmatrix("m")
    _fn([y], x * 2, givens={x: m})


def c_givens_not_pairs():
    x = T.dvector("x")
    _fn([x], x, givens=[x])


def c_update_not_shared():
    x = T.dvector("x")
    _fn([x], x, updates=[(x, x + 1)])


def c_update_rank():
    w = theta.shared(f64(3), name="w_rank")
    _fn([], [], updates=[(w, T.dmatrix("m").sum(axis=None))])


def c_update_float64_into_float32():
    w = theta.shared(f32(3), name="w32")
    x = T.dvector("x")
    _fn([x], [], updates=[(w, w + x)])


def c_update_float_into_int():
    count = theta.shared(np.zeros((), "int32"), name="count")
    _fn([], [], updates=[(count, count + 0.5)])


def c_update_twice():
    w = theta.shared(f64(3), name="w_twice")
    _fn([], [], updates=[(w, w + 1), (w, w - 1)])


def c_config_floatx():
    theta.config.floatX = "float16"


def c_config_unknown():
    theta.config.flaotX = "float32"


def c_declare_bad_dtype():
    T.matrix("m", dtype="complex64")


def c_cast_bad_dtype():
    T.cast(T.dvector("x"), "float16")


def c_shared_object_array():
    theta.shared(np.array([object(), 1], dtype=object), name="objs")


def c_shared_string():
    theta.shared("weights", name="text")


# -- graph construction -------------------------------------------------------------------------
def g_dimshuffle_letter():
    T.dmatrix("m").dimshuffle("y", 0, 1)


def g_dimshuffle_axis_range():
    T.dmatrix("m").dimshuffle(0, 2)


def g_dimshuffle_drops_axis():
    T.dmatrix("m").dimshuffle(0)


def g_reshape_two_minus_one():
    T.dmatrix("m").reshape((-1, -1))


def g_too_many_indices():
    T.dmatrix("m")[0, 0, 0]


def g_sum_axis_range():
    T.dmatrix("m").sum(axis=3)


def g_argmax_axis_range():
    T.argmax(T.dmatrix("m"), axis=-3)


def g_concatenate_ranks():
    T.concatenate([T.dmatrix("m"), T.dvector("v")])


def g_grad_not_scalar():
    x = T.dvector("x")
    theta.grad(x * 2, x)


def g_grad_disconnected():
    x, y = T.dvector("x"), T.dvector("y_far")
    theta.grad((x * 2).sum(), y)


def g_grad_wrt_string():
    x = T.dvector("x")
    theta.grad((x * 2).sum(), "x")


def g_pool_mode():
    pool_2d(T.tensor4("img"), (2, 2), mode="median")


def g_pool_window():
    pool_2d(T.tensor4("img"), (0, 2))


def g_pool_rank():
    pool_2d(T.dvector("flat"), (2, 2))


def g_conv_rank():
    T.nnet.conv2d(T.dmatrix("flat"), T.tensor4("kern"))


def g_conv_border_mode():
    T.nnet.conv2d(T.tensor4("img"), T.tensor4("kern"), border_mode="sideways")


def g_random_negative_size():
    from theta.tensor.shared_randomstreams import RandomStreams
    RandomStreams(seed=1).uniform(size=(-2, 3))


def g_random_size_text():
    from theta.tensor.shared_randomstreams import RandomStreams
    RandomStreams(seed=1).normal(size="big")


def g_random_seed_text():
    from theta.tensor.shared_randomstreams import RandomStreams
    RandomStreams(seed="lucky")


def g_random_binomial_dtype():
    from theta.tensor.shared_randomstreams import RandomStreams
    RandomStreams(seed=1).binomial(size=(2,), p=0.5, dtype="complex64")


# -- set_value -------------------------------------------------------------------------------------
def s_set_value_float64():
    theta.shared(f32(3), name="w_set").set_value(np.ones(3))


def s_set_value_rank():
    theta.shared(f64(3), name="w_rank2").set_value(np.ones((2, 2)))


def s_set_value_text():
    theta.shared(f64(3), name="w_text").set_value(["a", "b", "c"])


def s_set_value_int_array_into_float32():
    theta.shared(f32(3), name="w_int").set_value(np.arange(3))


# -- calling -----------------------------------------------------------------------------------------
def _vector_fn():
    x = T.dvector("x")
    return _fn([x], x * 2)


def k_too_many_args():
    _vector_fn()(f64(3), f64(3))


def k_missing_arg():
    _vector_fn()()


def k_unknown_keyword():
    _vector_fn()(f64(3), z=f64(3))


def k_arg_twice():
    _vector_fn()(f64(3), x=f64(3))


def k_wrong_rank():
    _vector_fn()(f64(2, 2))


def k_downcast():
    x = T.fvector("xf")
    _fn([x], x * 2)(f64(3))


def k_strings():
    _vector_fn()(["a", "b"])


def k_ragged():
    x = T.dmatrix("m")
    _fn([x], x * 2)([[1.0, 2.0], [3.0]])


def k_none():
    _vector_fn()(None)


def k_dict():
    _vector_fn()({"a": 1})


def k_fractional_into_int():
    i = T.ivector("iv")
    _fn([i], i * 2)([1.5, 2.0])


def k_int_overflow():
    i = T.ivector("iv")
    _fn([i], i * 2)([2 ** 40])


def k_symbolic_value():
    _vector_fn()(T.dvector("other"))


def k_broadcast_mismatch():
    x, y = T.dmatrix("left"), T.dmatrix("right")
    _fn([x, y], x + y)(f64(2, 3), f64(3, 2))


def k_dot_mismatch():
    x, y = T.dmatrix("a_mat"), T.dmatrix("b_mat")
    _fn([x, y], T.dot(x, y))(f64(2, 3), f64(4, 5))


def k_reshape_size():
    x = T.dvector("x")
    _fn([x], x.reshape((2, 5)))(f64(7))


def k_concatenate_shapes():
    x, y = T.dmatrix("top"), T.dmatrix("bottom")
    _fn([x, y], T.concatenate([x, y]))(f64(2, 3), f64(2, 4))


def k_broadcastable_dim():
    r = T.drow("r")
    _fn([r], r * 2)(f64(3, 3))


def k_empty_max():
    x = T.dvector("x")
    _fn([x], T.max(x))(f64(0))


def k_empty_argmax():
    x = T.dvector("x")
    _fn([x], T.argmax(x))(f64(0))


def k_absurd_zeros():
    x = T.dscalar("s")
    _fn([x], T.zeros((N, N)).sum() + x)(1.0)


def k_absurd_symbolic_alloc():
    n = T.lscalar("n")
    _fn([n], T.zeros((n, n)).sum())(N)


def k_index_out_of_range():
    x, i = T.dmatrix("x"), T.lvector("rows")
    _fn([x, i], x[i])(f64(2, 3), np.array([0, 7]))


def k_scalar_index_out_of_range():
    x, i = T.dvector("x"), T.lscalar("at")
    _fn([x, i], x[i])(f64(3), 5)


def k_label_out_of_range():
    x, y = T.dmatrix("x"), T.lvector("labels")
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(x), y).mean()
    _fn([x, y], cost)(f64(2, 3), np.array([0, 5]))


def k_conv_channels():
    img, kern = T.tensor4("img"), T.tensor4("kern")
    _fn([img, kern], T.nnet.conv2d(img, kern))(f32(1, 3, 5, 5), f32(2, 2, 3, 3))


def k_conv_filter_too_big():
    img, kern = T.tensor4("img"), T.tensor4("kern")
    _fn([img, kern], T.nnet.conv2d(img, kern))(f32(1, 1, 2, 2), f32(1, 1, 3, 3))


def k_random_size_from_input():
    from theta.tensor.shared_randomstreams import RandomStreams
    n = T.lscalar("n")
    _fn([n], RandomStreams(seed=1).uniform(size=(n,)))(-3)


def k_sparse_dense_value():
    s, d = theta.sparse.csr_matrix("sp"), T.dmatrix("d")
    _fn([s, d], theta.sparse.structured_dot(s, d))(f64(2, 3), f64(3, 2))


def k_sparse_shape_mismatch():
    s, d = theta.sparse.csr_matrix("sp"), T.dmatrix("d")
    _fn([s, d], theta.sparse.structured_dot(s, d))(scipy.sparse.csr_matrix(f64(2, 3)), f64(4, 2))


def k_sparse_dtype():
    s, d = theta.sparse.csr_matrix("sp", dtype="float32"), T.fmatrix("d")
    _fn([s, d], theta.sparse.structured_dot(s, d))(scipy.sparse.csr_matrix(f64(2, 3)), f32(3, 2))


# -- the emu backend: out-of-range indices and labels inside kernels ------------------------------
@pytest.fixture(scope="module")
def emu_gather():
    x, i = T.dmatrix("x"), T.lvector("rows")
    w = theta.shared(np.ones(3), name="w_emu")
    f = theta.function([x, i], (x[i] * w).sum(), updates=[(w, w * 0.5)], backend="emu")
    f(f64(2, 3), np.array([0, 1]))
    return f


@pytest.fixture(scope="module")
def emu_labels():
    x, y = T.dmatrix("x"), T.lvector("labels")
    cost = T.nnet.categorical_crossentropy(T.nnet.softmax(x), y).mean()
    return theta.function([x, y], cost, backend="emu")


def e_index(emu_gather):
    emu_gather(f64(2, 3), np.array([0, 9]))


def e_label(emu_labels):
    emu_labels(f64(2, 3), np.array([0, 5]))


def e_wrong_shape(emu_gather):
    emu_gather(f64(2), np.array([0]))


# -- saved programs -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(emu_gather, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "step"
    emu_gather.save(path)
    return path


def _copy(saved, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(saved, out)
    return out


def _rehash(path):
    """Re-sign every file, as a tamperer who knows the format would."""
    digests = json.loads((path / savedir.CHECKSUMS).read_text())["sha256"]
    for name in digests:
        digests[name] = savedir.sha256((path / name).read_bytes())
    (path / savedir.CHECKSUMS).write_bytes(savedir._canonical(digests))


def _edit_manifest(path, change):
    doc = json.loads((path / "manifest.json").read_text())
    change(doc)
    (path / "manifest.json").write_text(json.dumps(doc))
    _rehash(path)


def _load_and_run(path):
    f = theta.load(path, backend="emu")
    f(f64(2, 3), np.array([0, 1]))


def a_missing(saved, tmp_path):
    theta.load(tmp_path / "nowhere")


def a_truncated_state(saved, tmp_path):
    p = _copy(saved, tmp_path)
    data = (p / "state.npz").read_bytes()
    (p / "state.npz").write_bytes(data[: len(data) // 2])
    _load_and_run(p)


def a_truncated_state_resigned(saved, tmp_path):
    p = _copy(saved, tmp_path)
    data = (p / "state.npz").read_bytes()
    (p / "state.npz").write_bytes(data[: len(data) // 2])
    _rehash(p)
    _load_and_run(p)


def a_garbage_constants_resigned(saved, tmp_path):
    p = _copy(saved, tmp_path)
    (p / "constants.npz").write_bytes(b"\x93NUMPY garbage")
    _rehash(p)
    _load_and_run(p)


def a_checksums_garbage(saved, tmp_path):
    p = _copy(saved, tmp_path)
    (p / savedir.CHECKSUMS).write_bytes(b"{not json")
    _load_and_run(p)


def a_manifest_flipped_byte(saved, tmp_path):
    p = _copy(saved, tmp_path)
    data = bytearray((p / "manifest.json").read_bytes())
    data[10] ^= 1
    (p / "manifest.json").write_bytes(bytes(data))
    _load_and_run(p)


def a_manifest_path_escape(saved, tmp_path):
    p = _copy(saved, tmp_path)

    def change(doc):
        doc["kernels"][0]["file"] = "../../etc/passwd"
    _edit_manifest(p, change)
    _load_and_run(p)


def a_manifest_absurd_buffer(saved, tmp_path):
    p = _copy(saved, tmp_path)

    def change(doc):
        doc["buffers"][0]["size"] = 10 ** 15
    _edit_manifest(p, change)
    _load_and_run(p)


def a_manifest_absurd_grid(saved, tmp_path):
    p = _copy(saved, tmp_path)

    def change(doc):
        doc["kernels"][0]["grid"] = [2 ** 40, 1, 1]
    _edit_manifest(p, change)
    _load_and_run(p)


def a_manifest_wrong_type(saved, tmp_path):
    p = _copy(saved, tmp_path)

    def change(doc):
        doc["arena_bytes"] = "lots"
    _edit_manifest(p, change)
    _load_and_run(p)


def a_emu_source_altered(saved, tmp_path):
    p = _copy(saved, tmp_path)
    (p / "emu.cpp").write_text("int main() { return 0; }\n")
    _rehash(p)
    _load_and_run(p)


def a_loaded_wrong_shape(saved, tmp_path):
    theta.load(saved, backend="emu")(f64(3, 2), np.array([0, 1]))


def a_loaded_wrong_dtype(saved, tmp_path):
    theta.load(saved, backend="emu")(f64(2, 3), np.array([0.5, 1.0]))


def a_loaded_unknown_value(saved, tmp_path):
    theta.load(saved, backend="emu").get_value("nonexistent_weight")


def a_loaded_backend(saved, tmp_path):
    theta.load(saved, backend="tpu")


SAVED = ("saved", "tmp_path")

CASES = [
    # declarations and theta.function(...)
    Case("inputs-not-a-list", c_inputs_not_list, InputError, ("list",)),
    Case("input-is-an-expression", c_input_expression, InputError, ("symbolic input",)),
    Case("duplicate-input", c_duplicate_input, InputError, ("twice",)),
    Case("shared-as-input", c_shared_as_input, InputError, ("'w'",), line=True),
    Case("unknown-keyword", c_unknown_keyword, InputError, ("bogus_option",)),
    Case("mode-garbage", c_mode_garbage, OptionError, ("garbage", "FAST_RUN")),
    Case("on-unused-input-typo", c_unused_typo, OptionError, ("ignroe",)),
    Case("unused-input", c_unused_input, GraphError, ("unused_y",), line=True),
    Case("missing-input", c_missing_input, GraphError, ("hidden",), line=True),
    Case("backend-garbage", c_backend_garbage, OptionError, ("tpu",)),
    Case("givens-string-key", c_givens_string_key, GraphError, ("'x'", "not a symbolic variable")),
    Case("givens-type-mismatch", c_givens_type_mismatch, GraphError, ("'x'", "'m'"), line=True),
    Case("givens-not-pairs", c_givens_not_pairs, GraphError, ("pairs",)),
    Case("update-not-shared", c_update_not_shared, GraphError, ("'x'",), line=True),
    Case("update-rank", c_update_rank, ShapeError, ("w_rank",), line=True),
    Case("update-float64-into-float32", c_update_float64_into_float32, DTypeError, ("w32", "float32"), line=True),
    Case("update-float-into-int", c_update_float_into_int, DTypeError, ("count",), line=True),
    Case("update-twice", c_update_twice, GraphError, ("twice",)),
    Case("config-floatX", c_config_floatx, OptionError, ("float16",)),
    Case("config-unknown-option", c_config_unknown, OptionError, ("flaotX",)),
    Case("declare-bad-dtype", c_declare_bad_dtype, DTypeError, ("complex64",)),
    Case("cast-bad-dtype", c_cast_bad_dtype, DTypeError, ("float16",)),
    Case("shared-object-array", c_shared_object_array, DTypeError, ("object",)),
    Case("shared-string", c_shared_string, DTypeError, ("str",)),
    # graph construction
    Case("dimshuffle-letter", g_dimshuffle_letter, ShapeError, ("'y'", "'m'"), line=True),
    Case("dimshuffle-axis-range", g_dimshuffle_axis_range, ShapeError, ("'m'",), line=True),
    Case("dimshuffle-drops-axis", g_dimshuffle_drops_axis, ShapeError, ("'m'",), line=True),
    Case("reshape-two-minus-one", g_reshape_two_minus_one, ShapeError, ("'m'",), line=True),
    Case("too-many-indices", g_too_many_indices, IndexingError, ("'m'",), line=True),
    Case("sum-axis-range", g_sum_axis_range, ShapeError, ("'m'", "3"), line=True),
    Case("argmax-axis-range", g_argmax_axis_range, ShapeError, ("'m'", "-3"), line=True),
    Case("concatenate-ranks", g_concatenate_ranks, ShapeError, ("'m'", "'v'"), line=True),
    Case("grad-not-scalar", g_grad_not_scalar, GraphError, ("scalar",), line=True),
    Case("grad-disconnected", g_grad_disconnected, GraphError, ("y_far",), line=True),
    Case("grad-wrt-string", g_grad_wrt_string, GraphError, ("'x'",)),
    Case("pool-mode", g_pool_mode, PoolArgumentError, ("median", "'img'"), line=True),
    Case("pool-window", g_pool_window, ShapeError, ("(0, 2)",)),
    Case("pool-rank", g_pool_rank, ShapeError, ("flat",), line=True),
    Case("conv-rank", g_conv_rank, ShapeError, ("flat",), line=True),
    Case("conv-border-mode", g_conv_border_mode, ShapeError, ("sideways",)),
    Case("random-negative-size", g_random_negative_size, ShapeError, ("-2",)),
    Case("random-size-text", g_random_size_text, ShapeError, ("'big'",)),
    Case("random-seed-text", g_random_seed_text, GraphError, ("lucky",)),
    Case("random-binomial-dtype", g_random_binomial_dtype, DTypeError, ("complex64",)),
    # set_value
    Case("set-value-float64-into-float32", s_set_value_float64, DTypeError, ("w_set", "float64"), line=True),
    Case("set-value-rank", s_set_value_rank, ShapeError, ("w_rank2",), line=True),
    Case("set-value-text", s_set_value_text, DTypeError, ("w_text",), line=True),
    Case("set-value-int64-into-float32", s_set_value_int_array_into_float32, DTypeError, ("w_int", "int64"),
         line=True),
    # calling
    Case("call-too-many-args", k_too_many_args, InputError, ("1 inputs", "got 2")),
    Case("call-missing-arg", k_missing_arg, InputError, ("'x'",), line=True),
    Case("call-unknown-keyword", k_unknown_keyword, InputError, ("'z'",)),
    Case("call-arg-twice", k_arg_twice, InputError, ("'x'", "twice")),
    Case("call-wrong-rank", k_wrong_rank, ShapeError, ("'x'", "rank 2"), line=True),
    Case("call-float64-into-float32", k_downcast, DTypeError, ("'xf'", "allow_input_downcast"), line=True),
    Case("call-strings", k_strings, DTypeError, ("'x'",), line=True),
    Case("call-ragged-list", k_ragged, DTypeError, ("'m'",), line=True),
    Case("call-none", k_none, DTypeError, ("'x'",), line=True),
    Case("call-dict", k_dict, DTypeError, ("'x'",), line=True),
    Case("call-fractional-into-int", k_fractional_into_int, DTypeError, ("'iv'", "non-integer"), line=True),
    Case("call-int-overflow", k_int_overflow, DTypeError, ("'iv'", "int32"), line=True),
    Case("call-symbolic-value", k_symbolic_value, InputError, ("'x'", "symbolic"), line=True),
    Case("call-broadcast-mismatch", k_broadcast_mismatch, ShapeError, ("'left'", "'right'"), line=True),
    Case("call-dot-mismatch", k_dot_mismatch, ShapeError, ("'a_mat'", "'b_mat'"), line=True),
    Case("call-reshape-size", k_reshape_size, ShapeError, ("'x'", "(2, 5)"), line=True),
    Case("call-concatenate-shapes", k_concatenate_shapes, ShapeError, ("'top'", "'bottom'"), line=True),
    Case("call-broadcastable-dim", k_broadcastable_dim, ShapeError, ("'r'",), line=True),
    Case("call-empty-max", k_empty_max, ShapeError, ("'x'", "empty"), line=True),
    Case("call-empty-argmax", k_empty_argmax, ShapeError, ("Argmax", "empty"), line=True),
    Case("call-absurd-zeros", k_absurd_zeros, SizeError, ("1000000, 1000000", "TiB"), line=True),
    Case("call-absurd-symbolic-alloc", k_absurd_symbolic_alloc, SizeError, ("1000000, 1000000",), line=True),
    Case("call-index-out-of-range", k_index_out_of_range, IndexingError, ("index 7",), line=True),
    Case("call-scalar-index-out-of-range", k_scalar_index_out_of_range, IndexingError, ("5",), line=True),
    Case("call-label-out-of-range", k_label_out_of_range, IndexingError, ("[0, 3)",), line=True),
    Case("call-conv-channels", k_conv_channels, ShapeError, ("'img'", "'kern'"), line=True),
    Case("call-conv-filter-too-big", k_conv_filter_too_big, ShapeError, ("'img'", "'kern'"), line=True),
    Case("call-random-negative-size", k_random_size_from_input, ShapeError, ("-3",), line=True),
    Case("call-sparse-dense-value", k_sparse_dense_value, InputError, ("'sp'", "scipy.sparse"), line=True),
    Case("call-sparse-shape-mismatch", k_sparse_shape_mismatch, ShapeError, ("sp",)),
    Case("call-sparse-dtype", k_sparse_dtype, DTypeError, ("sp", "float64")),
    # emu: the kernel that finds bad input names the variable and the user's line
    Case("emu-index-out-of-range", e_index, IndexingError, ("'rows'", "Subtensor"), line=True,
         needs=("emu_gather",)),
    Case("emu-label-out-of-range", e_label, IndexingError, ("'labels'", "Crossentropy"), line=True,
         needs=("emu_labels",)),
    Case("emu-wrong-shape", e_wrong_shape, ShapeError, ("'x'",), line=True, needs=("emu_gather",)),
    # saved programs
    Case("load-missing", a_missing, ArtifactError, ("nowhere",), needs=SAVED),
    Case("load-truncated-state", a_truncated_state, ArtifactError, ("state.npz",), needs=SAVED),
    Case("load-truncated-state-resigned", a_truncated_state_resigned, ArtifactError, ("state.npz",), needs=SAVED),
    Case("load-garbage-constants", a_garbage_constants_resigned, ArtifactError, ("constants.npz",), needs=SAVED),
    Case("load-checksums-garbage", a_checksums_garbage, ArtifactError, ("checksums.json",), needs=SAVED),
    Case("load-manifest-flipped-byte", a_manifest_flipped_byte, ArtifactError, ("manifest.json",), needs=SAVED),
    Case("load-manifest-path-escape", a_manifest_path_escape, ArtifactError, ("etc/passwd",), needs=SAVED),
    Case("load-manifest-absurd-buffer", a_manifest_absurd_buffer, ArtifactError, ("size",), needs=SAVED),
    Case("load-manifest-absurd-grid", a_manifest_absurd_grid, ArtifactError, ("grid",), needs=SAVED),
    Case("load-manifest-wrong-type", a_manifest_wrong_type, ArtifactError, ("arena_bytes",), needs=SAVED),
    Case("load-emu-source-altered", a_emu_source_altered, ArtifactError, ("emu.cpp",), needs=SAVED),
    Case("loaded-wrong-shape", a_loaded_wrong_shape, ShapeError, ("x",), needs=SAVED),
    Case("loaded-wrong-dtype", a_loaded_wrong_dtype, DTypeError, ("rows", "int64"), needs=SAVED),
    Case("loaded-unknown-value", a_loaded_unknown_value, InputError, ("nonexistent_weight",), needs=SAVED),
    Case("loaded-backend-garbage", a_loaded_backend, InputError, ("tpu",), needs=SAVED),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_wrong_usage_is_a_typed_error(case: Case, request):
    args = [request.getfixturevalue(name) for name in case.needs]
    with np.errstate(all="ignore"), pytest.raises(ThetaError) as info:
        case.run(*args)
    err = info.value
    assert isinstance(err, case.error), f"{type(err).__name__} raised, {case.error.__name__} expected: {err}"
    for text in case.names:
        assert text in str(err), f"the message does not name {text!r}: {err}"
    if case.line:
        assert HERE in str(err), f"the message does not name the user's line: {err}"


def test_the_table_is_large_and_distinct():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


# -- the listed bugs' behaviour beyond raising --------------------------------------------------------
@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_division_by_zero_gives_numpys_inf_and_nan(backend):
    x, xf = T.dvector("x"), T.fvector("xf")
    v = np.array([1.0, -1.0, 0.0, 2.0])
    with np.errstate(all="ignore"):
        cases = [(x / 0, v / 0), ((-x) / 0, -v / 0), (x / T.constant(0.0), v / 0), (T.log(x * 0), np.log(v * 0)),
                 (x * np.inf, v * np.inf), (x - np.inf, v - np.inf), (x + np.nan, v + np.nan)]
        f = theta.function([x, xf], [c for c, _ in cases] + [xf / 0], backend=backend)
        got = f(v, v.astype("float32"))
        for (_, want), out in zip(cases, got):
            np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(got[-1], v.astype("float32") / 0)


def test_a_call_time_error_shows_the_users_line_and_the_message_once():
    import traceback
    x = T.dmatrix("x")
    f = theta.function([x], x.sum())
    with pytest.raises(ShapeError) as info:
        f(np.zeros(3))
    err = info.value
    assert err.__cause__ is None and err.__suppress_context__
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    assert text.count("got an array of rank 1") == 1
    frames = [fr.filename for fr in traceback.extract_tb(err.__traceback__)]
    assert os.path.basename(frames[0]) == HERE and len(frames) <= 2   # the user's frame, then the entry point


def test_debug_keeps_theta_frames():
    theta.config.debug = True
    try:
        x = T.dmatrix("x")
        with pytest.raises(ShapeError) as info:
            theta.function([x], x.sum())(np.zeros(3))
        assert len(info.traceback) > 3
    finally:
        theta.config.debug = False


def test_updates_and_set_value_keep_what_theano_allows():
    w = theta.shared(f32(3), name="w_ok")
    w.set_value([1.0, 2.0, 3.0])                  # Python numbers carry no dtype
    w.set_value(np.ones(3, "float32"))
    x = T.fvector("x")
    f = theta.function([x], [], updates=[(w, w * 0.5 + x)])   # a Python float keeps float32
    f(np.ones(3, "float32"))
    np.testing.assert_allclose(w.get_value(), [1.5, 1.5, 1.5])
    d = theta.shared(np.zeros(2), name="w64")
    d.set_value(np.ones(2, "float32"))            # an exact upcast is fine
    assert d.get_value().dtype == np.float64
