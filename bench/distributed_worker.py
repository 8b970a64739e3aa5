"""One rank of bench/distributed.py (run by mpiexec): times DataParallel steps of an MLP and
prints, on rank 0, a JSON line: median step time, bytes sent per step, final first-layer W."""
import json
import sys
import time

import numpy as np

import theta
import theta.distributed as dist
import theta.tensor as T
from theta.models import optim


def main(backend: str, sharing: str, steps: int) -> None:
    world = dist.init()
    rng = np.random.default_rng(0)
    sizes, per_rank = (64, 256, 256, 10), 32
    x, y = T.matrix("x"), T.ivector("y")
    params, h = [], x
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = theta.shared((rng.standard_normal((a, b)) * 0.1).astype("float32"), name=f"W{k}")
        c = theta.shared(np.zeros(b, "float32"), name=f"b{k}")
        params += [W, c]
        h = T.dot(h, W) + c
        h = T.tanh(h) if k < len(sizes) - 2 else h
    cost = -T.mean(T.log(T.nnet.softmax(h))[T.arange(y.shape[0]), y])
    step = dist.DataParallel([x, y], cost, params, optim.sgd, learning_rate=0.1, backend=backend,
                             sharing="exact" if sharing == "local4" else sharing,
                             local_every=4 if sharing == "local4" else None)
    bs = per_rank * 4                      # the same global minibatch whatever the rank count
    data_x = rng.random((bs * steps, 64)).astype("float32")
    data_y = rng.integers(0, 10, bs * steps).astype("int32")
    times = []
    for k in range(steps):
        start = time.perf_counter()
        step(data_x[k * bs:(k + 1) * bs], data_y[k * bs:(k + 1) * bs])
        times.append(time.perf_counter() - start)
    if world.rank == 0:
        print(json.dumps({"step_ms": 1e3 * float(np.median(times[3:])), "bytes": step.bytes_exchanged / steps,
                          "W": params[0].get_value().ravel()[:64].tolist()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
