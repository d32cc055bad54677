"""The fused Lloyd pass by product precision and tile size against the PyTorch loop (experiment)."""
import sys

import torch

sys.path.insert(0, "benchmarks")
import bench_lloyd as bl  # noqa: E402

from tokendynamics import cudagraphs, kernels  # noqa: E402

for case in bl.CASES:
    x = bl.tokens(case, torch.device("cuda"))
    t, it = bl.per_iteration(x, case["k"], False, 10)
    print(case["name"], "pytorch", round(t * 1e3, 3), it, flush=True)
    for prec in ("ieee", "tf32x3", "tf32"):
        for bn in (32, 64, 128):
            kernels.EXACT, kernels.BLOCK_N = prec, bn
            cudagraphs.clear()
            t, it = bl.per_iteration(x, case["k"], True, 10)
            print(case["name"], prec, bn, round(t * 1e3, 3), it, flush=True)
