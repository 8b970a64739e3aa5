"""Compilation modes (issue 13, item 2): ``theta.Mode`` and Theano's mode names and objects;
FAST_COMPILE runs fewer rewrite passes; NanGuardMode is the NaN guard; DebugMode checks every
fused kernel against the reference evaluation of its nodes and names the first kernel and op
that disagree (a test plants a miscompiled kernel), and on the reference backend checks each
op's result against its type."""
import numpy as np
import pytest

import theta
import theta.compile
import theta.compile.mode
import theta.tensor as T
from theta.compiler import codegen
from theta.compiler import rewrite
from theta.errors import DebugModeError, NanError, OptionError, ThetaError


@pytest.fixture(autouse=True)
def _restore_mode():
    saved = theta.config.mode
    yield
    theta.config.mode = saved


def _mlp_step(backend, mode, seed=0):
    """A one-hidden-layer MLP's SGD step (softmax-crossentropy), and a minibatch for it."""
    rng = np.random.RandomState(seed)
    x, y = T.fmatrix("x"), T.ivector("y")
    W1 = theta.shared(rng.randn(8, 16).astype("float32") * 0.3, name="W1")
    b1 = theta.shared(np.zeros(16, "float32"), name="b1")
    W2 = theta.shared(rng.randn(16, 4).astype("float32") * 0.3, name="W2")
    b2 = theta.shared(np.zeros(4, "float32"), name="b2")
    h = T.tanh(T.dot(x, W1) + b1)                     # TANH-LINE
    p = T.nnet.softmax(T.dot(h, W2) + b2)
    cost = T.nnet.categorical_crossentropy(p, y).mean()
    params = [W1, b1, W2, b2]
    grads = theta.grad(cost, params)
    f = theta.function([x, y], cost, updates=[(q, q - 0.1 * g) for q, g in zip(params, grads)],
                       backend=backend, mode=mode)
    batch = (rng.randn(6, 8).astype("float32"), np.array([0, 1, 2, 3, 0, 1], "int32"))
    return f, params, batch


# -- modes as names and objects ------------------------------------------------------------------

@pytest.mark.parametrize("mode, optimizer, debug, nan_guard", [
    ("FAST_RUN", "fast_run", False, False),
    ("FAST_COMPILE", "fast_compile", False, False),
    ("DebugMode", "fast_run", True, False),
    ("DEBUG_MODE", "fast_run", True, False),
    ("NanGuardMode", "fast_run", False, True),
    (theta.Mode(optimizer="fast_compile"), "fast_compile", False, False),
    (theta.Mode(linker="cvm", optimizer=None), "None", False, False),
    (theta.compile.mode.FAST_COMPILE, "fast_compile", False, False),
    (theta.compile.mode.FAST_RUN, "fast_run", False, False),
    (theta.compile.DebugMode(optimizer="fast_compile"), "fast_compile", True, False),
    (theta.compile.NanGuardMode(nan_is_error=True, inf_is_error=True, big_is_error=False), "fast_run", False, True),
])
def test_mode_names_and_objects_set_the_compile_options(mode, optimizer, debug, nan_guard):
    x = T.fvector("x")
    f = theta.function([x], T.tanh(x * 2 + 1).sum(), mode=mode)
    assert (f.options.optimizer, f.options.debug_mode, f.options.nan_guard) == (optimizer, debug, nan_guard)
    assert np.isclose(f(np.ones(3, "float32")), 3 * np.tanh(3.0))


def test_an_unknown_mode_or_optimizer_is_an_option_error():
    x = T.fvector("x")
    with pytest.raises(OptionError, match=r"unknown mode 'FAST_RUNN'.*FAST_COMPILE"):
        theta.function([x], x, mode="FAST_RUNN")
    with pytest.raises(OptionError, match="unknown mode"):
        theta.function([x], x, mode=42)
    with pytest.raises(OptionError, match="unknown optimizer 'fastest'"):
        theta.Mode(optimizer="fastest")
    with pytest.raises(OptionError, match="unknown linker"):
        theta.Mode(linker="jvm")
    with pytest.raises(OptionError):
        theta.config.mode = "FAST"
    assert isinstance(OptionError("x"), ThetaError) and isinstance(OptionError("x"), ValueError)


def test_a_mode_linker_naming_a_backend_picks_it_and_config_mode_is_the_default():
    x = T.fvector("x")
    f = theta.function([x], x * 2, mode=theta.Mode(linker="emu"))
    assert f.options.backend == "emu"
    g = theta.function([x], x * 2, mode=theta.Mode(linker="emu"), backend="reference")   # backend= wins
    assert g.options.backend == "reference"
    theta.config.mode = "FAST_COMPILE"
    assert theta.function([x], x * 2).options.optimizer == "fast_compile"
    theta.config.mode = None
    assert theta.compile.mode.get_mode(None) is theta.compile.mode.FAST_RUN
    assert theta.compile.mode.get_mode("DebugMode").debug
    assert theta.compile.mode.FAST_RUN.excluding("fusion").including("fast_run").optimizer == "fast_run"


def test_fast_compile_runs_fewer_rewrite_passes(monkeypatch):
    ran: list = []
    passes = [(name, (lambda run, name: lambda outs, misses=None: (ran.append(name), run(outs, misses))[1])(run, name))
              for name, run in rewrite.PASSES]
    monkeypatch.setattr(rewrite, "PASSES", passes)
    x = T.fvector("x")
    y = T.log(1 + T.exp(x)) * (2 * 3)                 # stabilize: softplus; constant_fold: 2 * 3
    values = {}
    for mode in ("FAST_RUN", "FAST_COMPILE"):
        ran.clear()
        f = theta.function([x], y, mode=mode)
        values[mode] = f(np.array([-1, 0, 50], "float32"))
        values[mode + " passes"] = list(ran)
    fast_run, fast_compile = values["FAST_RUN passes"], values["FAST_COMPILE passes"]
    assert fast_run == ["canonicalize", "constant_fold", "stabilize", "merge"]
    assert set(fast_compile) < set(fast_run) and fast_compile == ["canonicalize", "stabilize"]
    np.testing.assert_allclose(values["FAST_RUN"], values["FAST_COMPILE"], rtol=1e-6)
    assert np.isfinite(values["FAST_COMPILE"]).all()   # the stable softplus form is kept


@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_fast_compile_gives_the_same_training_step(backend):
    runs = {}
    for mode in ("FAST_RUN", "FAST_COMPILE"):
        f, params, batch = _mlp_step(backend, mode)
        runs[mode] = [f(*batch) for _ in range(3)] + [p.get_value() for p in params]
    for a, b in zip(runs["FAST_RUN"], runs["FAST_COMPILE"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", ["reference", "emu"])
def test_nan_guard_mode_by_name_and_object(backend):
    x = T.fvector("x")
    for mode in ("NanGuardMode", theta.compile.NanGuardMode(nan_is_error=True, inf_is_error=True)):
        f = theta.function([x], T.log(x) * 2, backend=backend, mode=mode)
        np.testing.assert_allclose(f(np.array([1, 2], "float32")), 2 * np.log([1, 2]), rtol=1e-6)
        with pytest.raises(NanError, match="log produced NaN"):
            f(np.array([1, -1], "float32"))
    off = theta.compile.NanGuardMode(nan_is_error=False, inf_is_error=False)
    with np.errstate(invalid="ignore"):
        assert np.isnan(theta.function([x], T.log(x), backend=backend, mode=off)(np.array([-1], "float32"))).all()


# -- DebugMode on the kernel backends ------------------------------------------------------------

def test_debug_mode_passes_a_correct_mlp_step_on_emu_and_checks_every_kernel():
    f, params, batch = _mlp_step("emu", "DebugMode")
    ref, ref_params, _ = _mlp_step("reference", "FAST_RUN")
    for _ in range(3):
        np.testing.assert_allclose(f(*batch), ref(*batch), rtol=1e-4)
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p.get_value(), q.get_value(), rtol=1e-4, atol=1e-6)
    executor = f.specialization(*batch).program.executor
    n_kernels = len(f.kernels)
    assert n_kernels >= 8
    assert executor.debug_checked >= 3 * (n_kernels - 2)   # every group (a split reduction is one)
    assert not executor.__dict__.get("debug_unchecked")
    assert f.program.guard.debug and not f.program.guard.nan   # no NaN checks unless asked


def _plant(monkeypatch, wrong: str, right: str):
    """Miscompile one elementwise op: every C statement printing ``right`` prints ``wrong``."""
    original = codegen._statements

    def miscompiled(expr, names, out, dtype, input_dtypes):
        return tuple(line.replace(right, wrong) for line in original(expr, names, out, dtype, input_dtypes))
    monkeypatch.setattr(codegen, "_statements", miscompiled)


def test_debug_mode_finds_a_miscompiled_kernel_and_names_it(monkeypatch):
    _plant(monkeypatch, "sinhf(", "tanhf(")           # the hidden layer's tanh is now a sinh
    f, _, batch = _mlp_step("emu", "DebugMode")
    with pytest.raises(DebugModeError) as info:
        f(*batch)
    err, msg = info.value, str(info.value)
    assert isinstance(err, ThetaError) and isinstance(err, RuntimeError)
    planted = [k for k in f.specialization(*batch).program.kernels if "sinhf(" in k.source]
    assert planted, "the planted miscompile did not reach the kernel source"
    first = planted[0].name
    assert err.kernel == first and f"kernel {first} (gemm) disagrees" in msg, msg
    assert "first wrong value: the tanh result float32[6, 16]" in msg and "computed by tanh" in msg, msg
    assert "test_modes.py" in msg                      # the user's line that made the tanh
    assert "max error" in msg and "reference" in msg
    # the generated line computing the op, quoted from the kernel source
    assert f"generated source {first}.cu line" in msg and "sinhf(" in msg, msg
    assert err.source_lines[0][0] == first
    assert any("sinhf(" in planted[0].source.splitlines()[number - 1] for _, number, _ in err.source_lines)
    # the same kernel without DebugMode runs and gives wrong numbers silently
    g, _, _ = _mlp_step("emu", "FAST_RUN")
    ref, _, _ = _mlp_step("reference", "FAST_RUN")
    assert not np.isclose(g(*batch), ref(*batch), rtol=1e-3)


def test_debug_mode_names_a_miscompiled_elementwise_kernel(monkeypatch):
    _plant(monkeypatch, "expm1(", "exp(")             # float64 exp, off by one
    x, y = T.dvector("x"), T.dvector("y")
    f = theta.function([x, y], T.exp(x) * y + 1, backend="emu", mode="DebugMode")
    with pytest.raises(DebugModeError) as info:
        f(np.array([0.5, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    msg = str(info.value)
    assert "(elemwise) disagrees with the reference" in msg and "the kernel computes: exp" in msg, msg
    assert "expm1(" in msg, msg                        # the miscompiled statement is quoted


# -- DebugMode on the reference backend ----------------------------------------------------------

def test_debug_mode_on_reference_checks_each_ops_result_against_its_type(monkeypatch):
    x = T.fmatrix("x")
    s = T.tanh(x).sum(axis=1)
    f = theta.function([x], s, mode="DebugMode")
    np.testing.assert_allclose(f(np.ones((2, 3), "float32")), 3 * np.tanh(1.0), rtol=1e-6)
    reduce_type = type(s.op)
    original = reduce_type.perform
    monkeypatch.setattr(reduce_type, "perform", lambda self, *args: np.asarray(original(self, *args))[None])
    g = theta.function([x], T.tanh(x).sum(axis=1) * 2, mode="DebugMode")
    with pytest.raises(DebugModeError, match=r"Sum\{1\} returned a value of rank 2 .*its type says rank 1"):
        g(np.ones((2, 3), "float32"))
    monkeypatch.setattr(reduce_type, "perform", lambda self, *args: np.asarray(original(self, *args)) > 0)
    h = theta.function([x], T.tanh(x).sum(axis=1) * 3, mode="DebugMode")
    with pytest.raises(DebugModeError, match=r"dtype bool, its type says float32"):
        h(np.ones((2, 3), "float32"))
