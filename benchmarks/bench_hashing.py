"""Speed and quality of ``hash_video`` against scikit-learn's ``KMeans`` (its defaults), same data, same process.

    python benchmarks/bench_hashing.py [--device cpu|cuda] [--quick] [--seeds 3] [--out DIR]

Data: planted token videos (objects moving over a background, plus noise; 14x14 tokens per frame as in
LLaVA-OneVision's video grid) and, for the headline shape, Gaussian noise (no structure: the worst case for
k-means convergence). Inertia is measured the same way for both: the sum of squared distances of the
clustered points to their cluster's mean, in the space each clusters in (L2-normalised tokens for the
cosine metric, on which scikit-learn is also run). Times are medians; scikit-learn runs once per case.
On CUDA also: a batch of 16 videos, and the memory floor (bytes one pass over the tokens reads, over the
copy bandwidth measured here).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from sklearn.cluster import KMeans

import tokendynamics as td
from tokendynamics.bench import copy_bandwidth, machine, median_time, write_results
from tokendynamics.data import planted_token_video


def _inertia(points, labels):
    """``points`` [N, D] float64 CPU, ``labels`` [N]: sum of squared distances to the cluster means."""
    k = int(labels.max()) + 1
    sums = torch.zeros(k, points.shape[1], dtype=torch.float64).index_add_(0, labels, points)
    means = sums / torch.bincount(labels, minlength=k).clamp_min(1).unsqueeze(1).double()
    return float(((points - means[labels]) ** 2).sum())


def token_video(kind, frames, dim, seed=0):
    """The benchmarks' token video ``[frames, 14, 14, dim]``: ``kind`` "planted" (12 objects over a
    background, small noise) or "gaussian"."""
    if kind == "gaussian":
        return torch.randn(frames, 14, 14, dim, generator=torch.Generator().manual_seed(seed))
    return planted_token_video(num_frames=frames, height=14, width=14, dim=dim, num_objects=12,
                               object_size=3, noise=0.3 / dim ** 0.5, seed=seed).tokens


def headline_setup(doc: str):
    """Shared by the benchmarks of one headline video: ``(args, device, tokens)`` with ``--device``,
    ``--repeats`` and ``--out`` parsed, tokens 64 x 14 x 14 x 1152 (planted) on the device."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args()
    device = torch.device(args.device)
    return args, device, token_video("planted", 64, 1152).to(device)


def run_case(kind, frames, dim, k, metric, device, repeats, seeds=1):
    """One shape: our time (median of ``repeats``, seed 0) and scikit-learn's (seed 0); inertia of both
    averaged over ``seeds`` seeds (seed-to-seed spread is larger than the difference between the two)."""
    tokens = token_video(kind, frames, dim)
    dev_tokens = tokens.to(device)
    t_ours, h = median_time(lambda: td.hash_video(dev_tokens, num_tokens=k, metric=metric), device, repeats)
    points = tokens.reshape(-1, dim).double()
    if metric == "cosine":
        points = torch.nn.functional.normalize(points, dim=-1)
    ours = [_inertia(points, td.hash_video(dev_tokens, num_tokens=k, metric=metric, seed=s).key_map.reshape(-1).cpu())
            for s in range(seeds)]
    sk_times, sk_inertia, sk_iters = [], [], []
    for s in range(seeds):
        start = time.perf_counter()
        sk = KMeans(k, random_state=s).fit(points.float().numpy())
        sk_times.append(time.perf_counter() - start)
        sk_inertia.append(_inertia(points, torch.as_tensor(sk.labels_).long()))
        sk_iters.append(int(sk.n_iter_))
    row = dict(data=kind, frames=frames, dim=dim, k=k, metric=metric, device=str(device), seeds=seeds,
               ours_ms=t_ours * 1e3, ours_inertia=statistics.mean(ours), distortion=float(h.distortion()[0]),
               sklearn_ms=sk_times[0] * 1e3, sklearn_iters=sk_iters[0], sklearn_inertia=statistics.mean(sk_inertia))
    row["speedup"] = row["sklearn_ms"] / row["ours_ms"]
    row["inertia_ratio"] = row["ours_inertia"] / row["sklearn_inertia"]
    return row


def run_batch(frames, dim, k, device, repeats, batch=16):
    tokens = torch.stack([token_video("planted", frames, dim, seed=s) for s in range(batch)]).to(device)
    t_batch, _ = median_time(lambda: td.hash_video(tokens, num_tokens=k), device, repeats)
    t_one, _ = median_time(lambda: td.hash_video(tokens[0], num_tokens=k), device, repeats)
    return dict(frames=frames, dim=dim, k=k, batch=batch, one_ms=t_one * 1e3, batch_ms=t_batch * 1e3,
                per_video_ms=t_batch * 1e3 / batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="headline shape only")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3, help="seeds the headline rows' inertia is averaged over")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    device = torch.device(args.device)
    grid = [(f, d, k) for f in (32, 64) for d in (896, 1152, 3584) for k in (8, 32, 64)]
    if args.quick:
        grid = [(64, 1152, 32)]
    rows = []
    for kind, metric in [("planted", "cosine"), ("planted", "l2"), ("gaussian", "cosine"), ("gaussian", "l2")]:
        rows.append(run_case(kind, 64, 1152, 32, metric, device, args.repeats, seeds=args.seeds))
        print(rows[-1], flush=True)
    for frames, dim, k in grid:
        if (frames, dim, k) != (64, 1152, 32):
            rows.append(run_case("planted", frames, dim, k, "cosine", device, args.repeats))
            print(rows[-1], flush=True)
    result = dict(machine=machine(device), torch=torch.__version__, cases=rows)
    if device.type == "cuda":
        bw = copy_bandwidth(device)
        result["bandwidth_GBps"] = bw / 1e9
        result["batch"] = [run_batch(64, 1152, k, device, args.repeats) for k in (8, 32)]
        for r in rows:  # one read of the float32 tokens (a k-means iteration reads them twice)
            r["one_pass_floor_ms"] = frames_bytes(r) / bw * 1e3
    write_results(args.out, f"hashing-{device.type}", result, to_markdown(result))


def frames_bytes(row):
    return row["frames"] * 196 * row["dim"] * 4


def to_markdown(result):
    lines = [f"Machine: {result['machine']}; torch {result['torch']}.", "",
             "| data | frames | D | K | metric | ours (ms) | scikit-learn (ms) | speed-up | sk iters | "
             "inertia ours / sk (seeds) | distortion |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["cases"]:
        lines.append(f"| {r['data']} | {r['frames']} | {r['dim']} | {r['k']} | {r['metric']} | "
                     f"{r['ours_ms']:.1f} | {r['sklearn_ms']:.0f} | {r['speedup']:.1f}x | {r['sklearn_iters']} | "
                     f"{r['inertia_ratio']:.5f} ({r['seeds']}) | {r['distortion']:.3f} |")
    if "batch" in result:
        lines += ["", f"Copy bandwidth measured: {result['bandwidth_GBps']:.0f} GB/s (read + write).", "",
                  "| frames | D | K | one video (ms) | batch of 16 (ms) | per video (ms) | one pass floor (ms) |",
                  "|---|---|---|---|---|---|---|"]
        for b in result["batch"]:
            floor = 64 * 196 * b["dim"] * 4 / (result["bandwidth_GBps"] * 1e9) * 1e3
            lines.append(f"| {b['frames']} | {b['dim']} | {b['k']} | {b['one_ms']:.2f} | {b['batch_ms']:.2f} | "
                         f"{b['per_video_ms']:.3f} | {floor:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
