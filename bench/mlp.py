"""One SGD step of the 2-hidden-layer tanh MLP (tests/test_codegen.py's mlp_step) on theta's
cuda backend against the same step in PyTorch, both on the GPU.

Both start from the same weights (copied) and take the same minibatch (device tensors that
theta reads in place) and learning rate. Validation first: after one step from the same
weights, the losses and every parameter's update (new - old) must agree. Then timing, each
step on its own weights:

- theta step: a whole ``f(x, y)`` call, which waits for the GPU and returns the loss to the
  host (that is the cost of a training loop that logs every step);
- torch step: forward, backward, ``torch.optim.SGD(foreach=True).step()``, ``loss.item()``;
- device time: theta's 14 kernels replayed back-to-back (CUDA events); PyTorch's step captured
  once as a CUDA graph and replayed (its kernels without Python);
- torch queued: steps issued without waiting, one synchronize at the end, per step.
"""
from __future__ import annotations

import argparse

import numpy as np

from .common import Report, ValidationError, check_close, fmt, host_seconds, median, require_torch, torch_device_ms
from .theta_cuda import Launches

NAME = "mlp"
HELP = "one MLP SGD step: theta cuda vs PyTorch (validated, then timed)"
NEEDS_GPU = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=256, help="minibatch size (default 256)")
    p.add_argument("--sizes", type=lambda s: tuple(int(n) for n in s.split(",")), default=(784, 1024, 1024, 10),
                   help="layer widths, input first (default 784,1024,1024,10)")
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    p.add_argument("--repeat", type=int, default=100, help="timed steps per measurement (default 100)")


def init_weights(sizes: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    """W0, b0, W1, b1, ...: W ~ N(0, 1/n_in), b = 0, float32."""
    rng = np.random.default_rng(seed)
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        out += [(rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32),
                np.zeros(n_out, np.float32)]
    return out


def theta_step(weights: list[np.ndarray], lr: float, backend: str = "cuda"):
    """The graph of tests/test_codegen.py's mlp_step, from the given weights."""
    import theta
    import theta.tensor as T
    x, y = T.fmatrix("x"), T.ivector("y")
    params = [theta.shared(w, name=f"{'Wb'[k % 2]}{k // 2}") for k, w in enumerate(weights)]
    h = x
    n_layers = len(weights) // 2
    for k in range(n_layers):
        z = T.dot(h, params[2 * k]) + params[2 * k + 1]
        h = T.tanh(z) if k < n_layers - 1 else z
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(h), y))
    grads = theta.grad(cost, params)
    f = theta.function([x, y], cost, updates=[(p, p - lr * g) for p, g in zip(params, grads)], backend=backend)
    return f, params


def torch_step(weights: list[np.ndarray], lr: float):
    """The same model in PyTorch; returns (step(x, y) -> loss tensor, params)."""
    torch = require_torch()
    import torch.nn.functional as F
    params = [torch.tensor(w, device="cuda", requires_grad=True) for w in weights]
    opt = torch.optim.SGD(params, lr=lr, foreach=True)
    n_layers = len(weights) // 2

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        h = x
        for k in range(n_layers):
            h = torch.addmm(params[2 * k + 1], h, params[2 * k])
            if k < n_layers - 1:
                h = torch.tanh(h)
        loss = F.cross_entropy(h, y)
        loss.backward()
        opt.step()
        return loss

    return step, params


def validate(weights, lr, x, y, y64) -> dict:
    """One step of each from the same weights: losses and updates must agree."""
    f, params = theta_step(weights, lr)
    step, tparams = torch_step(weights, lr)
    loss_theta = float(f(x, y))
    loss_torch = float(step(x, y64).item())
    errors = {"loss": check_close("loss", loss_theta, loss_torch, 1e-4)}
    for p, tp, w0 in zip(params, tparams, weights):
        got = p.get_value() - w0
        want = tp.detach().cpu().numpy() - w0
        if not np.abs(want).max() > 0:
            raise ValidationError(f"{p.name}: PyTorch's step did not change it")
        errors[p.name] = check_close(f"update of {p.name}", got, want, 1e-3)
    return {"loss_theta": loss_theta, "loss_torch": loss_torch, "max_error": errors}


def kernel_breakdown(launches: Launches) -> dict[str, float] | None:
    """Median device ms of each of theta's kernels (an event pair around every recorded launch)."""
    return launches.kernel_ms(repeat=20)


def torch_graph_ms(step, x, y64, repeat: int) -> float | None:
    """Device ms of PyTorch's step captured as one CUDA graph, or None if capture fails."""
    torch = require_torch()
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step(x, y64)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step(x, y64)
    except Exception:  # capture is not what this benchmark is about; report it as missing
        return None
    return median(torch_device_ms(graph.replay, 5, repeat))


def run(args: argparse.Namespace) -> Report:
    torch = require_torch()
    sizes, batch, lr, repeat = tuple(args.sizes), args.batch, args.lr, args.repeat
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.random((batch, sizes[0]), dtype=np.float32), device="cuda")
    y = torch.tensor(rng.integers(0, sizes[-1], batch, dtype=np.int32), device="cuda")
    y64 = y.long()
    weights = init_weights(sizes)
    checked = validate(weights, lr, x, y, y64)

    f, _ = theta_step(weights, lr)
    f(x, y)
    launches = Launches.capture(f, x, y)
    theta_step_ms = median(host_seconds(lambda: f(x, y), 10, repeat)) * 1e3
    theta_gpu_ms = median(launches.device_ms(10, repeat))
    kernel_ms = kernel_breakdown(launches)

    step, _ = torch_step(weights, lr)
    torch_step_ms = median(host_seconds(lambda: step(x, y64).item(), 10, repeat)) * 1e3

    def queued() -> None:
        for _ in range(repeat):
            step(x, y64)
        torch.cuda.synchronize()

    torch_queued_ms = median(host_seconds(queued, 1, 5)) * 1e3 / repeat
    torch_gpu_ms = torch_graph_ms(step, x, y64, repeat)

    shape = "-".join(map(str, sizes))
    report = Report(NAME, f"MLP SGD step (batch {batch}, {shape}, float32, lr {lr}), ms per step",
                    ["measure", "theta (cuda)", "PyTorch", "theta / PyTorch"])
    report.rows = [
        ["step, waiting for the loss", fmt(theta_step_ms), fmt(torch_step_ms), fmt(theta_step_ms / torch_step_ms)],
        ["device time (theta replay / torch CUDA graph)", fmt(theta_gpu_ms), fmt(torch_gpu_ms),
         fmt(theta_gpu_ms / torch_gpu_ms) if torch_gpu_ms else "n/a"],
        ["torch steps queued without waiting", "", fmt(torch_queued_ms), ""],
    ]
    report.figures = {"batch": batch, "sizes": list(sizes), "lr": lr, "repeat": repeat,
                      "theta_kernels": launches.n_kernels,
                      "theta_kernel_families": [k.family for k in launches.program.kernels],
                      "theta_step_ms": theta_step_ms, "theta_gpu_ms": theta_gpu_ms,
                      "torch_step_ms": torch_step_ms, "torch_gpu_ms": torch_gpu_ms,
                      "torch_queued_ms": torch_queued_ms, "ratio_step": theta_step_ms / torch_step_ms,
                      "theta_kernel_ms": kernel_ms, "validation": checked}
    worst = max(v for k, v in checked["max_error"].items() if k != "loss")
    report.notes = [
        f"Validated first: loss {checked['loss_theta']:.6f} (theta) vs {checked['loss_torch']:.6f} (PyTorch); "
        f"largest parameter-update error {worst:.2g} of the update's magnitude (allowed 1e-3).",
        f"theta's step is {launches.n_kernels} kernels; PyTorch runs with TF32 off.",
        "Medians of the repeats; device times from CUDA events.",
    ]
    if kernel_ms:
        slowest = sorted(kernel_ms.items(), key=lambda kv: -kv[1])[:4]
        report.notes.append("theta's slowest kernels (ms, each between its own pair of events): "
                            + ", ".join(f"{name} {fmt(ms)}" for name, ms in slowest) + ".")
    return report
