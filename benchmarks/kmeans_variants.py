"""Which of k-means' GPU choices pay: the Triton kernels on or off, and what TF32 products
(``torch.backends.cuda.matmul.allow_tf32 = True``, a user's global setting) change.

    python benchmarks/kmeans_variants.py [--k 32] [--repeats 20] [--profile]

Times ``hash_video`` on the headline video (64 x 14 x 14 x 1152, planted, float32) alone and in a batch of 16
for each variant, in one process, and checks that the Triton seeds equal the PyTorch ones. ``--profile``
prints the kernels of the stages after clustering (compaction and distortion).
"""

import argparse
import sys
from pathlib import Path

import torch

import tokendynamics as td
from tokendynamics import hashing
from tokendynamics.cluster.backend import Backend
from tokendynamics.cluster.kmeans import kmeans, kmeans_plusplus, prepare
from tokendynamics.bench import machine, median_time

sys.path.insert(0, str(Path(__file__).parent))
from bench_hashing import token_video  # noqa: E402


def videos(n):
    """``[n, 64, 14, 14, 1152]`` planted token videos, one seed each."""
    return torch.stack([token_video("planted", 64, 1152, seed=s) for s in range(n)])


def seeds_agree(x, k):
    """How many videos of ``x`` ``[B, N, D]`` get identical k-means++ seeds from Triton and PyTorch."""
    a, b = (kmeans_plusplus(prepare(x, "cosine", backend=Backend.choose(x.device, triton=t)), k) for t in (True, False))
    return int((a == b).flatten(1).all(1).sum())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    dev = torch.device("cuda")
    batch = videos(16).to(dev)
    one = batch[:1]
    print(machine(dev), torch.__version__)
    print(f"identical seeds, Triton vs PyTorch: {seeds_agree(batch.flatten(1, 3), a.k)} of 16 videos")
    print("| kernels | one video (ms) | batch of 16, per video (ms) | mean distortion |")
    print("|---|---|---|---|")
    for triton in (False, True):
        backend = Backend.choose(dev, triton=triton)
        t1, _ = median_time(lambda: td.hash_video(one, num_tokens=a.k, backend=backend), dev, a.repeats)
        t16, h = median_time(lambda: td.hash_video(batch, num_tokens=a.k, backend=backend), dev, a.repeats)
        print(f"| {'Triton' if triton else 'PyTorch graph'} | {t1 * 1e3:.2f} | "
              f"{t16 * 1e3 / 16:.3f} | {float(h.distortion().mean()):.5f} |", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = True  # what a user's global setting does to the products
    t1, _ = median_time(lambda: td.hash_video(one, num_tokens=a.k), dev, a.repeats)
    t16, h = median_time(lambda: td.hash_video(batch, num_tokens=a.k), dev, a.repeats)
    print(f"| Triton, TF32 products | {t1 * 1e3:.2f} | {t16 * 1e3 / 16:.3f} | "
          f"{float(h.distortion().mean()):.5f} |", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    if a.profile:
        from torch.profiler import ProfilerActivity, profile
        x = one.flatten(1, 3)
        labels = kmeans(x, a.k).labels
        for _ in range(3):
            hashing._table(x, labels, k=a.k, k_out=a.k)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            hashing._table(x, labels, k=a.k, k_out=a.k)
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=15))


if __name__ == "__main__":
    main()
