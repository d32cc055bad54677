"""Does best-of-n k-means (restarts from n seeds, the lowest inertia kept) make the key map more stable
under imperceptible changes of the frames? MotionQA test videos of seed 7 through the built-in model's
tower, clean and perturbed (noise, JPEG, one-pixel shift: ``stability.perturb``), K = 8; the share of cells
whose row changes, rows matched one to one (``stability.matched``).

    python benchmarks/stability_restarts.py [--videos 12 --restarts 1 4 8]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from stability import matched, perturb
from tokendynamics.cluster.kmeans import kmeans
from tokendynamics.models import load_model
from tokendynamics.models.builtin import test_clips

K = 8


def best_of(tokens: torch.Tensor, restarts: int) -> torch.Tensor:
    """Labels ``[N]`` of the lowest-inertia k-means of ``tokens`` ``[T, h, w, D]`` over seeds ``0..restarts-1``."""
    runs = [kmeans(tokens.reshape(1, -1, tokens.shape[-1]), K, seed=s) for s in range(restarts)]
    return min(runs, key=lambda r: float(r.inertia[0])).labels[0]


def changed_cells(a: torch.Tensor, b: torch.Tensor, restarts: int) -> float:
    """The share of cells whose row differs between the clean ``a`` and perturbed ``b`` tokens."""
    la, lb = best_of(a, restarts), best_of(b, restarts)
    means = [torch.stack([x.reshape(-1, x.shape[-1])[labels == j].mean(0) for j in range(K)]).nan_to_num()
             for x, labels in ((a, la), (b, lb))]  # an empty row (NaN mean) as zeros
    cols, _ = matched(*means)
    to_clean = torch.empty(K, dtype=torch.long)
    to_clean[torch.as_tensor(cols)] = torch.arange(K)  # b's row -> the clean row it is matched to
    return float((to_clean[lb] != la).float().mean())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=12)
    p.add_argument("--restarts", type=int, nargs="+", default=[1, 4, 8])
    a = p.parse_args()
    model = load_model("builtin").eval()
    rng = np.random.default_rng(0)
    found = {n: [] for n in a.restarts}
    with torch.no_grad():
        for clip, _ in test_clips(a.videos, seed=7):
            clean = model.video_features([clip])[0]
            for kind in ("noise", "jpeg", "shift"):
                other = model.video_features([perturb(clip, kind, rng)])[0]
                for n in a.restarts:
                    found[n].append(changed_cells(clean, other, n))
    for n, shares in found.items():
        print(f"{n} restart(s): {100 * np.mean(shares):.1f}% of key-map cells change ({len(shares)} pairs)")


if __name__ == "__main__":
    main()
