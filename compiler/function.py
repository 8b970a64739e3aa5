"""theta.function: compile symbolic inputs/outputs/updates into a callable.

Calling it binds and checks the arguments (before any work), picks the specialization for
their shapes (compiling it on first use: specialize -> rewrite passes -> backend program),
runs it, and applies the updates to the shared variables after all outputs are computed (a
kernel backend applies them itself, in the variables' device buffers).

What runs a specialized graph is asked of the binder in compiler/binder.py (theta/binding.py,
installed by theta/__init__.py): the compiler never imports the runtime.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, Sequence

import numpy as np

from . import sparse
from . import specialize as spz
from .errors import (DTypeError, GraphError, InputError, OptionError, ShapeError, ThetaError, describe,
                     public_entry)
from .graph import Variable, rebuild, toposort, user_stacklevel
from .options import CompileOptions
from .binder import binder
from .convert import MISSING, convert_input, place_arguments
from .prep import Prep
from .scan_streams import advanced_default_update
from .shared import SharedVariable


@dataclasses.dataclass
class In:
    """An input of :func:`function` with a default value or a keyword name (Theano's ``theano.In``).

    Parameters
    ----------
    variable : Variable
        A symbolic input (a declaration such as ``T.matrix()``), not a constant or an expression.
    value : array-like, optional
        Default used when the call omits this argument.
    name : str, optional
        Keyword under which the call may pass it (default the variable's name).
    borrow, mutable : bool, optional
        Accepted for Theano compatibility; inputs are never aliased or modified.

    Raises
    ------
    InputError
        ``variable`` is not a symbolic input variable.

    Examples
    --------
    >>> x, lr = T.matrix("x"), T.scalar("lr")
    >>> f = theta.function([x, theta.In(lr, value=0.1)], x * lr)
    >>> f(xv)            # lr = 0.1
    >>> f(xv, lr=0.01)
    """
    variable: Variable
    value: Any = None
    name: str | None = None
    borrow: bool = False
    mutable: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.variable, Variable) or not self.variable.is_leaf or self.variable.is_constant:
            raise InputError(f"theta.In needs a symbolic input variable, got {self.variable!r}")
        self.name = self.name or self.variable.name


# backends that apply updates themselves, one step at a time per device (runtime/executor.py)
DEVICE_BACKENDS = ("emu", "cuda")
# steps whose updates this module stores, on every other backend (reentrant: a step may call a
# function of its own)
_HOST_UPDATES = threading.RLock()


class Function:
    """A compiled function, as returned by :func:`function`: call it with the inputs' values.

    Each call binds the arguments (positional, or by name for ``In`` inputs with names and
    defaults), specializes the graph to the shapes of the values (once per shape signature:
    later calls of the same shapes reuse it), runs it on the chosen backend, applies the updates
    to the shared variables and returns the outputs as NumPy arrays (a list when ``outputs`` was
    a list, else a single array; None when there are no outputs).

    Attributes: ``f.kernels`` (the kernels of the last specialization: ``.name``, ``.source``,
    ``.grid``, ``.block``), ``f.program`` (its Program), ``f.maker.fgraph.outputs`` (Theano's
    idiom), ``f.save(path)`` (the Program plus the shared variables' current values, runnable
    later by :func:`theta.load`). A Function pickles (its graph, not its kernels).

    Parameters
    ----------
    inputs, outputs, updates, givens, name, on_unused_input, backend, allow_input_downcast
        As for :func:`function`.
    no_default_updates : bool or list, optional
        True turns off the random streams' default state updates (all, or those listed).
    nan_guard : bool, optional
    optimizer : str, optional
        ``'fast_run'`` or ``'fast_compile'``/``'None'`` (required rewrites only).
    debug_mode : bool, optional
        Check every kernel against the reference evaluation of its nodes (``mode='DebugMode'``).
    outputs_on_device : bool, optional
        Return the outputs as device arrays on the kernel backends (see ``function``).
    """
    def __init__(self, inputs: Sequence, outputs=None, updates=None, givens=None, name: str | None = None,
                 on_unused_input: str = "raise", backend: str | None = None,
                 allow_input_downcast: bool | None = None, no_default_updates=False,
                 nan_guard: bool | None = None, optimizer: str | None = None, debug_mode: bool = False,
                 outputs_on_device: bool = False) -> None:
        from .tensor.basic import as_tensor_variable
        # kernel backends: return outputs as device arrays (with __cuda_array_interface__ on
        # cuda) instead of downloading them: for a consumer that reads device memory (MPI)
        self.outputs_on_device = bool(outputs_on_device)
        self.name = name
        self.options = CompileOptions.from_config(backend, nan_guard, optimizer, debug_mode)
        self.allow_input_downcast = bool(allow_input_downcast)
        if on_unused_input not in ("raise", "warn", "ignore"):  # a typo must not mean "ignore"
            raise OptionError(f"on_unused_input must be 'raise', 'warn' or 'ignore', got {on_unused_input!r}")
        if isinstance(inputs, (Variable, In)):
            raise InputError("theta.function: inputs must be a list of variables")
        # a sparse matrix input is its CSR arrays (compiler/sparse.py); a call binds its value to them
        inputs, self._sparse = sparse.expand_inputs(inputs)
        self.inputs = [i if isinstance(i, In) else In(i) for i in inputs]
        for i in self.inputs:
            if isinstance(i.variable, SharedVariable):
                raise InputError(f"shared variable {describe(i.variable)} cannot be an explicit input; "
                                 "it is an implicit input of every function that uses it")
        ids = [id(i.variable) for i in self.inputs]
        if len(set(ids)) != len(ids):
            raise InputError("theta.function: the same variable appears twice in inputs")

        self._single = outputs is not None and not isinstance(outputs, (list, tuple))
        outs = [] if outputs is None else ([outputs] if self._single else list(outputs))
        self._outputs = [as_tensor_variable(o) for o in outs]

        pairs = list(updates.items()) if isinstance(updates, dict) else list(updates or [])
        self._updates: list[tuple[SharedVariable, Variable]] = []
        for var, expr in pairs:
            if not isinstance(var, SharedVariable):
                raise GraphError(f"updates: {describe(var)} is not a shared variable")
            expr = as_tensor_variable(expr)
            if expr.ndim != var.ndim:
                raise ShapeError(f"update of {describe(var)} with {describe(expr)}: ranks differ")
            if expr.dtype != var.dtype:
                # Theano refuses these too: a float64 update would be rounded to float32 at every
                # step without a word (Python numbers in the expression keep its dtype)
                raise DTypeError(f"update of {describe(var)} with {describe(expr)}: an update must have the "
                                 f"shared variable's dtype {var.dtype}; cast it (T.cast(expr, '{var.dtype}'))")
            self._updates.append((var, expr))
        if len({id(v) for v, _ in self._updates}) != len(self._updates):
            raise GraphError("updates: a shared variable is updated twice")

        graph = self._outputs + [e for _, e in self._updates]
        if givens:
            items = givens.items() if isinstance(givens, dict) else givens
            replace = {}
            for item in items:
                if not isinstance(item, (tuple, list)) or len(item) != 2:
                    raise GraphError(f"givens: expected (variable, replacement) pairs, got {item!r}")
                old, new = item
                if not isinstance(old, Variable) or old.is_constant:
                    raise GraphError(f"givens: the key {old!r} is not a symbolic variable; givens maps the "
                                     "variables themselves (givens={x: value}), not their names")
                new = as_tensor_variable(new)
                if old.ndim != new.ndim or old.dtype != new.dtype:
                    raise GraphError(f"givens: {describe(old)} replaced by {describe(new)}: types differ")
                replace[old] = new
            graph = rebuild(graph, replace)
        self._graph = graph

        input_ids = {id(i.variable) for i in self.inputs}
        self.shared: list[SharedVariable] = []
        used = set()
        for leaf in (v for v in toposort(graph) if v.is_leaf):
            used.add(id(leaf))
            if leaf.is_constant or id(leaf) in input_ids:
                continue
            if isinstance(leaf, SharedVariable):
                self.shared.append(leaf)
                continue
            raise GraphError(f"theta.function: the outputs depend on {describe(leaf)}, which is not among the "
                             "inputs (add it to inputs, or give it a value with givens=)")
        self._add_default_updates(no_default_updates)
        for v, _ in self._updates:
            if v not in self.shared:
                self.shared.append(v)
        unused = [i for i in self.inputs if id(i.variable) not in used]
        if unused and on_unused_input != "ignore":
            msg = "theta.function: unused input(s) " + ", ".join(describe(i.variable) for i in unused)
            if on_unused_input == "raise":
                raise GraphError(msg + " (pass on_unused_input='ignore' or 'warn' to allow)")
            import warnings
            warnings.warn(msg, stacklevel=user_stacklevel())
        self._names = {}
        for pos, i in enumerate(self.inputs):
            if i.name:
                self._names.setdefault(i.name, pos)
        self._specs: dict[tuple, _Specialization] = {}

    def _add_default_updates(self, skip) -> None:
        """Theano's default updates: a shared variable the graph reads that carries a
        ``default_update`` (a random stream's state advancing its counter) gets that update,
        unless ``updates`` already has one for it or ``no_default_updates`` names it (or is True)."""
        if skip is True:
            return
        skip_ids = {id(v) for v in (skip or ())} if not isinstance(skip, bool) else set()
        pending = list(self.shared)
        while pending:
            var = pending.pop(0)
            upd = getattr(var, "default_update", None)
            if upd is None or id(var) in skip_ids or any(u is var for u, _ in self._updates):
                continue
            upd = advanced_default_update(var, upd, self._graph)   # past what loops drew from a stream
            self._updates.append((var, upd))
            self._graph.append(upd)
            for leaf in toposort([upd]):   # an update may read shared variables of its own
                if isinstance(leaf, SharedVariable) and leaf not in self.shared:
                    self.shared.append(leaf)
                    pending.append(leaf)

    # -- calling --------------------------------------------------------------------------------
    @public_entry
    def __call__(self, *args, **kwargs):
        values = self._bind(args, kwargs)
        if not self._updates or self.options.backend in DEVICE_BACKENDS:
            return self._step(values)
        # The reference backend returns update values that _step stores: one such step at a
        # time, or two threads read the same shared value and one increment is lost (the kernel
        # backends run one step at a time per device, under the device's lock).
        with _HOST_UPDATES:
            return self._step(values)

    def _step(self, values: list):
        key = tuple(v.shape for v in values) + tuple(s.value_shape for s in self.shared)
        spec = self._specs.get(key)
        if spec is None:
            spec = self._specs[key] = _Specialization(self, key)
        # Shared variables go in as themselves: each backend reads the copy it keeps (the host
        # array, or a device-resident one that is never downloaded between steps).
        results, applied = spec.run(values + list(self.shared))
        n_out = len(self._outputs)
        # Every returned output and every new shared value gets its own memory: equal outputs
        # are one hash-consed node (one array), an update may be an input or another shared
        # variable, and an output may be a view of an input.
        taken = {id(v): v for v in values}
        taken.update({id(s._value): s._value for s in self.shared})
        outs = [r if _on_device(r) else _owned(r, taken) for r in results[:n_out]]
        if not applied:   # the reference backend returns update values; kernel backends apply them
            # Check every new value before storing any, so a bad one leaves all of them unchanged.
            new_values = [var.filter_value(_owned(value, taken))
                          for (var, _), value in zip(self._updates, results[n_out:])]
            for (var, _), value in zip(self._updates, new_values):
                var.set_value(value, borrow=True)
        if self._single:
            return outs[0]
        return outs

    def _bind(self, args, kwargs) -> list[np.ndarray]:
        if getattr(self, "_sparse", None):
            args, kwargs = sparse.bind_args(self._sparse, args, kwargs, self._what(), self.allow_input_downcast)
        slots = place_arguments(args, kwargs, self._names, len(self.inputs), self._what())
        out = []
        for pos, (inp, value) in enumerate(zip(self.inputs, slots)):
            if value is MISSING:
                if inp.value is None:
                    raise InputError(f"{self._what()}: missing input {pos} {describe(inp.variable)}")
                value = inp.value
            out.append(self._convert(inp.variable, value, pos))
        return out

    def _convert(self, var: Variable, value, pos: int) -> np.ndarray:
        where = f"{self._what()}: input {pos} {describe(var)}"
        if isinstance(value, Variable):
            raise InputError(f"{where} got the symbolic variable {value!r}; pass a value")
        return convert_input(value, var.dtype, var.type.shape, where, allow_downcast=self.allow_input_downcast)

    def _what(self) -> str:
        return f"function {self.name!r}" if self.name else "function"

    # -- introspection --------------------------------------------------------------------------
    def specialization(self, *args, **kwargs) -> "_Specialization":
        """The compiled specialization these arguments would run (compiling it if needed)."""
        values = self._bind(args, kwargs)
        key = tuple(v.shape for v in values) + tuple(s.value_shape for s in self.shared)
        if key not in self._specs:
            self._specs[key] = _Specialization(self, key)
        return self._specs[key]

    @property
    def maker(self):  # Theano's f.maker.fgraph.outputs idiom
        return self

    def _compiled(self):
        program = getattr(self, "_last_program", None)
        if program is None:
            raise ThetaError(f"{self._what()} has not been compiled for concrete shapes yet: call it once "
                             "(or f.specialization(*args)) first")
        return program

    @property
    def kernels(self) -> list:
        """The CUDA kernels of the most recently run specialization ([] on the reference
        backend, which runs the graph with NumPy)."""
        return list(getattr(self._compiled(), "kernels", []))

    @property
    def program(self):
        """The Program (kernels, launches, buffer plan, I/O signature) of the most recently run
        specialization; ``f.program.save(path)`` writes it. Needs a kernel backend (emu, cuda)."""
        program = getattr(self._compiled(), "program", None)
        if program is None:
            raise ThetaError(f"{self._what()} runs on the reference backend, which has no kernels; "
                             "compile with backend='emu' or 'cuda' to get a Program")
        return program

    def save(self, path) -> None:
        """Save the latest specialization's Program with the current shared values, to be run
        later by ``theta.load(path)`` (on the GPU, or on the CPU through emu)."""
        import dataclasses
        program = dataclasses.replace(
            self.program, n_updates=len(self._updates),
            update_targets=[len(self.inputs) + self.shared.index(v) for v, _ in self._updates])
        names = [leaf.name for leaf in program.leaves[len(self.inputs):]]
        binder().save_function(path, program, {n: v.get_value() for n, v in zip(names, self.shared)},
                               n_inputs=len(self.inputs), single=self._single, n_outputs=len(self._outputs),
                               name=self.name, allow_input_downcast=self.allow_input_downcast,
                               specialized=getattr(self, "_last_baked", {}),
                               inputs=[(i.name, i.value) for i in self.inputs])

    # -- pickling -------------------------------------------------------------------------------
    def __reduce__(self):
        from .serialize import dump_function
        return (_load_function, (dump_function(self),))


def _load_function(state):
    from .serialize import load_function
    return load_function(state)


# Theano's mode names that theta.function accepts (compiler/mode.py)
from .mode import MODES, get_mode  # noqa: E402


def _on_device(value) -> bool:
    """A device-resident result (runtime.device.DeviceArray), left on the device."""
    return hasattr(value, "ptr") and not isinstance(value, (np.ndarray, np.generic))


def _owned(result: np.ndarray, taken: dict) -> np.ndarray:
    """``result``, copied unless it is a fresh buffer: outputs never alias an input, a shared
    value or each other (a later update or user write would show). ``taken`` (id -> array) holds
    the input and shared values and the results already handed out; ``result`` is added to it.
    An array that owns its memory can only alias one of those by being it, and a view is
    always copied, so identity is enough (and cheap with many parameters)."""
    result = np.asarray(result)
    if not result.flags.owndata or not result.flags.writeable or id(result) in taken:
        result = np.array(result, copy=True)
    taken[id(result)] = result
    return result


class _Specialization:
    """The function compiled for one shape signature (and its value-dependent variants)."""

    def __init__(self, fn: Function, shapes: tuple) -> None:
        from .rewrite import optimize
        self.fn = fn
        self.leaves = [i.variable for i in fn.inputs] + list(fn.shared)
        leaf_map = spz.concrete_leaves(self.leaves, shapes)
        self.concrete = list(leaf_map.values())
        self.level1 = spz.level1(fn._graph, leaf_map)
        self.plan = spz.DynamicPlan(self.level1)
        self._variants: dict[tuple, tuple] = {}
        if self.plan.empty:
            self.outputs = optimize(self.level1, fn.options.optimizer)
            self.program = _build(fn, self.outputs, self.concrete, [])
        else:
            # minibatch starts and lengths from the index scalars alone, never from the data
            self._prep = Prep(self.plan, _reference_evaluate)
        # inputs whose values a variant is compiled for (a reshape's size, a scan's length): a
        # saved program checks them (theta.load), as they are constants in its kernels
        baked = {id(v) for v in toposort(self.plan.static_vars) if v.is_leaf}
        self._baked = [pos for pos, leaf in enumerate(self.concrete[:len(fn.inputs)]) if id(leaf) in baked]

    def run(self, leaf_values: list) -> tuple[list, bool]:
        """(results, whether the backend applied the updates itself)."""
        self.fn._last_baked = {pos: np.asarray(leaf_values[pos]).tolist() for pos in self._baked}
        if self.plan.empty:
            self.fn._last_program = self.program
            return self.program.run(leaf_values, []), self.program.applies_updates
        env = {id(leaf): v for leaf, v in zip(self.concrete, leaf_values)}
        values = self._prep.values(env)
        key = self.plan.key(values)
        variant = self._variants.get(key)
        if variant is None:
            from .rewrite import optimize
            outs, implicit = spz.level2(self.level1, self.plan, values)
            outs = optimize(outs, self.fn.options.optimizer)
            program = _build(self.fn, outs, self.concrete, [leaf for leaf, _ in implicit])
            variant = self._variants[key] = (program, implicit, outs)
        program, implicit, _ = variant
        self.fn._last_program = program
        runtime_scalars = [int(value_fn(values)) for _, value_fn in implicit]
        return program.run(leaf_values, runtime_scalars), program.applies_updates

    @property
    def programs(self) -> list:
        if self.plan.empty:
            return [self.program]
        return [v[0] for v in self._variants.values()]


def _reference_evaluate(outputs, env):
    """Prep's evaluator: the reference interpreter over just the leaves ``outputs`` read."""
    leaves = [v for v in toposort(outputs) if v.is_leaf and not v.is_constant]
    return binder().reference(outputs, leaves).run([env[id(v)] for v in leaves], [])


def _build(fn: Function, outputs: list[Variable], leaves: list, scalars: list):
    """The backend runner of a specialized, rewritten graph (outputs, then update values)."""
    targets = [len(fn.inputs) + fn.shared.index(v) for v, _ in fn._updates]
    runner = binder().build(outputs, fn.options, leaves, scalars, len(fn._outputs), targets, n_inputs=len(fn.inputs))
    if getattr(fn, "outputs_on_device", False) and hasattr(runner, "outputs_on_device"):
        runner.outputs_on_device = True
    return runner


@public_entry
def function(inputs, outputs=None, updates=None, givens=None, name: str | None = None,
             on_unused_input: str = "raise", backend: str | None = None,
             allow_input_downcast: bool | None = None, mode=None, nan_guard: bool | None = None,
             **kwargs) -> Function:
    """Compile symbolic inputs and outputs into a callable (Theano's ``theano.function``).

    Parameters
    ----------
    inputs : list of Variable or In
        The arguments of the call, in order: symbolic inputs (declarations), possibly wrapped in
        :class:`In` for defaults and keyword names. Sparse ``csr_matrix`` inputs take scipy
        sparse values.
    outputs : Variable or list of Variable, optional
        What the call returns: one array for one Variable, a list for a list.
    updates : list of (SharedVariable, Variable) pairs or dict, optional
        New values of shared variables, applied after each call (all computed from the old
        values, as in Theano). On the kernel backends an update is written in place when safe.
    givens : list of pairs or dict, optional
        Substitutions made before compiling: ``{x: data[i * bs:(i + 1) * bs]}`` makes a minibatch
        a slice of a shared dataset selected by an index input.
    name : str, optional
        Shown in errors.
    on_unused_input : {'raise', 'warn', 'ignore'}, optional
        An input the outputs do not depend on is an error by default (as Theano).
    backend : {'reference', 'emu', 'cuda', 'auto'}, optional
        Default ``theta.config.backend``. ``reference`` evaluates with NumPy (the oracle);
        ``emu`` compiles the generated CUDA C with g++ and runs it on the CPU; ``cuda`` runs it on
        an NVIDIA GPU through pycuda; ``auto`` picks cuda when available, else reference.
    allow_input_downcast : bool, optional
        Accept values of a wider dtype (float64 into a float32 input) by casting them.
    mode : str or Mode, optional
        Theano's modes: ``'FAST_RUN'`` (default), ``'FAST_COMPILE'`` (fewer rewrites),
        ``'DebugMode'`` (each kernel checked against the reference evaluation of its nodes),
        ``'NanGuardMode'`` (the NaN guard). An unknown mode is an error.
    nan_guard : bool, optional
        Stop at the first op or kernel producing a NaN or Inf with a ``NanError`` naming it
        (default ``theta.config.nan_guard``).
    **kwargs
        ``no_default_updates`` (turn off the random streams' state updates),
        ``outputs_on_device`` (kernel backends: return the outputs as device arrays, with
        ``__cuda_array_interface__`` on cuda, instead of downloading them; another function
        takes them as inputs without a copy through the host), and Theano's ``rebuild_strict``
        and ``profile`` (accepted, ignored).

    Returns
    -------
    Function

    Raises
    ------
    InputError
        An unknown keyword argument, or inputs that are not a list of symbolic variables.
    OptionError
        An unknown mode, backend or ``on_unused_input``.
    GraphError
        An output needs an input that is not listed (or listed inputs are unused).

    Examples
    --------
    >>> x, y = T.matrix("x"), T.ivector("y")
    >>> W = theta.shared(np.zeros((64, 10), dtype="float32"), name="W")
    >>> cost = T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(x, W)), y).mean()
    >>> train = theta.function([x, y], cost, updates=[(W, W - 0.1 * theta.grad(cost, W))])
    >>> train(xb, yb)          # one SGD step; returns the cost
    """
    unknown = set(kwargs) - {"no_default_updates", "rebuild_strict", "profile", "outputs_on_device"}
    if unknown:
        raise InputError(f"theta.function got unknown keyword argument(s): {', '.join(sorted(unknown))}")
    # a name or a theta.Mode (compiler/mode.py); None: theta.config.mode, else FAST_RUN
    explicit = mode is not None
    try:
        mode = get_mode(mode)
    except OptionError as e:
        raise OptionError(f"theta.function: {e}") from None
    if mode.nan_guard and nan_guard is None:   # NanGuardMode: Theano's name for the NaN guard
        nan_guard = True
    if backend is None:
        backend = mode.backend
    optimizer = mode.level if explicit or getattr(mode, "name", "") != "FAST_RUN" else None
    return Function(inputs, outputs, updates, givens, name, on_unused_input, backend, allow_input_downcast,
                    kwargs.get("no_default_updates", False), nan_guard=nan_guard, optimizer=optimizer,
                    debug_mode=mode.debug, outputs_on_device=kwargs.get("outputs_on_device", False))

