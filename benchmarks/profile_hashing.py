"""Where ``hash_video``'s time goes, stage by stage (seeding, Lloyd, means and distortion, compaction), on one video.

    python benchmarks/profile_hashing.py [--device cuda] [--frames 64] [--dim 1152] [--k 32] [--batch 1]
"""

import argparse
import sys
from pathlib import Path

import torch

import tokendynamics as td
from tokendynamics import hashing
from tokendynamics.cluster.kmeans import kmeans_plusplus, lloyd, prepare
from tokendynamics.bench import median_time

sys.path.insert(0, str(Path(__file__).parent))
from bench_hashing import token_video  # noqa: E402


def timed(fn, device):
    """(median milliseconds of 10 calls, last output)."""
    seconds, out = median_time(fn, device, 10)
    return seconds * 1e3, out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--dim", type=int, default=1152)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=1, help="videos clustered together (one seed each)")
    a = p.parse_args()
    dev = torch.device(a.device)
    b = a.batch
    x = torch.stack([token_video("planted", a.frames, a.dim, seed=s).reshape(-1, a.dim) for s in range(b)]).to(dev)
    t_all, h = timed(lambda: td.hash_video(x.view(b, a.frames, 14, 14, a.dim), num_tokens=a.k), dev)
    t_prep, feats = timed(lambda: prepare(x, "cosine"), dev)
    t_seed, init = timed(lambda: kmeans_plusplus(feats, a.k), dev)
    k = torch.full((b,), a.k, device=dev)
    t_lloyd, res = timed(lambda: lloyd(feats, init, k, metric="cosine", max_iters=100, tol=1e-4), dev)
    t_clusters, (means, counts, _) = timed(lambda: hashing._clusters(x, res.labels, a.k), dev)
    t_compact, _ = timed(lambda: hashing._compact(means, counts, res.labels, a.k), dev)
    t_check, _ = timed(lambda: td._checks.check_video_tokens(x.view(b, a.frames, 14, 14, a.dim)), dev)
    print(f"{dev} {b}x{a.frames}x196x{a.dim} K={a.k}: hash_video {t_all:.2f} ms = check {t_check:.2f} + prepare "
          f"{t_prep:.2f} + seeding {t_seed:.2f} + lloyd {t_lloyd:.2f} ({int(res.iterations.max())} iters, "
          f"{t_lloyd / (int(res.iterations.max()) + 1):.2f}/assign+update) + means and distortion "
          f"{t_clusters:.2f} + compact {t_compact:.2f}")
    if dev.type == "cuda":
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            td.hash_video(x.view(b, a.frames, 14, 14, a.dim), num_tokens=a.k)
            torch.cuda.synchronize()
        events = prof.key_averages()
        gpu_us = sum(e.self_device_time_total for e in events)
        launches = sum(e.count for e in events if e.key.startswith("cudaLaunchKernel"))
        print(f"GPU busy {gpu_us / 1e3:.2f} ms, kernel launches {launches}")
        print(events.table(sort_by="self_device_time_total", row_limit=12))


if __name__ == "__main__":
    main()
