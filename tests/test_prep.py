"""compiler.prep: the per-call values of a level-2 plan's scalars (slice bounds, value-dependent
sizes) equal evaluating them as written, yet a size that only depends on shapes never makes the
host read the dataset or the weights (it is rebuilt once per distinct batch length)."""
import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler import prep as prep_module
from theta.compiler import specialize as spz
from theta.compiler.prep import Prep
from theta.runtime.reference import ReferenceProgram

N, BS = 10, 4       # three batches: 4, 4 and a partial 2
RNG = np.random.default_rng(0)


def train_step_plan(extra=None):
    """A givens-style SGD step of softmax regression (theta train's pattern): the minibatch is
    ``data[i*bs:(i+1)*bs]``, the cost indexes with ``T.arange(y.shape[0])`` and takes a mean;
    ``extra(x, y, k)`` adds outputs (``k``: another integer input).
    Returns (plan, concrete leaves by name, leaf values by name)."""
    data, labels, W, b = T.matrix("data"), T.ivector("labels"), T.matrix("W"), T.vector("b")
    i, k = T.lscalar("i"), T.lscalar("k")
    x, y = data[i * BS:(i + 1) * BS], labels[i * BS:(i + 1) * BS]
    p = T.nnet.softmax(T.dot(x, W) + b)
    cost = -T.mean(T.log(p)[T.arange(y.shape[0]), y])
    gW, gb = theta.grad(cost, [W, b])
    outputs = [cost, W - 0.1 * gW, b - 0.1 * gb] + (extra(x, y, k) if extra else [])
    leaves = [i, k, data, labels, W, b]
    values = {"i": np.int64(0), "k": np.int64(3), "data": RNG.standard_normal((N, 5)).astype("float32"),
              "labels": (np.arange(N) % 3).astype("int32"), "W": RNG.standard_normal((5, 3)).astype("float32"),
              "b": np.zeros(3, "float32")}
    leaf_map = spz.concrete_leaves(leaves, [np.shape(values[v.name]) for v in leaves])
    plan = spz.DynamicPlan(spz.level1(outputs, leaf_map))
    return plan, {v.name: v for v in leaf_map.values()}, values


def env_for(leaves: dict, values: dict, i: int) -> dict:
    """What _Specialization hands over: every leaf of the specialization, batch ``i``."""
    return {id(leaves[name]): np.int64(i) if name == "i" else values[name] for name in leaves}


class Counting:
    """The reference evaluator, recording the names of the leaves each call is handed."""

    def __init__(self, leaves: dict) -> None:
        self.names = {id(v): k for k, v in leaves.items()}
        self.calls: list[set] = []

    def __call__(self, outputs, env):
        self.calls.append({self.names.get(k, "implicit") for k in env})
        return ReferenceProgram(outputs).run(env)

    @property
    def read(self) -> set:
        return set().union(*self.calls)


def assert_matches_reference(plan, leaves, values, prep, batches=(0, 1, 2, 0, 2)):
    for i in batches:
        env = env_for(leaves, values, i)
        got = prep.values(env)
        want = ReferenceProgram(plan.scalars).run(env)
        assert [got[id(v)] for v in plan.scalars] == [int(w) for w in want], i


def test_train_step_plan_reads_a_batch_length_through_the_forward_pass():
    # the premise: a size scalar of the plan is the shape of the model's output
    plan, _, _ = train_step_plan()
    assert any("Dot" in str(v) and "Shape" in str(v) for v in plan.static_vars), plan.scalars


def test_values_match_the_reference_for_full_and_partial_batches():
    plan, leaves, values = train_step_plan()
    prep = Prep(plan, Counting(leaves))
    assert_matches_reference(plan, leaves, values, prep)
    env = env_for(leaves, values, 2)
    lengths = {prep.values(env)[id(v)] for v in plan.static_vars}
    assert lengths == {N - 2 * BS}


def test_shape_only_sizes_never_hand_data_or_weights_to_the_evaluator(monkeypatch):
    plan, leaves, values = train_step_plan()
    evaluate = Counting(leaves)
    rebuilds = []
    real_rebuild = prep_module.rebuild

    def counting_rebuild(*args, **kwargs):
        rebuilds.append(args[0])
        return real_rebuild(*args, **kwargs)

    monkeypatch.setattr(prep_module, "rebuild", counting_rebuild)
    prep = Prep(plan, evaluate)
    for epoch in range(3):
        for i in range(3):
            prep.values(env_for(leaves, values, i))
    # only the slice bounds' graphs are evaluated: they read i alone
    assert evaluate.read == {"i"}
    assert len(evaluate.calls) == 9
    # each derived size is rebuilt once per distinct batch length (4 and 2), not once per step
    n_derived = len([v for v in plan.scalars if v in plan.static_vars])
    assert len(rebuilds) == 2 * n_derived


def test_arithmetic_on_a_given_size_follows_that_size():
    def extra(x, y, k):
        z = T.alloc(np.float32(0), k) + x.sum()      # k: a size given as an input (an alloc's)
        return [T.arange(z.shape[0] * 2)]            # shape arithmetic, rebuilt once k is known

    plan, leaves, values = train_step_plan(extra)
    evaluate = Counting(leaves)
    prep = Prep(plan, evaluate)
    for k in (3, 5, 3):
        assert_matches_reference(plan, leaves, dict(values, k=np.int64(k)), prep, batches=(0, 2))
        assert 2 * k in prep.values(env_for(leaves, dict(values, k=np.int64(k)), 0)).values()
    assert evaluate.read == {"i", "k"}


def test_a_size_that_depends_on_data_is_evaluated_from_the_leaves_it_reads():
    def extra(x, y, k):
        return [T.arange(T.cast(T.max(y), "int64") + 1)]   # the batch's largest label: data

    plan, leaves, values = train_step_plan(extra)
    evaluate = Counting(leaves)
    prep = Prep(plan, evaluate)
    assert_matches_reference(plan, leaves, values, prep)
    # the labels are legitimately read; the dataset and the weights still never are
    assert "labels" in evaluate.read
    assert not evaluate.read & {"data", "W", "b"}


def test_a_plan_with_only_index_scalars_evaluates_them_directly():
    data, i = T.matrix("data"), T.lscalar("i")
    leaf_map = spz.concrete_leaves([i, data], [(), (N, 3)])
    plan = spz.DynamicPlan(spz.level1([data[i:i + 2].sum(), data[i]], leaf_map))
    leaves = {v.name: v for v in leaf_map.values()}
    evaluate = Counting(leaves)
    prep = Prep(plan, evaluate)
    got = prep.values({id(leaves["i"]): np.int64(3), id(leaves["data"]): np.zeros((N, 3), "float32")})
    assert sorted(got.values()) == [3, 5]
    assert evaluate.read == {"i"}


@pytest.mark.parametrize("i", [0, 2])
def test_level2_with_prep_values_builds_the_same_graph_as_with_reference_values(i):
    # what _Specialization does with the values: the plan's key and the level-2 rebuild
    plan, leaves, values = train_step_plan()
    env = env_for(leaves, values, i)
    ours = Prep(plan, Counting(leaves)).values(env)
    theirs = {id(v): int(s) for v, s in zip(plan.scalars, ReferenceProgram(plan.scalars).run(env))}
    assert plan.key(ours) == plan.key(theirs)
