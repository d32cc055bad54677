"""Triton kernels for k-means' hot loop on CUDA.

Greedy k-means++ seeding (:func:`greedy_seeds`) is ``K`` dependent steps, each a cumulative sum, a search and
a few candidate distances over a sample of about a thousand points: as PyTorch operations that is about ten
small kernels per step, so its time on a GPU is launches, not work. Here the sample's Gram matrix is one
matrix product, and the ``K`` steps of each video run inside one Triton program that keeps the sample's
distances in registers. It follows :func:`tokendynamics.cluster.kmeans._greedy_seeds` step by step (same draws,
same search, same tie-breaking); the two differ only by float rounding of the distances (tested to give
the same seeds on the GPU).

A Lloyd iteration over bfloat16 points (:func:`lloyd_steps`, the reducer's usual input) is five kernels
instead of about forty PyTorch operations reading the points twice as float32. The pass reads each tile of
points once, for its scores against every centroid, and lists the points whose label changed. The sums
kernel, a program per pass program's block of columns, re-reads only those points and adds their change
to the cluster sums (out of the old cluster, into the new) into the pass program's own slot of a
partial-sums buffer (no atomics: deterministic); the sums themselves are kept between iterations. The
products run on tensor cores: the points are exact in bfloat16, and each float32 operand on the other
side (centroids, cosine weights) is split into bfloat16 pieces whose sum is the float32 value (three
pieces at PyTorch's default "highest" float32 matmul precision: 24 bits, as float32; two at "high"; one
at "medium"), with float32 accumulation. The other kernels reduce the slots into new centroids (mean,
normalised for cosine, or the farthest point for the first empty cluster), split them, and settle each
video's counts, inertia and convergence on the device; a converged video's programs do nothing, so
several iterations go in one launch (:data:`STEPS`, one CUDA graph replay) without a look from the host.
They follow ``kmeans._lloyd_step`` (tested against it in Triton's CPU interpreter and on the GPU).

Used where the caller's :class:`~tokendynamics.cluster.backend.Backend` chooses Triton (CUDA, Triton
installed, not switched off by ``TOKENDYNAMICS_TRITON=0``); :func:`available` and :func:`lloyd_available`
say whether a problem is within their limits. The rules both paths share (when a video stops, which
cluster is re-seeded) are ``rules``' functions, compiled here as they are.
"""

from __future__ import annotations

import types
from typing import NamedTuple

import torch

from . import rules

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton is optional: the PyTorch path runs everywhere
    triton = None

MAX_SAMPLE = 4096  # points per video that one program holds in registers
MAX_TRIALS = 16


def available(sample: int, trials: int) -> bool:
    """Whether :func:`greedy_seeds` takes this sample size and number of local trials."""
    return triton is not None and sample <= MAX_SAMPLE and trials <= MAX_TRIALS


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


# ---- Lloyd iterations ---------------------------------------------------------------------------------

MAX_CLUSTERS = 256  # centroids whose scores one program holds in registers
BLOCK_N, BLOCK_D = 128, 128  # a tile of points, and the feature columns loaded at a time
BLOCK_P, REDUCE_D = 32, 32  # partial-sum slots and columns a program of the reduce and update holds
PROGRAMS_PER_SM, NUM_WARPS, NUM_STAGES = 1, 8, 3  # the pass's programs (benchmarks/bench_lloyd.py --sweep)
SUMS_M, SUMS_D = 16, 128  # listed points and columns a program of the sums takes at a time
STEPS = 2  # Lloyd passes per launch of lloyd_steps (one CUDA graph replay)
PIECES = {"highest": 3, "high": 2, "medium": 1}  # bfloat16 pieces per float32 operand, as PyTorch describes
                                                  # its float32 matmul precisions


def lloyd_available(clusters: int, points: int) -> bool:
    """Whether :func:`lloyd_steps` takes this number of clusters and points per video (its points must
    also be bfloat16: ``kmeans.lloyd`` checks)."""
    return triton is not None and clusters <= MAX_CLUSTERS and points < 1 << 24


class LloydState(NamedTuple):
    """What :func:`lloyd_steps` carries between iterations (``B`` videos, ``K`` clusters, ``P`` programs
    per video, ``KP`` the padded K)."""

    centroids: torch.Tensor  # [B, K, D] float32
    labels: torch.Tensor  # [B, N] int64
    slots: torch.Tensor  # [B, P, K, D] float32: partial cluster sums, one slot per program
    counts: torch.Tensor  # [B, KP] int32
    far: torch.Tensor  # [B, 2] float32: the farthest point's distance and index
    inertia: torch.Tensor  # [B] float32
    active: torch.Tensor  # [B] bool: still iterating
    iterations: torch.Tensor  # [B] int64, -1 before the initial assignment
    sums: torch.Tensor  # [B, K, D] float32: the clusters' sums
    part_stats: torch.Tensor  # [B, P, STATS] float32: the last pass's statistics per program
    running: torch.Tensor  # [] bool: whether any video is active


def lloyd_state(x: torch.Tensor, k: int) -> LloydState:
    """Buffers of a :class:`LloydState` for points ``x`` ``[B, N, D]`` and ``k`` clusters (:func:`lloyd_start`
    fills them for a clustering)."""
    b, n, d = x.shape
    dev = x.device
    sms = torch.cuda.get_device_properties(dev).multi_processor_count if dev.type == "cuda" else 2
    target = triton.cdiv(PROGRAMS_PER_SM * sms, b)  # programs per video
    programs = min(triton.cdiv(n, _rows(n, target)), target)
    return LloydState(
        centroids=torch.empty(b, k, d, device=dev), labels=torch.zeros(b, n, dtype=torch.long, device=dev),
        slots=torch.empty(b, programs, k, d, device=dev),
        counts=torch.zeros(b, _padded(k), dtype=torch.int32, device=dev), far=torch.zeros(b, 2, device=dev),
        inertia=torch.zeros(b, device=dev), active=torch.empty(b, dtype=torch.bool, device=dev),
        iterations=torch.empty(b, dtype=torch.long, device=dev), sums=torch.empty(b, k, d, device=dev),
        part_stats=torch.empty(b, programs, STATS, device=dev),
        running=torch.ones((), dtype=torch.bool, device=dev))


def lloyd_start(x: torch.Tensor, init: torch.Tensor, state: LloydState | None = None) -> LloydState:
    """``state`` (a :func:`lloyd_state`, made here if None) filled in place for a clustering of ``x`` from the
    centroids ``init`` ``[B, K, D]``: every video active, before its initial assignment."""
    state = state or lloyd_state(x, init.shape[1])
    state.centroids.copy_(init)
    state.active.fill_(True)
    state.iterations.fill_(-1)
    return state


STATS = 5  # per pass program: labels changed, inertia, farthest distance and index, whether its points change
           # the cluster sums (then the sums kernel wrote its slot, which the reduce reads)


def _rows(n: int, programs: int) -> int:
    """Points per tile: ``BLOCK_N``, or fewer so that ``programs`` tiles cover the ``n`` points evenly."""
    return min(BLOCK_N, triton.cdiv(n, programs))


def _padded(k: int) -> int:
    return max(16, triton.next_power_of_2(k))  # tl.dot's smallest side


def lloyd_steps(x, scale, sq_norms, mask, num_clusters, *state, cosine: bool, tol: float, max_iters: int,
                steps: int) -> LloydState:
    """``steps`` passes of Lloyd's algorithm over every active video, in place on ``state`` (the tensors of
    a :class:`LloydState`, in its order: :func:`lloyd_start`'s); a video stops (``active`` False) once it
    has converged or made ``max_iters`` iterations, so passes past that change nothing.

    A video's first pass (iterations -1) is the initial assignment to the given centroids (no update); it
    adds every point into the partial sums. Later passes add only the points whose label changed (out of
    the old cluster, into the new one), and only for tiles with such points are slots written: the update
    keeps the clusters' sums (taken whole after the first pass) and adds the changes, so once few labels
    change, an iteration reads the tokens about once and the slots are hardly touched.

    x: ``[B, N, D]`` bfloat16 points; scale, sq_norms: ``[B, N]`` float32 (see ``kmeans.Features``); mask:
    ``[B, N]`` bool; num_clusters: ``[B]`` int64, the clusters in use (the first ones); running is set to
    whether any video is still active. Five launches: the reduce and the update (a program per block of
    columns of each centroid: the mean of its partial sums, normalised for cosine, or the farthest point for
    the first empty cluster; its bfloat16 pieces), the pass (assignment; it lists the points that change
    the sums), the sums (a program per pass program's block of columns) and the finish (one program per
    video: counts, inertia, farthest point, convergence) per pass. No host syncs. Returns the state."""
    centroids, labels, slots, counts, far, inertia, active, iterations, sums, part_stats, running = state
    b, n, d = x.shape
    k, programs, kp = centroids.shape[1], slots.shape[1], counts.shape[1]
    pieces_n = PIECES[torch.get_float32_matmul_precision()]
    pieces = torch.empty(b, pieces_n, k, d, dtype=torch.bfloat16, device=x.device)
    bias = torch.empty(b, k, device=x.device)
    part_counts = torch.empty(b, programs, kp, dtype=torch.int32, device=x.device)
    chunks, rows = triton.cdiv(d, REDUCE_D), _rows(n, programs)
    tiles = triton.cdiv(n, rows)
    moves = torch.empty(b, tiles, 3, BLOCK_N, dtype=torch.int32, device=x.device)
    move_counts = torch.empty(b, tiles, dtype=torch.int32, device=x.device)
    sumsq = torch.empty(b, k, chunks, device=x.device)
    for _ in range(steps):
        _reduce_kernel[(b, k, chunks)](x, scale, slots, part_stats, sums, counts, far, centroids, sumsq,
                                       num_clusters, active, iterations, running, n, programs, k, D=d, KP=kp,
                                       STATS=STATS, BLOCK_P=BLOCK_P, BLOCK_D=REDUCE_D)
        _update_kernel[(b, k, chunks)](centroids, sumsq, counts, far, pieces, bias, num_clusters, active,
                                       iterations, k, chunks, D=d, KP=kp, BLOCK_D=REDUCE_D,
                                       BLOCK_C=triton.next_power_of_2(chunks), PIECES=pieces_n, COSINE=cosine)
        _pass_kernel[(programs, b)](x, scale, sq_norms, mask, pieces, bias, active, iterations, labels, moves,
                                    move_counts, part_counts, part_stats, n, k, rows, tiles, D=d, KP=kp, STATS=STATS,
                                    BLOCK_N=BLOCK_N, BLOCK_D=BLOCK_D, PIECES=pieces_n, num_warps=NUM_WARPS,
                                    num_stages=NUM_STAGES)
        _sums_kernel[(programs, triton.cdiv(d, SUMS_D), b)](x, scale, active, iterations, moves, move_counts, slots,
                                                            n, k, rows, tiles, D=d, KP=kp, BLOCK_N=BLOCK_N,
                                                            BLOCK_M=SUMS_M, BLOCK_D=SUMS_D, PIECES=pieces_n,
                                                            WP=pieces_n if cosine else 1)
        _finish_kernel[(b,)](part_counts, part_stats, counts, far, inertia, active, iterations, running, programs,
                             tol, max_iters, KP=kp, STATS=STATS, BLOCK=triton.next_power_of_2(programs))
    return LloydState(*state)


def _compiled(rule):
    """A function of ``rules`` as a Triton function: the same code, run with this module's globals (Triton
    looks for ``triton.language`` among them)."""
    return triton.jit(types.FunctionType(rule.__code__, globals(), rule.__name__))


if triton is not None:
    _keeps_iterating, _reseeds = _compiled(rules.keeps_iterating), _compiled(rules.reseeds)

    @triton.jit
    def _split(a, PARTS: tl.constexpr):
        """``a`` as up to three bfloat16 pieces whose sum is ``a`` (to 24 bits for three; unused pieces repeat
        the first)."""
        a1 = a.to(tl.bfloat16)
        a2 = a1
        a3 = a1
        if PARTS > 1:
            r = a.to(tl.float32) - a1.to(tl.float32)
            a2 = r.to(tl.bfloat16)
            if PARTS > 2:
                a3 = (r - a2.to(tl.float32)).to(tl.bfloat16)
        return a1, a2, a3

    @triton.jit
    def _dot_pieces(a1, a2, a3, b1, b2, b3, acc, PIECES: tl.constexpr, AP: tl.constexpr, BP: tl.constexpr):
        """``acc + a @ b`` on tensor cores, where one operand is bfloat16 (one piece: ``AP`` or ``BP`` is 1)
        and the other is given as its ``PIECES`` bfloat16 pieces: one product per piece."""
        acc = tl.dot(a1, b1, acc)
        if PIECES > 1:
            if BP > 1:
                acc = tl.dot(a1, b2, acc)
            if AP > 1:
                acc = tl.dot(a2, b1, acc)
        if PIECES > 2:
            if BP > 2:
                acc = tl.dot(a1, b3, acc)
            if AP > 2:
                acc = tl.dot(a3, b1, acc)
        return acc

    @triton.jit
    def _centroid_case(counts, far, num_clusters, v, k, K, KP: tl.constexpr):
        """For centroid k of video v after a pass: (re-seed it at the farthest point: it is the video's first
        empty cluster in use and that point is off its centroid; take the mean: it has members; its count)."""
        ks = tl.arange(0, KP)
        cnts = tl.load(counts + v * KP + ks, mask=ks < K, other=1)
        lv = ks < tl.load(num_clusters + v)
        cnt = tl.sum(tl.where(ks == k, cnts, 0), 0)
        reseed = _reseeds(tl.min(tl.where((cnts == 0) & lv, ks, KP), 0) == k, tl.load(far + 2 * v))
        return reseed, (cnt > 0) & ~reseed, cnt

    @triton.jit
    def _reduce_kernel(x, scale, slots, part_stats, sums, counts, far, centroids, sumsq, num_clusters, active,
                       iterations, running, N, P, K, D: tl.constexpr, KP: tl.constexpr, STATS: tl.constexpr,
                       BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr):
        """Program (v, k, j): columns ``j * BLOCK_D ...`` of cluster k of video v: its sums from the last
        pass's partial sums in the slots written (whole after the initial assignment, changes added after),
        and its centroid before normalisation: their mean, the farthest point, or unchanged (always before
        the initial assignment); their squared norm into ``sumsq[v, k, j]``. Program (0, 0, 0) clears
        ``running`` (the finish sets it again for videos still active)."""
        v = tl.program_id(0).to(tl.int64)
        k = tl.program_id(1)
        j = tl.program_id(2)
        tl.store(running, False, mask=(v == 0) & (k == 0) & (j == 0))
        if tl.load(active + v):
            cols = j * BLOCK_D + tl.arange(0, BLOCK_D)
            inside = cols < D
            row = centroids + (v * K + k) * D + cols
            c = tl.load(row, mask=inside, other=0.0)
            done = tl.load(iterations + v)  # -1 before the initial assignment, 0 after it
            if done >= 0:
                reseed, mean, cnt = _centroid_case(counts, far, num_clusters, v, k, K, KP)
                total = sums + (v * K + k) * D + cols
                acc = tl.load(total, mask=inside & (done > 0), other=0.0)
                for p0 in range(0, P, BLOCK_P):
                    ps = p0 + tl.arange(0, BLOCK_P)
                    written = tl.load(part_stats + (v * P + ps) * STATS + 4, mask=ps < P, other=0.0) != 0
                    part = tl.load(slots + ((v * P + ps[:, None]) * K + k) * D + cols[None, :],
                                   mask=written[:, None] & inside[None, :], other=0.0)
                    acc += tl.sum(part, 0)
                tl.store(total, acc, mask=inside)
                far_i = tl.load(far + 2 * v + 1).to(tl.int64)
                far_row = tl.load(x + (v * N + far_i) * D + cols, mask=inside, other=0.0).to(tl.float32)
                c = tl.where(reseed, far_row * tl.load(scale + v * N + far_i),
                             tl.where(mean, acc / tl.maximum(cnt, 1).to(tl.float32), c))
                tl.store(row, c, mask=inside)
            tl.store(sumsq + (v * K + k) * tl.num_programs(2) + j, tl.sum(c * c, 0))

    @triton.jit
    def _update_kernel(centroids, sumsq, counts, far, pieces, bias, num_clusters, active, iterations, K, CHUNKS,
                       D: tl.constexpr, KP: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_C: tl.constexpr,
                       PIECES: tl.constexpr, COSINE: tl.constexpr):
        """Program (v, k, j): columns ``j * BLOCK_D ...`` of centroid k of video v normalised (cosine, means
        only, as ``F.normalize``) and split into bfloat16 pieces; program j = 0 also writes the bias
        ``|c|^2 / 2`` (infinite for a cluster not in use)."""
        v = tl.program_id(0).to(tl.int64)
        k = tl.program_id(1)
        j = tl.program_id(2)
        if tl.load(active + v):
            js = tl.arange(0, BLOCK_C)
            norm_sq = tl.sum(tl.load(sumsq + (v * K + k) * CHUNKS + js, mask=js < CHUNKS, other=0.0), 0)
            div = 1.0
            if COSINE:
                mean = _centroid_case(counts, far, num_clusters, v, k, K, KP)[1] & (tl.load(iterations + v) >= 0)
                div = tl.where(mean, tl.maximum(tl.sqrt(norm_sq), 1e-12), 1.0)
            cols = j * BLOCK_D + tl.arange(0, BLOCK_D)
            inside = cols < D
            row = centroids + (v * K + k) * D + cols
            c = tl.load(row, mask=inside, other=0.0) / div
            if COSINE:
                tl.store(row, c, mask=inside)
            c1, c2, c3 = _split(c, PIECES)
            out = pieces + ((v * PIECES) * K + k) * D + cols
            tl.store(out, c1, mask=inside)
            if PIECES > 1:
                tl.store(out + K * D, c2, mask=inside)
            if PIECES > 2:
                tl.store(out + 2 * K * D, c3, mask=inside)
            in_use = k < tl.load(num_clusters + v)
            tl.store(bias + v * K + k, tl.where(in_use, 0.5 * norm_sq / (div * div), float("inf")), mask=j == 0)

    @triton.jit
    def _pass_kernel(x, scale, sq_norms, mask, pieces, bias, active, iterations, labels, moves, move_counts,
                     part_counts, part_stats, N, K, ROWS, TILES, D: tl.constexpr, KP: tl.constexpr, STATS: tl.constexpr,
                     BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PIECES: tl.constexpr):
        """Program (p, v): tiles ``p, p + P, ...`` of ``ROWS <= BLOCK_N`` points of video v, read once for
        their scores: their labels, and the program's counts and statistics, among them whether its points
        change the cluster sums. Those points (all of them in the initial assignment, else those that moved)
        are listed per tile for :func:`_sums_kernel`: ``moves[v, tile]`` ``[3, BLOCK_N]`` holds their rows,
        old and new labels, ``move_counts[v, tile]`` how many."""
        p = tl.program_id(0)
        v = tl.program_id(1).to(tl.int64)
        P = tl.num_programs(0)
        n_end = tl.where(tl.load(active + v), N, 0)
        whole = tl.load(iterations + v) < 0  # every point into the sums, not only the moved ones
        ks = tl.arange(0, KP)
        real = ks < K
        half_sq = tl.load(bias + v * K + ks, mask=real, other=float("inf"))
        xv, cv = x + v * N * D, pieces + v * PIECES * K * D
        members = tl.zeros([KP], dtype=tl.int32)
        changed = 0
        adds = 0  # whether any point of the program's tiles changes the cluster sums
        inertia = 0.0
        far_d = -1.0
        far_i = 0
        for t0 in range(p * ROWS, n_end, P * ROWS):
            rows = t0 + tl.arange(0, BLOCK_N)
            inside = (tl.arange(0, BLOCK_N) < ROWS) & (rows < N)
            dots = tl.zeros([BLOCK_N, KP], dtype=tl.float32)
            for d0 in range(0, D, BLOCK_D):
                cols = d0 + tl.arange(0, BLOCK_D)
                tile = tl.load(xv + rows[:, None] * D + cols[None, :],
                               mask=inside[:, None] & (cols < D)[None, :], other=0.0)
                c_ptr = cv + ks[None, :] * D + cols[:, None]  # [BLOCK_D, KP]: the centroids' pieces, transposed
                c_in = real[None, :] & (cols < D)[:, None]
                c1 = tl.load(c_ptr, mask=c_in, other=0.0)
                c2 = c1
                c3 = c1
                if PIECES > 1:
                    c2 = tl.load(c_ptr + K * D, mask=c_in, other=0.0)
                if PIECES > 2:
                    c3 = tl.load(c_ptr + 2 * K * D, mask=c_in, other=0.0)
                dots = _dot_pieces(tile, tile, tile, c1, c2, c3, dots, PIECES, 1, PIECES)
            s = tl.load(scale + v * N + rows, mask=inside, other=0.0)
            valid = tl.load(mask + v * N + rows, mask=inside, other=0) != 0
            scores = dots * s[:, None] - half_sq[None, :]  # x.c - |c|^2 / 2
            best = tl.max(scores, 1)
            label = tl.argmax(scores, 1)
            old = tl.load(labels + v * N + rows, mask=inside, other=0)
            moved = (label.to(tl.int64) != old) & inside
            changed += tl.sum(moved.to(tl.int32), 0)
            read = ((moved | whole) & valid).to(tl.int32)
            adds = tl.maximum(adds, tl.max(read, 0))
            tl.store(labels + v * N + rows, label.to(tl.int64), mask=inside)
            tile_id = v * TILES + t0 // ROWS
            listed = moves + tile_id * 3 * BLOCK_N + tl.cumsum(read, 0) - 1
            tl.store(listed, rows, mask=read != 0)
            tl.store(listed + BLOCK_N, old.to(tl.int32), mask=read != 0)
            tl.store(listed + 2 * BLOCK_N, label.to(tl.int32), mask=read != 0)
            tl.store(move_counts + tile_id, tl.sum(read, 0))
            sq = tl.load(sq_norms + v * N + rows, mask=inside, other=0.0)
            dist = tl.where(valid, tl.maximum(sq - 2.0 * best, 0.0), 0.0)
            inertia += tl.sum(dist, 0)
            tile_far = tl.max(dist, 0)
            further = tile_far > far_d
            far_i = tl.where(further, t0 + tl.argmax(dist, 0), far_i)
            far_d = tl.where(further, tile_far, far_d)
            members += tl.sum(((label[:, None] == ks[None, :]) & valid[:, None]).to(tl.int32), 0)
        tl.store(part_counts + (v * P + p) * KP + ks, members)
        stats = part_stats + (v * P + p) * STATS
        tl.store(stats, changed.to(tl.float32))
        tl.store(stats + 1, inertia)
        tl.store(stats + 2, far_d)
        tl.store(stats + 3, far_i.to(tl.float32))
        tl.store(stats + 4, adds.to(tl.float32))

    @triton.jit
    def _sums_kernel(x, scale, active, iterations, moves, move_counts, slots, N, K, ROWS, TILES, D: tl.constexpr,
                     KP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
                     PIECES: tl.constexpr, WP: tl.constexpr):
        """Program (p, j, v): columns ``j * BLOCK_D ...`` of slot (v, p), from the points that pass program p
        listed (``BLOCK_M`` rows at a time): each into its new cluster, and out of its old one unless this is
        the initial assignment. Written only if p listed any; only the listed rows are read."""
        p = tl.program_id(0)
        j = tl.program_id(1)
        v = tl.program_id(2).to(tl.int64)
        P = tl.num_programs(0)
        n_end = tl.where(tl.load(active + v), N, 0)
        whole = tl.load(iterations + v) < 0
        ks = tl.arange(0, KP)
        cols = j * BLOCK_D + tl.arange(0, BLOCK_D)
        acc = tl.zeros([KP, BLOCK_D], dtype=tl.float32)
        listed = 0
        for t0 in range(p * ROWS, n_end, P * ROWS):
            tile_id = v * TILES + t0 // ROWS
            count = tl.load(move_counts + tile_id)
            listed += count
            for m0 in range(0, count, BLOCK_M):
                ms = m0 + tl.arange(0, BLOCK_M)
                use = ms < count
                entry = moves + tile_id * 3 * BLOCK_N + ms
                rows = tl.load(entry, mask=use, other=0)
                old = tl.load(entry + BLOCK_N, mask=use, other=-1)
                new = tl.load(entry + 2 * BLOCK_N, mask=use, other=-1)
                s = tl.load(scale + v * N + rows, mask=use, other=0.0)
                weight = tl.where(new[:, None] == ks[None, :], s[:, None], 0.0)
                weight -= tl.where((old[:, None] == ks[None, :]) & ~whole, s[:, None], 0.0)
                w1, w2, w3 = _split(tl.trans(weight), WP)  # [KP, BLOCK_M]: +s into the new cluster, -s out of the old
                tile = tl.load(x + (v * N + rows[:, None]) * D + cols[None, :],
                               mask=use[:, None] & (cols < D)[None, :], other=0.0)
                acc = _dot_pieces(w1, w2, w3, tile, tile, tile, acc, PIECES, WP, 1)
        tl.store(slots + ((v * P + p) * K + ks[:, None]) * D + cols[None, :], acc,
                 mask=(ks < K)[:, None] & (cols < D)[None, :] & (listed > 0))

    @triton.jit
    def _finish_kernel(part_counts, part_stats, counts, far, inertia, active, iterations, running, P, tol,
                       max_iters, KP: tl.constexpr, STATS: tl.constexpr, BLOCK: tl.constexpr):
        """Program v: video v's counts, farthest point and inertia from its programs' partials; after an
        iteration, its convergence (no label changed, or inertia fell by at most ``tol`` of itself); its
        pass counted, and it stops at ``max_iters`` iterations; ``running`` set if it is still active."""
        v = tl.program_id(0).to(tl.int64)
        if tl.load(active + v):
            ps = tl.arange(0, BLOCK)
            used = ps < P
            stats = part_stats + (v * P + ps) * STATS
            changed = tl.sum(tl.load(stats, mask=used, other=0.0), 0)
            new = tl.sum(tl.load(stats + 1, mask=used, other=0.0), 0)
            far_d = tl.load(stats + 2, mask=used, other=-1.0)
            top = tl.max(far_d, 0)
            tl.store(far + 2 * v, top)
            tl.store(far + 2 * v + 1, tl.min(tl.where(far_d == top, tl.load(stats + 3, mask=used, other=0.0),
                                                      float("inf")), 0))
            ks = tl.arange(0, KP)
            parts = tl.load(part_counts + (v * P + ps[:, None]) * KP + ks[None, :], mask=used[:, None], other=0)
            tl.store(counts + v * KP + ks, tl.sum(parts, 0))
            done = tl.load(iterations + v)
            old = tl.load(inertia + v)
            still = (done < 0) | _keeps_iterating(changed > 0, old, new, tol)  # the initial assignment goes on
            still &= done + 1 < max_iters
            tl.store(active + v, still)
            tl.store(iterations + v, done + 1)
            tl.store(inertia + v, new)
            tl.store(running, still, mask=still)
