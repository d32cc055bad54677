"""Triton kernels for k-means' hot loop on CUDA.

Greedy k-means++ seeding (:func:`greedy_seeds`) is ``K`` dependent steps, each a cumulative sum, a search and
a few candidate distances over a sample of about a thousand points: as PyTorch operations that is about ten
small kernels per step, so its time on a GPU is launches, not work. Here the sample's Gram matrix is one
matrix product, and the ``K`` steps of each video run inside one Triton program that keeps the sample's
distances in registers. It follows :func:`tokendynamics.kmeans._greedy_seeds` step by step (same draws,
same search, same tie-breaking); the two differ only by float rounding of the distances (tested to give
the same seeds on the GPU).

A Lloyd iteration (:func:`assign_sums`) reads the points twice as PyTorch operations: once for the
assignment (a matrix product with the centroids, then a max), once for the cluster sums (a one-hot matrix
product). Here one program per tile of points does both: the tile's scores against every centroid, the
nearest one, and the tile's weighted sums per cluster, from one load of the tile (the second pass over it
is served by the cache). Each program adds into its own slot of a partial-sums buffer, and the slots are
summed afterwards, so the result is deterministic (no atomics). The products are float32 at the precision
PyTorch's matmuls use (``torch.get_float32_matmul_precision()``: ``"highest"`` is IEEE float32).

Used when Triton is installed and the points are on CUDA (``TOKENDYNAMICS_TRITON=0`` switches it off);
:func:`available` and :func:`assign_available` say whether they apply.
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
MAX_CLUSTERS = 128  # centroids whose scores one program holds in registers
BLOCK_N, BLOCK_D = 32, 64  # a tile of points, and the feature columns loaded at a time
EXACT = "ieee"  # the products' precision where PyTorch's float32 matmuls are at "highest"


def _enabled(device: torch.device) -> bool:
    return triton is not None and device.type == "cuda" and os.environ.get("TOKENDYNAMICS_TRITON", "1") != "0"


def available(device: torch.device, sample: int, trials: int) -> bool:
    """Whether :func:`greedy_seeds` runs for this device, sample size and number of local trials."""
    return _enabled(device) and sample <= MAX_SAMPLE and trials <= MAX_TRIALS


def assign_available(device: torch.device, clusters: int) -> bool:
    """Whether :func:`assign_sums` runs for this device and number of clusters."""
    return _enabled(device) and clusters <= MAX_CLUSTERS


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


def assign_sums(x: torch.Tensor, scale: torch.Tensor, sq_norms: torch.Tensor, mask: torch.Tensor,
                centroids: torch.Tensor, live: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One Lloyd pass over ``x`` ``[B, N, D]`` (any float dtype; the clustering space is ``x * scale``):
    each valid point's nearest live centroid and the clusters' new sums.

    scale, sq_norms: ``[B, N]`` float32 (0 for masked-out points); mask: ``[B, N]`` bool; centroids:
    ``[B, K, D]`` float32; live: ``[B, K]`` bool. Returns labels ``[B, N]`` int64, squared distances
    ``[B, N]`` float32 (0 where masked), sums ``[B, K, D]`` float32 of ``scale * x`` per cluster and member
    counts ``[B, K]`` int64, as the PyTorch path of ``kmeans._assign_sums`` gives them.
    """
    b, n, d = x.shape
    k = centroids.shape[1]
    kp = max(16, triton.next_power_of_2(k))
    tiles = triton.cdiv(n, BLOCK_N)
    sms = torch.cuda.get_device_properties(x.device).multi_processor_count if x.is_cuda else 2  # 2: interpreter
    per_program = triton.cdiv(tiles, max(1, min(tiles, triton.cdiv(4 * sms, b))))
    programs = triton.cdiv(tiles, per_program)  # per video; each adds its tiles into its own slot
    c_sq = torch.einsum("bkd,bkd->bk", centroids, centroids)
    bias = torch.full((b, kp), float("inf"), device=x.device)
    bias[:, :k] = torch.where(live, 0.5 * c_sq, float("inf"))  # score = x.c - |c|^2 / 2; -inf: not a choice
    labels = torch.empty(b, n, dtype=torch.long, device=x.device)
    dist = torch.empty(b, n, device=x.device)
    sums = torch.zeros(b, programs, k, d, device=x.device)
    counts = torch.empty(b, programs, kp, dtype=torch.int32, device=x.device)
    precision = EXACT if torch.get_float32_matmul_precision() == "highest" else "tf32"
    _assign_sums_kernel[(programs, b)](
        x.contiguous(), scale.contiguous(), sq_norms.contiguous(), mask.contiguous(), centroids.contiguous(),
        bias, labels, dist, sums, counts, n, k, D=d, TILES=per_program, KP=kp, BLOCK_N=BLOCK_N,
        BLOCK_D=BLOCK_D, PRECISION=precision, num_warps=4)
    return labels, dist, sums.sum(1), counts.sum(1)[:, :k].long()


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

    @triton.jit
    def _assign_sums_kernel(x, scale, sq_norms, mask, centroids, bias, labels, dist, sums, counts, N, K,
                            D: tl.constexpr, TILES: tl.constexpr, KP: tl.constexpr, BLOCK_N: tl.constexpr,
                            BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
        """Program (p, v): tiles ``p * TILES ...`` of video ``v``; its cluster sums go to slot (v, p)."""
        p = tl.program_id(0)
        v = tl.program_id(1).to(tl.int64)
        ks = tl.arange(0, KP)
        real = ks < K
        half_sq = tl.load(bias + v * KP + ks)  # [KP]
        xv, cv = x + v * N * D, centroids + v * K * D
        slot = sums + (v * tl.num_programs(0) + p) * K * D
        members = tl.zeros([KP], dtype=tl.int32)
        for t in range(TILES):
            rows = (p * TILES + t) * BLOCK_N + tl.arange(0, BLOCK_N)
            inside = rows < N
            dots = tl.zeros([BLOCK_N, KP], dtype=tl.float32)
            for d0 in range(0, D, BLOCK_D):
                cols = d0 + tl.arange(0, BLOCK_D)
                tile = tl.load(xv + rows[:, None] * D + cols[None, :], mask=inside[:, None] & (cols < D)[None, :],
                               other=0.0).to(tl.float32)
                c_t = tl.load(cv + ks[None, :] * D + cols[:, None], mask=real[None, :] & (cols < D)[:, None],
                              other=0.0)  # [BLOCK_D, KP]
                dots = tl.dot(tile, c_t, dots, input_precision=PRECISION)
            s = tl.load(scale + v * N + rows, mask=inside, other=0.0)
            valid = tl.load(mask + v * N + rows, mask=inside, other=0) != 0
            scores = dots * s[:, None] - half_sq[None, :]
            best = tl.max(scores, 1)
            label = tl.argmax(scores, 1)  # the first of equal scores
            sq = tl.load(sq_norms + v * N + rows, mask=inside, other=0.0)
            tl.store(labels + v * N + rows, label.to(tl.int64), mask=inside)
            tl.store(dist + v * N + rows, tl.where(valid, tl.maximum(sq - 2.0 * best, 0.0), 0.0), mask=inside)
            member = (label[:, None] == ks[None, :]) & valid[:, None]  # [BLOCK_N, KP]
            members += tl.sum(member.to(tl.int32), 0)
            weights = tl.trans(tl.where(member, s[:, None], 0.0))  # [KP, BLOCK_N]
            for d0 in range(0, D, BLOCK_D):  # the tile again, now from the cache
                cols = d0 + tl.arange(0, BLOCK_D)
                keep = real[:, None] & (cols < D)[None, :]
                tile = tl.load(xv + rows[:, None] * D + cols[None, :], mask=inside[:, None] & (cols < D)[None, :],
                               other=0.0).to(tl.float32)
                out = slot + ks[:, None] * D + cols[None, :]
                part = tl.dot(weights, tile, input_precision=PRECISION) + tl.load(out, mask=keep, other=0.0)
                tl.store(out, part, mask=keep)
        tl.store(counts + (v * tl.num_programs(0) + p) * KP + ks, members)
