"""Batched k-means: k-means++ seeding and Lloyd iterations for a whole batch of videos at once.

Shapes: ``B`` videos, ``N`` points (tokens) each, ``D`` features, ``K`` clusters.

Every video of a batch is clustered by the same tensor operations (no Python loop over videos), and a
video's result does not depend on the rest of its batch: the seeding sample and the random draws are
derived from ``seed`` alone, and a video stops changing as soon as it has converged.

Metrics: ``"l2"`` is Lloyd's k-means on the features; ``"cosine"`` is spherical k-means, i.e. the same on
L2-normalised features with normalised centroids, whose inertia is ``sum(2 - 2 cos)``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .._tensors import one_hot, take
from . import cudagraphs
from .backend import Backend
from .rules import keeps_iterating, reseeds

METRICS = ("cosine", "l2")
CPU_CHUNK_ELEMENTS = 1 << 18  # elements of the reused buffer through which a CPU pass converts the points
_GOLDEN = 0.6180339887498949  # 1/phi: a low-discrepancy stride for the seeding sample
_PLASTIC = 0.7548776662466927  # 1/rho: turns the seed into the sample's starting offset


@dataclass
class KMeansResult:
    """What :func:`kmeans` found.

    centroids: ``[B, K, D]`` float32, in the clustering space (normalised for ``"cosine"``).
    labels: ``[B, N]`` int64 in ``[0, K)``; masked-out points get 0.
    inertia: ``[B]`` float32, sum of squared distances of valid points to their centroid.
    iterations: ``[B]`` int64, Lloyd iterations each video ran before it converged or hit the cap.
    """

    centroids: torch.Tensor
    labels: torch.Tensor
    inertia: torch.Tensor
    iterations: torch.Tensor


@dataclass
class Features:
    """Points prepared for clustering, without copying them.

    x: ``[B, N, D]`` points as given (float32, or bfloat16 for the Triton Lloyd kernels). scale: ``[B, N]``
    factor that maps a row into the clustering space (``1/|x|`` for ``"cosine"``, 1 for ``"l2"``; 0 for
    masked-out points). sq_norms: ``[B, N]`` squared norms in that space. mask: ``[B, N]`` bool valid points.
    backend: how the seeding and the Lloyd loop over these points run (chosen once, by :func:`prepare`).
    """

    x: torch.Tensor
    scale: torch.Tensor
    sq_norms: torch.Tensor
    mask: torch.Tensor
    backend: Backend = Backend()

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Points ``idx`` ``[B, M]`` in the clustering space -> ``[B, M, D]``."""
        return take(self.x, idx) * self.scale.gather(1, idx).unsqueeze(-1)

    def select(self, videos: torch.Tensor) -> "Features":
        """The features of a subset of the batch, ``videos`` ``[B']`` int64."""
        return Features(self.x[videos], self.scale[videos], self.sq_norms[videos], self.mask[videos], self.backend)


def prepare(x: torch.Tensor, metric: str, mask: torch.Tensor | None = None,
            backend: Backend | None = None) -> Features:
    """Prepare ``x`` ``[B, N, D]`` for clustering with ``metric``; ``mask`` ``[B, N]`` bool (default all);
    ``backend`` (default :meth:`Backend.choose` for x's device). The points are kept as float32, or as
    bfloat16 where the Triton Lloyd pass reads them. With graphs they are staged (one copy shared by the
    seeding and Lloyd graphs)."""
    backend = Backend.choose(x.device) if backend is None else backend
    keep = x.dtype == torch.bfloat16 and _triton_lloyd(backend, 1, x.shape[1])
    x = x if keep else x.float()
    x = cudagraphs.stage(x) if backend.graphs else x
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if x.dtype == torch.float32:
        sq = torch.einsum("bnd,bnd->bn", x, x)
    else:  # one fused pass over the bfloat16 points (a float32 copy would be twice their size)
        sq = torch.linalg.vector_norm(x, dim=-1, dtype=torch.float32).square()
    if metric == "cosine":
        scale = sq.sqrt().clamp_min(1e-12).reciprocal()
        sq = (sq > 0).float()
    else:
        scale = torch.ones_like(sq)
    return Features(x, scale * mask, sq * mask, mask, backend)


def squared_distances(a: torch.Tensor, a_sq: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``|a_n - c_m|^2`` for ``a`` ``[B, N, D]`` (squared norms ``a_sq`` ``[B, N]``) and ``c`` ``[B, M, D]``
    -> ``[B, N, M]``."""
    c_sq = torch.einsum("bmd,bmd->bm", c, c).unsqueeze(1)
    return (a_sq.unsqueeze(-1) + c_sq - 2 * torch.bmm(a, c.transpose(1, 2))).clamp_min_(0)


def cluster_sums(x: torch.Tensor, labels: torch.Tensor, k: int, weights: torch.Tensor | None = None,
                 dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster weighted sums and member counts, deterministic (no atomics).

    x: ``[B, N, D]`` float; labels: ``[B, N]`` in ``[0, k]``, where ``k`` marks points to leave out;
    weights: ``[B, N]`` (default 1); dtype: accumulation dtype (default x's). Returns sums ``[B, k, D]``
    in ``dtype`` and counts ``[B, k]`` int64. CUDA: a dense one-hot product. CPU: a sparse one-hot
    product in x's dtype, or chunked index_add where x must be converted (no full-size copy).
    """
    b, n, d = x.shape
    dtype = dtype or x.dtype
    flat = (labels + torch.arange(b, device=x.device).unsqueeze(1) * (k + 1)).reshape(-1)
    members = torch.zeros(b * (k + 1), dtype=torch.long, device=x.device)  # bincount without its host sync
    members.scatter_add_(0, flat, torch.ones_like(flat))
    counts = members.view(b, k + 1)[:, :k]
    w = None if weights is None else weights.reshape(-1).to(dtype)
    if x.is_cuda:
        hot = one_hot(labels, k + 1, dtype)[..., :k]  # [B, N, k]
        if w is not None:
            hot = hot * w.view(b, n, 1)
        return torch.bmm(hot.transpose(1, 2), x.to(dtype)), counts
    rows = x.reshape(b * n, d)
    if dtype == x.dtype:
        order = torch.argsort(flat, stable=True)
        values = torch.ones(b * n, dtype=dtype) if w is None else w[order]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sparse CSR is "beta" in PyTorch; its matmul is what we need
            hot = torch.sparse_csr_tensor(F.pad(members.cumsum(0), (1, 0)), order, values,
                                          size=(b * (k + 1), b * n))
        sums = hot @ rows
    else:
        sums = torch.zeros(b * (k + 1), d, dtype=dtype)
        step = max(1, CPU_CHUNK_ELEMENTS // d)
        buf = torch.empty(min(step, b * n), d, dtype=dtype)  # one small buffer, reused
        for i in range(0, b * n, step):
            part = buf[: rows[i : i + step].shape[0]].copy_(rows[i : i + step])
            if w is not None:
                part.mul_(w[i : i + step, None])
            sums.index_add_(0, flat[i : i + step], part)
    return sums.view(b, k + 1, d)[:, :k], counts


def _seed_sample(mask: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``[B, S]`` of the points that k-means++ seeds from, and which of them are real ``[B, S]``.

    All valid points when a video has at most ``size``; otherwise ``size`` points spread evenly over the
    valid ones by a golden-ratio sequence (no aliasing with the token grid), offset by ``seed``.
    """
    b, n = mask.shape
    s = min(size, n)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # valid positions first
    n_valid = mask.sum(1, keepdim=True)  # [B, 1]
    j = torch.arange(s, device=mask.device)
    frac = torch.frac(seed * _PLASTIC + j.double() * _GOLDEN)
    spread = (frac.unsqueeze(0) * n_valid).long()
    pick = torch.where(n_valid <= s, j.unsqueeze(0), spread)
    valid = pick < n_valid
    return order.gather(1, pick.clamp(max=n - 1)), valid


def kmeans_plusplus(
    feats: Features,
    k: int,
    *,
    seed: int = 0,
    sample_size: int | None = None,
    local_trials: int | None = None,
) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with scikit-learn's local trials).

    Seeds from a sample of ``sample_size`` points per video (default ``max(1024, 32 * k)``).
    Returns ``[B, k, D]`` in the clustering space. The first ``j`` seeds do not depend on ``k``, so a
    smaller K's seeds are a prefix of a larger one's. Once every sampled point is covered, further seeds
    repeat a point (zero distance); Lloyd re-seeds such duplicates or leaves them empty.
    """
    trials = local_trials or 2 + int(math.log(k))
    size = min(sample_size or max(1024, 32 * k), feats.x.shape[1])
    gen = torch.Generator().manual_seed(seed)
    draws = torch.rand(k, trials, generator=gen, dtype=torch.float64).to(feats.x.device)
    args = (feats.x, feats.scale, feats.sq_norms, feats.mask, draws)
    triton = feats.backend.triton and _kernels().available(size, trials)
    consts = dict(size=size, seed=seed, triton=triton)
    return cudagraphs.run(feats.backend.graphs, _seeds, *args, **consts)


def _seeds(x, scale, sq_norms, mask, draws, *, size, seed, triton):
    """The seeds ``[B, k, D]`` from a sample of ``size`` points per video (see :func:`kmeans_plusplus`);
    the greedy steps by the Triton kernel or by PyTorch operations. No host syncs."""
    idx, valid = _seed_sample(mask, size, seed)
    pts = Features(x, scale, sq_norms, mask).rows(idx)  # [B, S, D]
    args = (pts, sq_norms.gather(1, idx), valid.to(pts.dtype), draws)
    return take(pts, _kernels().greedy_seeds(*args) if triton else _greedy_seeds(*args))


def _kernels():
    """The Triton kernels module, imported on first CUDA use (CPU work never imports Triton)."""
    from . import kernels

    return kernels


def _triton_lloyd(backend: Backend, clusters: int, points: int) -> bool:
    """Whether Lloyd's iterations run as the Triton kernels (the backend's choice, within their limits)."""
    return backend.triton and _kernels().lloyd_available(clusters, points)


def _greedy_seeds(pts, pts_sq, weight, draws) -> torch.Tensor:
    """The greedy k-means++ steps: indices ``[B, k]`` into ``pts`` ``[B, S, D]`` (squared norms ``pts_sq``,
    ``weight`` 1 for real points), from ``draws`` ``[k, trials]`` uniform numbers. No host syncs."""
    real = weight.sum(1, keepdim=True)  # [B, 1]: the real points come first
    last = (real.long() - 1).clamp_min(0)  # candidates are never padding, even once every point is covered
    first = torch.minimum((draws[0, :1] * real).long(), last).squeeze(1)  # [B]
    chosen = [first]
    d2 = squared_distances(pts, pts_sq, take(pts, first.unsqueeze(1))).squeeze(-1)  # [B, S]
    for i in range(1, draws.shape[0]):
        cum = (d2 * weight).double().cumsum(1)
        targets = draws[i].unsqueeze(0) * cum[:, -1:]  # [B, trials]
        cand = torch.minimum(torch.searchsorted(cum, targets, right=True), last)
        dc = torch.minimum(d2.unsqueeze(-1), squared_distances(pts, pts_sq, take(pts, cand)))
        best = (dc * weight.unsqueeze(-1)).sum(1).argmin(1, keepdim=True)  # [B, 1]: lowest potential
        chosen.append(cand.gather(1, best).squeeze(1))
        d2 = dc.gather(2, best.unsqueeze(1).expand(-1, dc.shape[1], 1)).squeeze(-1)
    return torch.stack(chosen, 1)


def _assign(feats: Features, centroids, live):
    """Nearest live centroid: labels ``[B, N]`` and squared distances ``[B, N]`` (0 where masked)."""
    c_sq = torch.einsum("bkd,bkd->bk", centroids, centroids).unsqueeze(1)
    scores = torch.bmm(feats.x, centroids.transpose(1, 2)).mul_(feats.scale.unsqueeze(-1))
    scores.sub_(0.5 * c_sq).masked_fill_(~live.unsqueeze(1), float("-inf"))  # x.c - |c|^2 / 2
    best, labels = scores.max(-1)
    return labels, (feats.sq_norms - 2 * best).clamp_min_(0) * feats.mask


def _update(feats: Features, labels, dist, centroids, live, metric):
    """New centroids ``[B, K, D]``: cluster means; the first empty live cluster of a video is re-seeded at
    its farthest point (one per iteration: the next iteration's assignment moves that point, and a further
    empty cluster takes the next farthest then)."""
    k = centroids.shape[1]
    sums, counts = cluster_sums(feats.x, torch.where(feats.mask, labels, k), k, feats.scale)
    means = sums / counts.clamp_min(1).unsqueeze(-1)
    if metric == "cosine":
        means = F.normalize(means, dim=-1)
    empty = (counts == 0) & live  # [B, K]
    far_dist, far_idx = dist.max(1, keepdim=True)  # [B, 1]
    reseed = reseeds(empty & (empty.cumsum(1) == 1), far_dist)
    means = torch.where(reseed.unsqueeze(-1), feats.rows(far_idx), means)
    return torch.where(((counts > 0) | reseed).unsqueeze(-1), means, centroids)


def lloyd(
    feats: Features,
    init: torch.Tensor,
    num_clusters: torch.Tensor,
    *,
    metric: str,
    max_iters: int,
    tol: float,
) -> KMeansResult:
    """Lloyd iterations from ``init`` ``[B, K_max, D]`` (see :func:`kmeans`).

    num_clusters: ``[B]`` int64, clusters in use per video (the first ones of ``init``). For bfloat16 points
    on CUDA with Triton an iteration is five kernels (``kernels.lloyd_steps``: the points read for their
    scores, the moved ones again for the sums; the state kept on the device between clusterings of the same
    shape; ``kernels.STEPS`` iterations a launch, the kernels stopping each video at ``max_iters``);
    otherwise PyTorch operations on float32 points (:func:`_lloyd_step`). On CUDA both are replayed as CUDA
    graphs.
    """
    (b, n, _), dev = feats.x.shape, feats.x.device
    graphs = feats.backend.graphs
    on_triton = feats.x.dtype == torch.bfloat16 and _triton_lloyd(feats.backend, init.shape[1], n)
    if on_triton:
        args = (feats.x, feats.scale, feats.sq_norms, feats.mask, num_clusters.contiguous())  # kernels index it
        kernels = _kernels()
        step, state_type = kernels.lloyd_steps, kernels.LloydState
        consts = dict(cosine=metric == "cosine", tol=tol, max_iters=max_iters, steps=kernels.STEPS)
        key = ("lloyd", feats.x.shape, init.shape[1], dev, metric, tol, torch.get_float32_matmul_precision())
        state = kernels.lloyd_start(feats.x, init, cudagraphs.take(key) if graphs else None)
        launches = -(-(max_iters + 1) // kernels.STEPS)  # the initial assignment, then the iterations
    else:
        if feats.x.dtype != torch.float32:
            feats = dataclasses.replace(feats, x=feats.x.float())
        live = torch.arange(init.shape[1], device=dev).unsqueeze(0) < num_clusters.unsqueeze(1)  # [B, K]
        args = (feats.x, feats.scale, feats.sq_norms, feats.mask, live)
        step, state_type, consts = _lloyd_step, _LloydState, dict(metric=metric, tol=tol)
        labels, dist = _assign(feats, init, live)
        state = _LloydState(init, labels, dist, dist.sum(1), torch.ones(b, dtype=torch.bool, device=dev),
                            torch.zeros(b, dtype=torch.long, device=dev), torch.ones((), dtype=torch.bool, device=dev))
        launches = max_iters
    watch = _Watch(dev, lagged=on_triton)
    for _ in range(launches):
        state = state_type(*cudagraphs.run(graphs, step, *args, *state, carry=True, **consts))
        if watch.stopped(state.running):
            break
    if on_triton and graphs:  # the graph's own buffers: the next clustering of this shape copies nothing
        cudagraphs.keep(key, state)
    out = (state.centroids, state.labels, state.inertia, state.iterations)
    centroids, labels, inertia, iterations = (t.clone() for t in out) if graphs else out
    return KMeansResult(centroids, torch.where(feats.mask, labels, 0), inertia, iterations)


class _LloydState(NamedTuple):
    """What a PyTorch Lloyd iteration (:func:`_lloyd_step`) carries to the next: centroids ``[B, K, D]``,
    labels and squared distances ``[B, N]``, inertia ``[B]``, whether each video is still iterating
    ``[B]`` bool, its iterations ``[B]`` int64, and whether any video is ``[]`` bool."""

    centroids: torch.Tensor
    labels: torch.Tensor
    dist: torch.Tensor
    inertia: torch.Tensor
    active: torch.Tensor
    iterations: torch.Tensor
    running: torch.Tensor


class _Watch:
    """Reads the iterations' ``running`` flag (a 0-d bool on the device). With ``lagged`` (on CUDA) each
    launch's flag is copied to pinned host memory behind it and read one launch late, so the host queues the
    next launch before it waits: for the Triton kernels, whose launches past convergence do next to nothing.
    Otherwise it is read at once (a PyTorch iteration past convergence would cost a whole iteration)."""

    def __init__(self, device: torch.device, lagged: bool):
        self.lag = int(lagged and device.type == "cuda")
        self.host = torch.zeros(self.lag + 1, dtype=torch.bool, pin_memory=bool(self.lag))
        self.ready = [torch.cuda.Event() for _ in range(2 * self.lag)]
        self.seen = 0

    def stopped(self, running: torch.Tensor) -> bool:
        """Record the flag of the iteration just queued; whether the lagged one says every video converged."""
        i, slots = self.seen, self.lag + 1
        self.seen += 1
        self.host[i % slots].copy_(running, non_blocking=bool(self.lag))
        if self.lag:
            self.ready[i % slots].record()
        if i < self.lag:
            return False
        if self.lag:
            self.ready[(i - self.lag) % slots].synchronize()
        return not bool(self.host[(i - self.lag) % slots])


def _lloyd_step(x, scale, sq_norms, mask, live, centroids, labels, dist, inertia, active, iterations, running, *,
                metric, tol):
    """One Lloyd iteration without host syncs; a video that has converged (``active`` False) stays as it is,
    so running past convergence changes nothing."""
    feats = Features(x, scale, sq_norms, mask)
    new_c = _update(feats, labels, dist, centroids, live, metric)
    new_labels, new_dist = _assign(feats, new_c, live)
    new_inertia = new_dist.sum(1)
    going = keeps_iterating((new_labels != labels).any(1), inertia, new_inertia, tol)
    a = active.unsqueeze(1)  # a converged video stays as it is, whatever the rest of the batch does
    centroids = torch.where(a.unsqueeze(-1), new_c, centroids)
    labels, dist = torch.where(a, new_labels, labels), torch.where(a, new_dist, dist)
    inertia = torch.where(active, new_inertia, inertia)
    iterations = iterations + active.long()
    active = active & going
    return _LloydState(centroids, labels, dist, inertia, active, iterations, active.any())


def kmeans(
    x: torch.Tensor,
    num_clusters: int | torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    metric: str = "cosine",
    max_iters: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
    sample_size: int | None = None,
    backend: Backend | None = None,
) -> KMeansResult:
    """Cluster each video of a batch: greedy k-means++ seeding, then Lloyd iterations.

    x: ``[B, N, D]`` points. num_clusters: an int, or ``[B]`` int64 for a different K per video.
    mask: ``[B, N]`` bool, valid points (default all). A video stops when its labels no longer change
    or its inertia fell by less than ``tol`` (relative) in one iteration, or after ``max_iters``.
    backend: Triton kernels and CUDA graphs or not (default :meth:`Backend.choose` for x's device).
    """
    feats = prepare(x, metric, mask, backend)
    k = torch.as_tensor(num_clusters, device=x.device).expand(x.shape[0])
    init = kmeans_plusplus(feats, int(k.max()), seed=seed, sample_size=sample_size)
    return lloyd(feats, init, k, metric=metric, max_iters=max_iters, tol=tol)
