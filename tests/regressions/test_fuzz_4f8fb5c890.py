"""Found by the fuzzer (python -m tests.fuzz --seed 2 --theme softmax --no-shrink, round 3, 2026-11-30)
with a bug planted to show the mechanism: stabilize's rule log(sigmoid(x)) -> -softplus(-x) made
-softplus(x) (compiler/rewrite/stabilize.py r_log_sigmoid, replaced in the fuzzing process only).
The oracle, which runs the unrewritten graph, caught it; the plant is gone and this passes.

Not equal to tolerance rtol=0.002, atol=0.003255
    output 0: emu and the oracle differ
    Mismatched elements: 762 / 771 (98.8%)
    First 5 mismatches are at indices:
     [0]: 0.8960204720497131 (ACTUAL), 0.5675785541534424 (DESIRED)
     [1]: 0.6227021217346191 (ACTUAL), 0.9305099248886108 (DESIRED)
"""
import numpy as np

import theta
import theta.tensor as T
from theta.tensor.shared_randomstreams import RandomStreams
from theta.tensor.signal.pool import pool_2d

from fuzz import check, load_values


def test_fuzz_4f8fb5c890():
    g0_x1 = T.tensor('float32', shape=(3, 257), name='g0_x1')
    g0_v2 = T.sqrt(abs(g0_x1) + 0.25)
    g0_x3 = T.tensor('float32', shape=(3, 257), name='g0_x3')
    g0_v4 = T.nnet.binary_crossentropy(T.nnet.sigmoid(g0_v2), T.nnet.sigmoid(g0_x3))
    inputs = [g0_x1, g0_x3]
    check(inputs, [g0_v4], load_values(__file__, ['g0_x1', 'g0_x3']), grad=True, exact=[],
          seed=180)
