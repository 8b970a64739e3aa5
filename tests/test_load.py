"""Saved programs and functions (issue 7, item 7): theta.load needs no compiler, every file of a
saved directory is checksummed, no name in it leaves the directory, a malformed manifest is an
ArtifactError, a loaded function checks its inputs as theta.function does, and the artifacts
(emu translation unit, cubins, PTX) round-trip."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler import savedir
from theta.compiler.program import Program
from theta.errors import ArtifactError, DTypeError, ShapeError
from theta.runtime import nvcc
from theta.runtime.artifacts import build_artifacts

RNG = np.random.default_rng(7)
BATCH, N_IN, N_OUT = 8, 5, 3


def train_step(backend="emu"):
    """One SGD step of softmax regression: cost out, W and b updated."""
    x, y = T.fmatrix("x"), T.ivector("y")
    W = theta.shared((RNG.standard_normal((N_IN, N_OUT)) * 0.1).astype("float32"), name="W")
    b = theta.shared(np.zeros(N_OUT, "float32"), name="b")
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(x, W) + b), y))
    gW, gb = theta.grad(cost, [W, b])
    f = theta.function([x, y], cost, updates=[(W, W - 0.5 * gW), (b, b - 0.5 * gb)], backend=backend)
    return f, W, b


def batch():
    return RNG.random((BATCH, N_IN)).astype("float32"), RNG.integers(0, N_OUT, BATCH).astype("int32")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(directory of a saved training step, its function, its inputs): copy it before changing it."""
    f, W, b = train_step()
    args = batch()
    f(*args)
    path = tmp_path_factory.mktemp("saved") / "step"
    f.save(path)
    return path, f, args


@pytest.fixture
def copy(saved, tmp_path):
    path = tmp_path / "step"
    shutil.copytree(saved[0], path)
    return path


# -- no compiler at load -------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import theta
    data = np.load(sys.argv[2])
    f = theta.load(sys.argv[1], backend="emu")
    out = f(data["x"], data["y"])
    np.savez(sys.argv[3], out=out, W=f.get_value("W"), b=f.get_value("b"))
    heavy = sorted(m for m in ("sympy", "jinja2") if m in sys.modules)
    print("IMPORTED:" + ",".join(heavy))
""")


def test_load_in_a_fresh_process_imports_neither_sympy_nor_jinja2(tmp_path):
    f, W, b = train_step()
    x, y = batch()
    f(x, y)
    f.save(tmp_path / "step")
    np.savez(tmp_path / "in.npz", x=x, y=y)
    want = f(x, y)   # the same step in this process, from the same saved state
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "step"), str(tmp_path / "in.npz"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "IMPORTED:\n" in proc.stdout, proc.stdout   # neither sympy nor jinja2 was imported
    got = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(got["out"], want, rtol=1e-6)
    np.testing.assert_allclose(got["W"], W.get_value(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got["b"], b.get_value(), rtol=1e-6, atol=1e-7)


def test_import_theta_is_light_and_the_api_resolves_on_use():
    code = ("import sys, theta; assert 'sympy' not in sys.modules, 'import theta'; "
            "theta.load; assert 'sympy' not in sys.modules, 'theta.load'; "
            "import theta.tensor as T, theta.tensor.nnet; from theta import function, grad, shared, In, config; "
            "assert T is sys.modules['theta.compiler.tensor'] and T.nnet is sys.modules['theta.tensor.nnet']; "
            "assert theta.errors is sys.modules['theta.compiler.errors']; "
            "assert theta.gradient.verify_grad and theta.printing.debugprint and theta.Variable")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# -- checksums -----------------------------------------------------------------------------------

def _flip(file, at=None):
    data = bytearray(file.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at] ^= 0x01
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["manifest.json", ".cu", "constants.npz", "function.json", "state.npz",
                                  "emu.cpp", "checksums.json"])
def test_a_flipped_byte_in_any_file_is_refused_naming_it(copy, kind):
    names = sorted(os.listdir(copy))
    assert {"manifest.json", "constants.npz", "function.json", "state.npz", "emu.cpp", "checksums.json"} <= set(names)
    name = next(n for n in names if n.endswith(".cu")) if kind == ".cu" else kind
    _flip(copy / name)
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        theta.load(copy, backend="emu")


def test_every_byte_of_checksums_json_is_covered(copy):
    # a change that keeps the JSON's meaning (whitespace, an escape) is refused as well
    original = (copy / savedir.CHECKSUMS).read_bytes()
    for at in range(len(original)):
        _flip(copy / savedir.CHECKSUMS, at)
        with pytest.raises(ArtifactError):
            savedir.read(copy)
        (copy / savedir.CHECKSUMS).write_bytes(original)
    savedir.read(copy)


def test_save_state_keeps_the_checksums_current(copy, saved, tmp_path):
    _, _, (x, y) = saved
    f = _load_or_skip(copy)
    f(x, y)
    f.save_state()   # in place: state.npz and its checksum
    g = theta.load(copy, backend="emu")
    np.testing.assert_array_equal(g.get_value("W"), f.get_value("W"))
    _flip(copy / "state.npz")
    with pytest.raises(ArtifactError, match=r"state\.npz"):
        theta.load(copy, backend="emu")
    f.save_state(tmp_path / "elsewhere")   # a complete saved function elsewhere
    np.testing.assert_array_equal(theta.load(tmp_path / "elsewhere", backend="emu").get_value("b"), f.get_value("b"))


def test_a_function_json_not_in_the_checksums_is_refused(tmp_path):
    f, _, _ = train_step()
    f(*batch())
    f.program.save(tmp_path / "bare")
    (tmp_path / "bare" / "function.json").write_text(json.dumps({"n_inputs": 2, "n_outputs": 1}))
    with pytest.raises(ArtifactError, match=r"function\.json"):
        theta.load(tmp_path / "bare", backend="emu")


def test_save_does_not_replace_a_directory_that_is_not_a_program(tmp_path):
    f, _, _ = train_step()
    f(*batch())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="not a saved theta program"):
        f.program.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# -- no path leaves the directory; malformed manifests ----------------------------------------

def _edit_manifest(path, edit):
    """Change manifest.json with ``edit(doc)`` and re-seal it (its checksum matches again), so
    what is refused is the content, not a checksum."""
    doc = json.loads((path / "manifest.json").read_text())
    replaced = edit(doc)
    doc = doc if replaced is None else replaced
    savedir.replace(path, {"manifest.json": json.dumps(doc).encode()})


def test_a_kernel_file_outside_the_directory_is_refused_without_reading_it(copy, monkeypatch):
    def escape(doc):
        doc["kernels"][0]["file"] = "../../etc/passwd"
    _edit_manifest(copy, escape)
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))
    with pytest.raises(ArtifactError, match="not a plain file name") as err:
        theta.load(copy, backend="emu")
    assert not any("passwd" in p for p in opened)
    assert "root:" not in str(err.value)


def test_names_in_the_checksums_and_symlinks_cannot_leave_the_directory(copy, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    doc = json.loads((copy / savedir.CHECKSUMS).read_text())
    doc["sha256"]["../outside.txt"] = savedir.sha256(b"secret")
    (copy / savedir.CHECKSUMS).write_bytes(savedir._canonical(doc["sha256"]))
    with pytest.raises(ArtifactError, match="not a plain file name"):
        savedir.read(copy)
    # a listed name that is a symlink (even one whose target matches the checksum) is not followed
    del doc["sha256"]["../outside.txt"]
    doc["sha256"]["link.cu"] = savedir.sha256(b"secret")
    (copy / savedir.CHECKSUMS).write_bytes(savedir._canonical(doc["sha256"]))
    (copy / "link.cu").symlink_to(outside)
    with pytest.raises(ArtifactError, match=r"link\.cu"):
        savedir.read(copy)


def test_a_manifest_naming_a_file_the_checksums_do_not_list_is_refused(copy):
    (copy / "extra.cu").write_text("__global__ void k() {}")

    def other(doc):
        doc["kernels"][0]["file"] = "extra.cu"
    _edit_manifest(copy, other)
    with pytest.raises(ArtifactError, match="do not list"):
        Program.load(copy)


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def edit(doc):
        d = doc
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return edit


@pytest.mark.parametrize("edit", [
    lambda doc: [],                                          # not an object
    _set("kernels", "x"),
    _set("kernels", 0, "grid", ["a"]),
    _set("kernels", 0, "block", [0]),
    _set("kernels", 0, "name", "k; rm -rf /"),
    _set("kernels", 0, "params", 0, [1, 2]),
    _set("kernels", 0, "bindings", 0, {"kind": "ptr", "ref": {"buffer": 999, "offset": 0, "dyn": []}, "slot": -1}),
    _set("kernels", 0, "bindings", 0, {"kind": "teleport"}),
    _set("buffers", 0, "size", -1),
    _set("buffers", 0, "kind", "weird"),
    _set("buffers", 0, "dtype", "object"),
    _set("buffers", 0, "extra", 1),
    _set("leaves", 0, 5),
    _set("outputs", 0, "shape", "3"),
    _set("n_constants", "1"),
    _set("n_updates", True),
    _set("update_targets", [99, 100]),
    _set("artifacts", ["../x"]),
    _set("arena_bytes", 0),                                  # temporaries outside the arena
    lambda doc: {k: v for k, v in doc.items() if k != "outputs"},
    _set("version", 1),
])
def test_a_malformed_manifest_is_an_artifact_error(copy, edit):
    _edit_manifest(copy, edit)
    with pytest.raises(ArtifactError):
        theta.load(copy, backend="emu")


@pytest.mark.parametrize("meta", [[], {"n_inputs": "2", "n_outputs": 1, "single": True},
                                  {"n_inputs": 2, "n_outputs": 7, "single": True},
                                  {"n_inputs": 2, "n_outputs": 1, "single": "yes"}])
def test_a_malformed_function_json_is_an_artifact_error(copy, meta):
    savedir.replace(copy, {"function.json": json.dumps(meta).encode()})
    with pytest.raises(ArtifactError, match=r"function\.json"):
        theta.load(copy, backend="emu")


def test_a_state_npz_with_pickled_data_is_refused(copy):
    import io
    buf = io.BytesIO()
    np.savez(buf, W=np.array([{"a": 1}], dtype=object), b=np.zeros(3, "float32"))
    savedir.replace(copy, {"state.npz": buf.getvalue()})
    with pytest.raises(ArtifactError, match=r"state\.npz"):
        theta.load(copy, backend="emu")


# -- a loaded function checks its inputs as theta.function does ----------------------------------

def _load_or_skip(path, **kw):
    return theta.load(path, backend="emu", **kw)


class FakeDeviceArray:
    """Something with __cuda_array_interface__ (a CuPy array, say), host-backed for emu."""

    def __init__(self, array):
        self.array = array
        self.__cuda_array_interface__ = {"typestr": array.dtype.str, "shape": array.shape,
                                         "data": (array.ctypes.data, False), "version": 3}

    def get(self):
        return self.array

    def __array__(self, dtype=None, copy=None):
        return self.array if dtype is None else self.array.astype(dtype)


def test_loaded_inputs_are_checked_like_theta_function(saved):
    path, f, (x, y) = saved
    g = _load_or_skip(path)
    with pytest.raises(DTypeError, match="allow_input_downcast"):
        g(x.astype("float64"), y)                                   # no silent downcast
    with pytest.raises(DTypeError):
        g(x, y.astype("float32"))                                   # float labels for an int input
    with pytest.raises(DTypeError, match="range"):
        g(x, [2 ** 40] + [0] * (BATCH - 1))                          # a Python int that does not fit
    with pytest.raises(DTypeError, match="non-integer"):
        g(x, [0.5] * BATCH)
    with pytest.raises(ShapeError, match="specialized"):
        g(x[:3], y[:3])
    with pytest.raises(DTypeError, match="device array"):
        g(FakeDeviceArray(x.astype("float64")), y)
    want = _load_or_skip(path)(x, y)
    assert float(g(x.tolist(), y.tolist())) == pytest.approx(float(want), rel=1e-6)   # lists are converted
    h = _load_or_skip(path)
    assert float(h(FakeDeviceArray(x), y.astype("int16"))) == pytest.approx(float(want), rel=1e-6)
    lenient = _load_or_skip(path, allow_input_downcast=True)
    assert float(lenient(x.astype("float64"), y)) == pytest.approx(float(want), rel=1e-6)


def test_loaded_set_value_refuses_another_kind_of_number(saved):
    path, _, _ = saved
    g = _load_or_skip(path)
    with pytest.raises(DTypeError, match="kind"):
        g.set_value("W", np.ones((N_IN, N_OUT), "int64"))
    with pytest.raises(ShapeError):
        g.set_value("W", np.ones((N_IN + 1, N_OUT), "float32"))
    g.set_value("W", np.full((N_IN, N_OUT), 0.25))                  # float64 -> float32: same kind
    assert g.get_value("W").dtype == np.float32 and float(g.get_value("W")[0, 0]) == 0.25
    g.set_value("b", [1, 2, 3])                                     # a list is converted
    np.testing.assert_array_equal(g.get_value("b"), np.float32([1, 2, 3]))


# -- artifacts -----------------------------------------------------------------------------------

def _small_program():
    x = T.fvector("x")
    f = theta.function([x], T.tanh(x) * 2 + 1, backend="emu")
    f(np.ones(16, "float32"))
    return f.program


def test_artifacts_round_trip_with_cubins_iff_nvcc(tmp_path):
    program = _small_program()
    artifacts = build_artifacts(program)
    has_nvcc = nvcc.find_nvcc() is not None
    want = {"emu.cpp"} | ({"sm_80.cubin", "sm_90.cubin", "compute_90.ptx"} if has_nvcc else set())
    assert set(artifacts) == want
    source = "\n".join(k.source for k in program.kernels)
    assert source in artifacts["emu.cpp"].decode()
    if has_nvcc:
        assert artifacts["sm_80.cubin"][:4] == b"\x7fELF" and artifacts["sm_90.cubin"][:4] == b"\x7fELF"
        assert b".target sm_90" in artifacts["compute_90.ptx"]
    import dataclasses
    path = dataclasses.replace(program, artifacts=artifacts).save(tmp_path / "p")
    assert want <= set(os.listdir(path))
    assert sorted(json.loads((path / "manifest.json").read_text())["artifacts"]) == sorted(want)
    assert Program.load(path).artifacts == artifacts


def test_artifacts_without_nvcc_are_just_the_emu_unit(monkeypatch):
    monkeypatch.setattr(nvcc, "find_nvcc", lambda: None)
    assert set(build_artifacts(_small_program())) == {"emu.cpp"}


def test_emu_module_compiles_a_saved_translation_unit():
    from theta.runtime.emu_build import EmuModule, KernelSig, Param
    program = _small_program()
    source = "\n".join(k.source for k in program.kernels)
    sigs = [KernelSig(k.name, tuple(Param(p.name, p.ctype) for p in k.params)) for k in program.kernels]
    unit = build_artifacts(program)["emu.cpp"].decode()
    module = EmuModule(source, sigs, rendered=unit)
    assert module.rendered == unit and module.path.exists()
    with pytest.raises(ValueError, match="not this source"):
        EmuModule(source + "\n// another source", sigs, rendered=unit)
