"""Random streams: Theano's ``RandomStreams`` / ``MRG_RandomStreams`` over counter-based draws.

    srng = RandomStreams(seed=1234)
    mask = srng.binomial(size=h.shape, p=0.5, dtype=h.dtype)     # a dropout mask
    f = theta.function([x], h * mask)                            # new numbers on every call

A stream owns one random state, an int64 shared variable ``[key, counter]`` (the key comes from
the seed). Every draw made from it gets a stream number of its own; its numbers are a function
of (key, stream number, counter, element) only (compiler/ops/random.py), so the reference,
emu and cuda backends draw the same bits. The state's ``default_update`` adds one to the
counter: ``theta.function`` applies it after every call of a function whose graph draws from
the stream (``no_default_updates=True`` turns that off), so each call sees new numbers. In a
scan step, the state is carried from step to step and its last value returned in scan's
``updates``, as in Theano: pass them to ``theta.function``. Without them the default update
still moves the counter past every counter the loops drew at (compiler/scan_streams.py), so
two calls never repeat numbers (Theano's do).

``seed(s)`` resets the key and the counter; the state is an ordinary shared variable, so it is
saved, pickled and restored with the others (``get_value``/``set_value``, ``theta.load``).

Distributions other than uniform and normal are graph algebra over those two: ``u < p`` for a
Bernoulli mask (fused into its consumer), an inverse CDF for categorical draws, ranks of
uniform keys for weighted sampling without replacement; permutations (and unweighted sampling
without replacement, their first elements) are a draw of their own (a swap-or-not shuffle).

Arguments NumPy and Theano refuse are refused (probabilities outside [0, 1] or not summing to
1, ``low > high``, more samples without replacement than categories, a ``p`` whose length is
not ``a``'s): when the graph is built for constants, when the function runs for symbolic ones
(compiler/ops/check.py: a GraphError on every backend, naming the argument and the line).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import GraphError, ShapeError, describe
from .graph import Variable, constant, user_line
from .ops.random import RandomDraw
from .ops.shape import symbolic_dims
from .random_args import distribution, enough, nonzero_enough, one_per_element, ordered, probability
from .shared import SharedVariable

DEFAULT_SEED = 12345     # MRG_RandomStreams' default


def _key(seed: int) -> int:
    """A 64-bit key from a seed (splitmix64's finalizer: nearby seeds give unrelated keys),
    as the signed int64 the state holds."""
    z = (int(seed) + 0x9E3779B97F4A7C15) % 2 ** 64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2 ** 64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2 ** 64
    z ^= z >> 31
    return z - 2 ** 64 if z >= 2 ** 63 else z


def _check_seed(seed) -> int:
    if seed is None:
        return DEFAULT_SEED
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise GraphError(f"a random seed must be an integer, got {seed!r}")
    return int(seed)


class RandomStreams:
    """Symbolic random number streams (Theano's ``theano.tensor.shared_randomstreams.RandomStreams``).

    Each draw (``uniform``, ``normal``, ``binomial``...) is a symbolic Variable whose numbers
    change on every call of the compiled function: the stream's state (``self.state``, an int64
    shared variable) is advanced by a default update that ``theta.function`` applies. The numbers
    are counter-based (Philox4x32-10), the same bits on every backend, and are computed inside the
    kernel that consumes them (a dropout mask is never written to memory).

    Parameters
    ----------
    seed : int, optional
        Default 12345 (MRG_RandomStreams' default).

    Examples
    --------
    >>> srng = RandomStreams(seed=1234)
    >>> h = T.nnet.relu(T.dot(x, W) + b)
    >>> h = h * srng.binomial(size=h.shape, p=0.5, dtype=h.dtype) / 0.5     # dropout
    """

    def __init__(self, seed: int | None = None) -> None:
        self._make_state(np.array([_key(_check_seed(seed)), 0], dtype=np.int64))
        self._streams = 0

    def _make_state(self, value: np.ndarray) -> None:
        self.state = SharedVariable(value, name="rng_state")
        self.state.default_update = self.state + constant(np.array([0, 1], dtype=np.int64))
        # a counter: loops that draw from it raise its default update past what they used
        # (compiler/scan_streams.py)
        self.state.is_stream_state = True

    # Pickling keeps the state's value and the stream count; the default update is rebuilt
    # (a shared variable pickles as its value alone).
    def __getstate__(self) -> dict:
        return {"state": self.state.get_value(), "streams": self._streams}

    def __setstate__(self, saved: dict) -> None:
        self._make_state(np.asarray(saved["state"], dtype=np.int64))
        self._streams = int(saved["streams"])

    # -- Theano's bookkeeping ---------------------------------------------------------------------
    @property
    def state_updates(self) -> list:
        """[(state, its new value after a call)] (Theano's attribute)."""
        return [(self.state, self.state.default_update)]

    def updates(self) -> list:
        """The ``(state, new state)`` pairs to pass as updates when default updates are off."""
        return list(self.state_updates)

    def seed(self, seed: int | None = None) -> None:
        """Restart every draw of this stream from ``seed`` (the counter goes back to zero)."""
        self.state.set_value(np.array([_key(_check_seed(seed)), 0], dtype=np.int64))

    def gen(self, dist: str, size, dtype: str) -> Variable:
        """One new draw of ``dist`` ('uniform' in (0, 1) or standard 'normal')."""
        entries, args = symbolic_dims(_size_entries(size))
        self._streams += 1
        return RandomDraw(dist, dtype, entries, self._streams)(self.state, *args)

    # -- distributions ----------------------------------------------------------------------------
    def uniform(self, size=(), low=0.0, high=1.0, ndim=None, dtype=None, nstreams=None) -> Variable:
        """Uniform numbers in [low, high) (in (0, 1) exactly for the defaults)."""
        from .tensor import basic as T
        low, high = T.as_tensor_variable(low), T.as_tensor_variable(high)
        dtype = _float_dtype(dtype, low, high)
        size = _size(size, ndim, [low, high])
        u = self.gen("uniform", size, dtype)
        if _is_value(low, 0) and _is_value(high, 1):
            return u
        return T.cast(low + (high - low) * u, dtype)

    def normal(self, size=(), avg=0.0, std=1.0, ndim=None, dtype=None, nstreams=None,
               truncate: bool = False) -> Variable:
        """Normal numbers of mean ``avg`` and standard deviation ``std`` (Box-Muller)."""
        from .tensor import basic as T
        if truncate:
            raise GraphError("normal(truncate=True) is not supported by theta's random streams")
        avg, std = T.as_tensor_variable(avg), T.as_tensor_variable(std)
        dtype = _float_dtype(dtype, avg, std)
        z = self.gen("normal", _size(size, ndim, [avg, std]), dtype)
        if _is_value(avg, 0) and _is_value(std, 1):
            return z
        return T.cast(avg + std * z, dtype)

    def binomial(self, size=(), n=1, p=0.5, ndim=None, dtype="int64", nstreams=None) -> Variable:
        """Successes in ``n`` Bernoulli trials of probability ``p`` (``n=1``: a 0/1 mask)."""
        from .tensor import basic as T
        p = probability(T.as_tensor_variable(p), "binomial", "p")
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise GraphError(f"binomial: n must be a non-negative integer, got {n!r}")
        size = _size(size, ndim, [p])
        udtype = "float64" if p.dtype == "float64" else "float32"
        if n == 1:
            return T.cast(T.lt(self.gen("uniform", size, udtype), p), dtype)
        u = self.gen("uniform", tuple(size) + (int(n),), udtype)
        hits = T.lt(u, p.dimshuffle(*range(p.ndim), "x"))
        return T.cast(T.sum(T.cast(hits, "int64"), axis=-1), dtype)

    def random_integers(self, size=(), low=0, high=1, ndim=None, dtype="int64") -> Variable:
        """Integers uniform in [low, high], both ends included (Theano's random_integers)."""
        from .tensor import basic as T
        low, high = T.as_tensor_variable(low), T.as_tensor_variable(high)
        high = ordered(low, high)
        u = self.gen("uniform", _size(size, ndim, [low, high]), "float64")
        span = T.cast(high - low + 1, "float64")
        return T.cast(T.minimum(low + T.cast(T.floor(u * span), "int64"), high), dtype)

    def choice(self, size=(), a=2, replace: bool = True, p=None, ndim=None, dtype="int64") -> Variable:
        """Elements of ``a`` (an int: range(a); or a vector), with probabilities ``p``;
        without replacement when ``replace`` is False (NumPy's ``choice``)."""
        from .tensor import basic as T
        values = None
        if isinstance(a, (int, np.integer)):
            k = int(a)
            if k <= 0:
                raise GraphError(f"choice: a must be positive, got {a}")
        else:
            values = T.as_tensor_variable(a)
            if values.ndim != 1:
                raise ShapeError(f"choice: a must be an int or a vector, got {describe(values)}")
            k = values.type.shape[0] if values.type.shape[0] is not None else values.shape[0]
        size = _size(size, ndim, [])
        given = None   # p as the caller gave it (the rules' messages name it)
        if p is not None:
            p = given = T.as_tensor_variable(p)
            if p.ndim != 1:
                raise ShapeError(f"choice: p must be a vector, got {describe(p)} at {user_line()}")
            p = one_per_element(p, k, distribution(p, "choice", "p"))
        if replace:
            u = self.gen("uniform", size, "float64")
            idx = _inverse_cdf(u, p) if p is not None else _scaled_index(u, k)
        else:
            count = int(np.prod([int(d) for d in size])) if all(isinstance(d, (int, np.integer)) for d in size) else None
            if count is None:
                raise ShapeError(f"choice without replacement needs a constant size, got {size} at {user_line()}")
            if p is not None:   # Efraimidis-Spirakis: the largest p / -log(u) are a weighted sample
                keys = T.cast(p, "float64") / T.log(self.gen("uniform", (k,), "float64"))
                order = nonzero_enough(given, count, _order(keys))   # so the smallest of these (p = 0: last)
            else:               # the first elements of a random permutation
                order = self.gen("permutation", (k,), "int64")
            order = enough(order, count, k, "choice (replace=False)", f"size {tuple(size)}", "elements in a")
            if isinstance(k, Variable):   # k known when the function runs: keep count entries
                # whatever k is (the check above refuses k < count before anything reads them)
                taken = order[T.maximum(T.minimum(T.arange(count), k - 1), 0)]
            else:
                taken = order[:count]
            idx = T.reshape(taken, size) if size else taken[0]
        idx = T.cast(idx, "int64")
        return idx.astype(dtype) if values is None else values[idx]

    def permutation(self, size=(), n=1, ndim=None, dtype="int64") -> Variable:
        """A random permutation of range(n) (one per element of ``size``)."""
        from .tensor import basic as T
        size = tuple(_size(size, ndim, []))
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer, Variable)) or (
                isinstance(n, (int, np.integer)) and n < 0):
            raise GraphError(f"permutation: n must be a non-negative integer, got {n!r} at {user_line()}")
        return T.cast(self.gen("permutation", size + (n,), "int64"), dtype)

    def multinomial(self, size=(), n=1, pvals=(0.5, 0.5), ndim=None, dtype="int64") -> Variable:
        """Counts per category of ``n`` draws with probabilities ``pvals`` (its last axis):
        shape ``size + (k,)``, or ``pvals.shape`` when ``size`` is None (MRG's rows)."""
        from .tensor import basic as T
        pvals = T.as_tensor_variable(pvals)
        if pvals.ndim == 0:
            raise ShapeError(f"multinomial: pvals needs a category axis, got {describe(pvals)} at {user_line()}")
        pvals = distribution(pvals, "multinomial", "pvals")
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise GraphError(f"multinomial: n must be a positive integer, got {n!r}")
        batch = tuple(pvals.shape[i] for i in range(pvals.ndim - 1)) if size is None else tuple(_size(size, ndim, []))
        u = self.gen("uniform", batch + (int(n),), "float64")
        lead = len(batch) - (pvals.ndim - 1)
        if lead < 0:
            raise ShapeError(f"multinomial: size {size} has fewer dims than the rows of {describe(pvals)}")
        pv = pvals.dimshuffle(*(["x"] * lead), *range(pvals.ndim - 1), "x", pvals.ndim - 1)  # batch, n, k
        idx = _inverse_cdf(u, pv)                                   # batch + (n,)
        k = pvals.shape[pvals.ndim - 1]
        onehot = T.eq(idx.dimshuffle(*range(idx.ndim), "x"), T.arange(k))
        return T.cast(T.sum(T.cast(onehot, "int64"), axis=-2), dtype)


class MRG_RandomStreams(RandomStreams):
    """Theano's ``theano.sandbox.rng_mrg.MRG_RandomStreams``: the same counter-based streams as :class:`RandomStreams`.

    The numbers differ from Theano's MRG31k3p for a given seed. ``nstreams`` is accepted and
    ignored (every element has its own counter); ``binomial`` and ``multinomial`` take their
    shape from ``p``/``pvals`` when ``size`` is None, and ``choice`` draws from the rows of ``p``
    without replacement, as MRG's does.

    Parameters
    ----------
    seed : int, optional
        Default 12345.
    """

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed)

    def binomial(self, size=None, n=1, p=0.5, ndim=None, dtype="int64", nstreams=None) -> Variable:
        return super().binomial(size, n, p, ndim, dtype)

    def multinomial(self, size=None, n=1, pvals=None, ndim=None, dtype="int64", nstreams=None) -> Variable:
        if pvals is None:
            raise GraphError("multinomial needs pvals")
        return super().multinomial(size, n, pvals, ndim, dtype)

    def choice(self, size=1, a=None, replace: bool = False, p=None, ndim=None, dtype="int64",
               nstreams=None) -> Variable:
        """``size`` categories per row of the matrix ``p``, without replacement: (rows, size)."""
        from .tensor import basic as T
        if p is None:
            raise GraphError("MRG_RandomStreams.choice needs p, a matrix of probabilities per row")
        p = T.as_tensor_variable(p)
        if p.ndim != 2 or replace:
            raise GraphError(f"MRG_RandomStreams.choice draws without replacement from the rows of a "
                             f"matrix p, got {describe(p)} with replace={replace}")
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise GraphError(f"MRG_RandomStreams.choice: size must be a positive int, got {size!r} at {user_line()}")
        p = distribution(p, "MRG_RandomStreams.choice", "p")
        keys = T.cast(p, "float64") / T.log(self.gen("uniform", (p.shape[0], p.shape[1]), "float64"))
        k = p.type.shape[1] if p.type.shape[1] is not None else p.shape[1]
        order = enough(_order(keys), int(size), k, "MRG_RandomStreams.choice", f"size={size}",
                        "categories (columns of p)")
        return T.cast(order[:, :int(size)], dtype)


# ------------------------------------------------------------------------------------- helpers

def _size_entries(size) -> list:
    if isinstance(size, Variable):
        if size.ndim == 0:
            return [size]
        if size.ndim != 1 or size.type.shape[0] is None:
            raise ShapeError(f"a random size must be a tuple or a vector of known length, got {describe(size)}")
        return [size[i] for i in range(size.type.shape[0])]
    if isinstance(size, (int, np.integer)):
        size = (size,)
    if not isinstance(size, (tuple, list)):   # a string would be split into letters
        raise ShapeError(f"a random size must be an int, a tuple of ints or scalars, or a vector, got {size!r}")
    entries = list(size)
    for d in entries:
        if isinstance(d, (bool, float, str, bytes)) or d is None:
            raise ShapeError(f"a random size must hold ints or integer scalars, got {tuple(entries)!r}")
        if isinstance(d, (int, np.integer)) and d < 0:
            raise ShapeError(f"a random size must not be negative, got {tuple(entries)}")
    return entries


def _size(size, ndim, params: Sequence[Variable]) -> tuple:
    """The draw's shape as entries (ints or scalars): ``size``, or the params' broadcast shape."""
    if size is None:
        big = max(params, key=lambda v: v.ndim, default=None)
        return tuple(big.shape[i] if big.type.shape[i] is None else big.type.shape[i]
                     for i in range(big.ndim)) if big is not None else ()
    entries = _size_entries(size)
    if ndim is not None and ndim != len(entries):
        raise ShapeError(f"random size {size} has {len(entries)} dims, ndim says {ndim}")
    for p in params:
        if p.ndim > len(entries):
            raise ShapeError(f"random size {size} has fewer dims than the parameter {describe(p)}")
    return tuple(entries)


def _float_dtype(dtype, *params: Variable) -> str:
    from .options import config
    if dtype is not None:
        if dtype not in ("float32", "float64"):
            raise GraphError(f"uniform/normal draws are float32 or float64, not {dtype}")
        return dtype
    return "float64" if any(p.dtype == "float64" for p in params) else config.floatX


def _is_value(v: Variable, x: float) -> bool:
    return v.is_constant and v.data.ndim == 0 and float(v.data) == x


def _scaled_index(u: Variable, k) -> Variable:
    """floor(u * k), kept below k (u * k can round up to k for large k)."""
    from .tensor import basic as T
    kf = T.cast(k, "float64")
    return T.minimum(T.cast(T.floor(u * kf), "int64"), T.cast(k, "int64") - 1)


def _inverse_cdf(u: Variable, p: Variable) -> Variable:
    """The category of each uniform ``u`` (shape B) under probabilities ``p`` (B, k) or (k,)
    broadcast: how many of the first k-1 cumulative sums lie at or below u."""
    from .tensor import basic as T
    k = p.shape[p.ndim - 1]
    j = T.arange(k)
    below = T.cast(T.le(j.dimshuffle(0, "x"), j.dimshuffle("x", 0)), "float64")     # (k, k): j' <= j
    pp = T.cast(p, "float64")
    pad = u.ndim - (p.ndim - 1)
    pp = pp.dimshuffle(*(["x"] * pad), *range(p.ndim)) if pad > 0 else pp
    cdf = T.sum(pp.dimshuffle(*range(pp.ndim), "x") * below, axis=pp.ndim - 1)      # B, k
    passed = T.ge(u.dimshuffle(*range(u.ndim), "x"), _drop_last(cdf))
    return T.sum(T.cast(passed, "int64"), axis=-1)


def _drop_last(x: Variable) -> Variable:
    return x[(slice(None),) * (x.ndim - 1) + (slice(None, -1),)]


def _order(keys: Variable) -> Variable:
    """argsort of ``keys`` along the last axis (ties by position), as graph algebra: each key's
    rank counts the keys before it, then position r holds the index whose rank is r."""
    from .tensor import basic as T
    nd = keys.ndim
    a = keys.dimshuffle(*range(nd), "x")         # ..., i, 1
    b = keys.dimshuffle(*range(nd - 1), "x", nd - 1)   # ..., 1, j
    k = keys.shape[nd - 1]
    idx = T.arange(k)
    earlier = T.lt(idx.dimshuffle("x", 0), idx.dimshuffle(0, "x"))        # (j, i): i ... j index pairs
    # rank[j] = #{i: key_i < key_j or (key_i == key_j and i < j)}
    before = T.or_(T.lt(b, a), T.and_(T.eq(b, a), earlier))               # [..., j, i]
    rank = T.sum(T.cast(before, "int64"), axis=-1)                        # ..., j
    hit = T.eq(rank.dimshuffle(*range(nd - 1), "x", nd - 1), idx.dimshuffle(0, "x"))   # [..., r, j]
    return T.sum(T.cast(hit, "int64") * idx, axis=-1)
