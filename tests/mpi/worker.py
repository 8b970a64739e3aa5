"""Run under mpiexec by tests/test_distributed.py: trains softmax regression on the digits with
theta.distributed.DataParallel and prints (rank 0) a JSON line of results."""
import json
import sys

import numpy as np

import theta
import theta.distributed as dist
import theta.tensor as T
from theta.models import optim
from theta.models.data import load_digits


def main(backend: str, sharing: str, steps: int, batch: int, local_every: int, die: int,
         cuda_aware: str = "auto") -> None:
    world = dist.init(timeout=20)
    data = load_digits("float64")
    x, y = T.dmatrix("x"), T.ivector("y")
    W = theta.shared(np.zeros((64, 10)), name="W")
    b = theta.shared(np.zeros(10), name="b")
    p = T.nnet.softmax(T.dot(x, W) + b)
    cost = -T.mean(T.log(p)[T.arange(y.shape[0]), y])
    step = dist.DataParallel([x, y], cost, [W, b], optim.sgd, learning_rate=0.5, backend=backend,
                             sharing=sharing, local_every=local_every or None,
                             cuda_aware={"auto": None, "1": True, "0": False}[cuda_aware])
    errors = theta.function([x, y], T.sum(T.neq(T.argmax(p, axis=1), y)), backend=backend)
    n = len(data.train)
    costs = []
    for k in range(steps):
        if die >= 0 and k == 3 and world.rank == die:
            sys.exit(17)                 # a rank that dies midway
        i = (k * batch) % (n - batch)
        costs.append(step(data.train.x[i:i + batch], data.train.y[i:i + batch]))
    shard = slice(world.rank, None, world.size)
    wrong = world.sum(float(errors(data.test.x[shard], data.test.y[shard])))
    if world.rank == 0:
        print(json.dumps({"size": world.size, "W": W.get_value().tolist(), "costs": costs,
                          "test_error": wrong / len(data.test), "bytes": step.bytes_exchanged / steps,
                          "transport": step.transport}))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), int(args[5]), *args[6:7])
