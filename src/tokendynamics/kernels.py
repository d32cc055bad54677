"""Triton kernels for k-means' hot loop on CUDA.

Greedy k-means++ seeding (:func:`greedy_seeds`) is ``K`` dependent steps, each a cumulative sum, a search and
a few candidate distances over a sample of about a thousand points: as PyTorch operations that is about ten
small kernels per step, so its time on a GPU is launches, not work. Here the sample's Gram matrix is one
matrix product, and the ``K`` steps of each video run inside one Triton program that keeps the sample's
distances in registers. It follows :func:`tokendynamics.kmeans._greedy_seeds` step by step (same draws,
same search, same tie-breaking); the two differ only by float rounding of the distances (tested to give
the same seeds on the GPU).

Used when Triton is installed and the points are on CUDA (``TOKENDYNAMICS_TRITON=0`` switches it off);
:func:`available` says whether it applies.
"""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton is optional: the PyTorch path runs everywhere
    triton = None

MAX_SAMPLE = 4096  # points per video that one program holds in registers
MAX_TRIALS = 16


def available(device: torch.device, sample: int, trials: int) -> bool:
    """Whether :func:`greedy_seeds` runs for this device, sample size and number of local trials."""
    return (triton is not None and device.type == "cuda" and sample <= MAX_SAMPLE and trials <= MAX_TRIALS
            and os.environ.get("TOKENDYNAMICS_TRITON", "1") != "0")


def greedy_seeds(pts: torch.Tensor, pts_sq: torch.Tensor, weight: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """Greedy k-means++ seed indices ``[B, k]`` into ``pts`` ``[B, S, D]`` (float32, clustering space),
    ``weight`` ``[B, S]`` 1 for real points, ``draws`` ``[k, trials]`` float64 uniform numbers.
    ``pts_sq`` ``[B, S]``: squared norms, used as the sample's own; a candidate's comes from the Gram
    diagonal as in the PyTorch path."""
    b, s, _ = pts.shape
    k, trials = draws.shape
    gram = torch.bmm(pts, pts.transpose(1, 2)).contiguous()  # [B, S, S]
    out = torch.empty(b, k, dtype=torch.long, device=pts.device)
    block = triton.next_power_of_2(s)
    _greedy_seeds_kernel[(b,)](gram, pts_sq.float().contiguous(), weight.float().contiguous(),
                               draws.contiguous(), out, s, k, TRIALS=trials,
                               TRIALS_P2=triton.next_power_of_2(trials), BLOCK=block,
                               num_warps=8 if block <= 1024 else 16)
    return out


if triton is not None:

    @triton.jit
    def _greedy_seeds_kernel(gram, sq_ptr, w_ptr, draws, out, S, K: tl.constexpr, TRIALS: tl.constexpr,
                             TRIALS_P2: tl.constexpr, BLOCK: tl.constexpr):
        """One video per program: its sample's distances ``d2`` live in registers across the K steps."""
        v = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        inside = offs < S
        g = gram + v * S * S
        sq = tl.load(sq_ptr + v * S + offs, mask=inside, other=0.0)
        w = tl.load(w_ptr + v * S + offs, mask=inside, other=0.0)
        real = tl.sum(w, 0)
        last = tl.maximum(real.to(tl.int64) - 1, 0)  # the real points come first; never pick padding
        first = tl.minimum((tl.load(draws).to(tl.float64) * real.to(tl.float64)).to(tl.int64), last)
        tl.store(out + v * K, first)
        row = tl.load(g + first * S + offs, mask=inside, other=0.0)
        d2 = tl.maximum(sq + tl.load(g + first * S + first) - 2.0 * row, 0.0)
        t = tl.arange(0, TRIALS_P2)
        trial = t < TRIALS  # the real trials of the power-of-two block
        for i in range(1, K):
            cum = tl.cumsum((d2 * w).to(tl.float64), 0)
            total = tl.max(tl.where(inside, cum, 0.0), 0)
            targets = tl.load(draws + i * TRIALS + t, mask=trial, other=0.0) * total  # [T]
            # searchsorted(right=True): how many sample points have a cumulative sum <= the target
            below = (cum[None, :] <= targets[:, None]) & inside[None, :]
            cand = tl.minimum(tl.sum(below.to(tl.int64), 1), last)  # [T]
            rows = tl.load(g + cand[:, None] * S + offs[None, :], mask=inside[None, :], other=0.0)
            diag = tl.load(g + cand * S + cand)
            dc = tl.minimum(d2[None, :], tl.maximum(sq[None, :] + diag[:, None] - 2.0 * rows, 0.0))
            potential = tl.where(trial, tl.sum(dc * w[None, :], 1), float("inf"))
            best = tl.argmin(potential, 0)  # the first of equal potentials, as torch.argmin
            pick = t == best
            tl.store(out + v * K + i, tl.sum(tl.where(pick, cand, 0), 0))
            d2 = tl.sum(tl.where(pick[:, None], dc, 0.0), 0)
