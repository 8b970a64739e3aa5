"""theta's benchmarks, run from the repository root as ``python3 -m bench ...``.

One module per benchmark, each with NAME, HELP, NEEDS_GPU, ``add_arguments(parser)`` and
``run(args) -> common.Report``; every benchmark validates its results before it times them.

    launch    host launch overhead per kernel (theta cuda vs PyTorch)
    mlp       one MLP SGD step, theta cuda vs PyTorch
    kernels   elementwise / reductions / softmax / GEMM vs copy bandwidth, FP32 peak, PyTorch/cuBLAS
    sanitize  compute-sanitizer over every kernel family (sanitize_target.py)
    compile   compile cost of the MLP step, g++/nvcc builds cold vs cached (runs on a CPU)

Helpers: common (Report, timing, validation), theta_cuda (capturing and replaying a Program's
launches), record (environment facts and bench/results/ files).
"""
