"""Every kernel family once, checked against the reference backend: the program that
``python3 -m bench sanitize`` runs under compute-sanitizer.

    python3 bench/sanitize_target.py                 # the cuda backend (what the sanitizer sees)
    python3 bench/sanitize_target.py --backend emu   # the same kernels on the CPU

Shapes are small and odd (a sanitizer slows kernels down 10-100x, and odd sizes reach the
tails of every loop). Prints one line per case; exits 1 if any result disagrees.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

import numpy as np

import theta
import theta.tensor as T

RNG = np.random.default_rng(0)
TOL = {"float32": 1e-4, "float64": 1e-10, "int32": 0, "int64": 0}


def matrices(dtype: str) -> list:
    return [T.matrix("x", dtype=dtype), T.matrix("y", dtype=dtype)]


def values(dtype: str, shape=(37, 53)) -> list[np.ndarray]:
    if dtype.startswith("int"):
        return [RNG.integers(-9, 9, shape).astype(dtype) for _ in range(2)]
    return [RNG.standard_normal(shape).astype(dtype) for _ in range(2)]


# name -> (dtype, graph builder over two matrices x, y of shape 37x53)
GRAPHS: dict[str, tuple[str, Callable]] = {
    "elemwise float32": ("float32", lambda x, y: [T.tanh(x) * y + 1, T.nnet.sigmoid(x * y) - T.exp(-x * x)]),
    "elemwise float64": ("float64", lambda x, y: [T.log1p(abs(x)) / (1 + y * y)]),
    "elemwise int32": ("int32", lambda x, y: [x * 2 + y, abs(x - y)]),
    "reduce rows/columns/all": ("float32", lambda x, y: [T.sum(T.exp(x), axis=1), T.sum(x * y, axis=0),
                                                       T.max(x, axis=0), T.mean(x * y)]),
    "reduce int32 + argmax": ("int32", lambda x, y: [T.sum(x, axis=1), T.argmax(x, axis=1)]),
    "gemm": ("float32", lambda x, y: [T.dot(x, y.T), T.tanh(T.dot(x.T, y) + 1)]),
    "gemm float64": ("float64", lambda x, y: [T.dot(x.T, y)]),
    "softmax": ("float32", lambda x, y: [T.nnet.softmax(x), T.nnet.log_softmax(x * 3)]),
    "softmax gradient": ("float64", lambda x, y: theta.grad(T.sum(T.nnet.softmax(x) * y), [x])),
    "gather": ("float32", lambda x, y: [x[np.array([0, 36, 2, 2])], x[np.array([1, 0]), np.array([52, 3])]]),
    "scatter": ("float32", lambda x, y: [T.inc_subtensor(x[np.array([1, 1, 5])], y[:3]),
                                         T.set_subtensor(x[2:], y[2:] * 2)]),
    "concat": ("float32", lambda x, y: [T.concatenate([x, y], axis=1), T.stack([x, y], axis=0)]),
}


def compare(name: str, got: list, want: list, tol: float) -> bool:
    ok = True
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape or g.dtype != w.dtype:
            print(f"FAIL {name} output {k}: {g.dtype}{g.shape} vs the reference's {w.dtype}{w.shape}")
            ok = False
        elif not np.allclose(g, w, rtol=tol, atol=tol * max(1.0, float(np.abs(w).max(initial=0)))):
            print(f"FAIL {name} output {k}: max difference {float(np.abs(g.astype('f8') - w).max()):.3g}")
            ok = False
    return ok


def run_graphs(backend: str) -> bool:
    ok = True
    for name, (dtype, build) in GRAPHS.items():
        x, y = matrices(dtype)
        outs = build(x, y)
        args = values(dtype)
        want = theta.function([x, y], outs, backend="reference", on_unused_input="ignore")(*args)
        f = theta.function([x, y], outs, backend=backend, on_unused_input="ignore")
        got = f(*args)
        good = compare(name, got, want, TOL[dtype])
        print(f"{'ok  ' if good else 'FAIL'} {name}: {', '.join(k.family for k in f.kernels)}")
        ok &= good
    return ok


def mlp_step(backend: str, weights: list[np.ndarray], batch_x, batch_y):
    x, y = T.fmatrix("x"), T.ivector("y")
    params = [theta.shared(w.copy()) for w in weights]
    h = x
    for k in range(0, len(params), 2):
        z = T.dot(h, params[k]) + params[k + 1]
        h = T.tanh(z) if k < len(params) - 2 else z
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(h), y))
    grads = theta.grad(cost, params)
    f = theta.function([x, y], cost, updates=[(p, p - 0.1 * g) for p, g in zip(params, grads)], backend=backend)
    costs = [f(batch_x, batch_y) for _ in range(2)]
    return costs, [p.get_value() for p in params], f


def run_mlp(backend: str) -> bool:
    sizes = (64, 33, 32, 10)
    weights = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        weights += [(RNG.standard_normal((n_in, n_out)) * 0.1).astype("float32"), np.zeros(n_out, "float32")]
    bx, by = RNG.random((20, sizes[0])).astype("float32"), RNG.integers(0, 10, 20).astype("int32")
    want_costs, want_params, _ = mlp_step("reference", weights, bx, by)
    got_costs, got_params, f = mlp_step(backend, weights, bx, by)
    good = compare("mlp step", got_costs + got_params, want_costs + want_params, 1e-4)
    print(f"{'ok  ' if good else 'FAIL'} mlp sgd step x2: {', '.join(k.family for k in f.kernels)}")
    return good


def run_minibatches(backend: str) -> bool:
    """Batches as runtime offsets into a resident dataset (givens slices), then a shuffle."""
    from theta.minibatch import Minibatches
    data = {"x": RNG.standard_normal((23, 5)).astype("float32"), "y": np.arange(23, dtype="int32")}
    mb = Minibatches(data, 4, seed=1, resident=True, backend=backend)
    i, x, y = T.lscalar("i"), T.fmatrix("x"), T.ivector("y")
    f = theta.function([i], [T.sum(x, axis=1), y * 2], givens=mb.givens({x: "x", y: "y"}, i), backend=backend)
    seen = []
    for k in mb.epoch():
        rows, ys = f(k)
        seen += (ys // 2).tolist()
        good = np.allclose(rows, data["x"][ys // 2].sum(axis=1), rtol=1e-5, atol=1e-5)
        if not good:
            print(f"FAIL minibatch {k}: row sums disagree")
            return False
    good = sorted(seen) == list(range(23))
    print(f"{'ok  ' if good else 'FAIL'} resident minibatches (dynamic offsets) and a shuffle")
    return good


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cuda", choices=["cuda", "emu"])
    args = parser.parse_args(argv)
    ok = run_graphs(args.backend)
    ok &= run_mlp(args.backend)
    ok &= run_minibatches(args.backend)
    print("all cases agree with the reference" if ok else "SOME CASES DISAGREE with the reference")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
