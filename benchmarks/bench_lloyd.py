"""The k-means loop against its memory floor: time per Lloyd iteration with the fused Triton pass
(assignment and cluster sums from one read of the points) and with PyTorch operations, in one process.

    python benchmarks/bench_lloyd.py [--repeats 10]

Cases: a batch of 16 planted 64 x 196 x 1152 videos at K = 32 (the hashing benchmark's batch), and one
64 x 196 x 3584 video of Gaussian bf16 tokens at K = 8 (LLaVA-OneVision-7B's pooled tokens). An iteration
is the Lloyd loop's time over its passes (the first assignment and one per iteration, as the loop runs
them, with its host check of convergence). Floors: one read of the points as the loop holds them (float32)
and in the tokens' own dtype, at the copy bandwidth measured here.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from tokendynamics import kernels, kmeans
from tokendynamics.bench import copy_bandwidth, machine, median_time, write_results

sys.path.insert(0, str(Path(__file__).parent))
from bench_hashing import token_video  # noqa: E402

CASES = [dict(name="batch", batch=16, dim=1152, k=32, data="planted", dtype="float32"),
         dict(name="7b", batch=1, dim=3584, k=8, data="gaussian", dtype="bfloat16")]


def tokens(case, device) -> torch.Tensor:
    """``[B, 64 * 196, D]`` tokens of the case."""
    videos = [token_video(case["data"], 64, case["dim"], seed=s).reshape(-1, case["dim"]) for s in range(case["batch"])]
    return torch.stack(videos).to(device, getattr(torch, case["dtype"]))


def per_iteration(x, k, fused: bool, repeats: int) -> tuple[float, int]:
    """(seconds per pass of the Lloyd loop, iterations) for ``x``, from the same k-means++ seeds."""
    os.environ["TOKENDYNAMICS_TRITON"] = "1" if fused else "0"
    feats = kmeans.prepare(x, "cosine")
    init = kmeans.kmeans_plusplus(feats, k)
    ks = torch.full((x.shape[0],), k, device=x.device)
    seconds, res = median_time(lambda: kmeans.lloyd(feats, init, ks, metric="cosine", max_iters=100, tol=1e-4),
                               x.device, repeats)
    iters = int(res.iterations.max())
    return seconds / (iters + 1), iters


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = p.parse_args()
    dev = torch.device("cuda")
    if not kernels.assign_available(dev, 32):
        raise SystemExit("needs CUDA and Triton")
    bw = copy_bandwidth(dev)  # bytes moved per second
    rows = []
    for case in CASES:
        x = tokens(case, dev)
        (t_fused, it_fused), (t_torch, it_torch) = (per_iteration(x, case["k"], f, a.repeats) for f in (True, False))
        own, f32 = x.numel() * x.element_size() / bw, x.numel() * 4 / bw
        rows.append(dict(case, fused_ms=t_fused * 1e3, pytorch_ms=t_torch * 1e3, iterations=[it_fused, it_torch],
                         speedup=t_torch / t_fused, floor_f32_ms=f32 * 1e3, floor_own_ms=own * 1e3,
                         fused_vs_own_floor=t_fused / own, fused_vs_f32_floor=t_fused / f32))
    os.environ.pop("TOKENDYNAMICS_TRITON")
    write_results(a.out, "lloyd-cuda", dict(machine=machine(dev), torch=torch.__version__, copy_GBps=bw / 1e9,
                                            rows=rows), to_markdown(rows, bw))


def to_markdown(rows, bw) -> str:
    lines = [f"Copy bandwidth (read + write): {bw / 1e9:.0f} GB/s.", "",
             "| case | B x N x D, dtype | K | iterations (fused, PyTorch) | fused (ms/iter) | PyTorch (ms/iter) | "
             "speed-up | floor f32 / own dtype (ms) | fused / floor f32, own |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['batch']} x 12544 x {r['dim']}, {r['dtype']} | {r['k']} | "
                     f"{r['iterations'][0]}, {r['iterations'][1]} | {r['fused_ms']:.3f} | {r['pytorch_ms']:.3f} | "
                     f"{r['speedup']:.2f}x | {r['floor_f32_ms']:.3f} / {r['floor_own_ms']:.3f} | "
                     f"{r['fused_vs_f32_floor']:.1f}x, {r['fused_vs_own_floor']:.1f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
