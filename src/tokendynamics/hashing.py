"""The token hash table: a video's tokens as a few centroids (content) plus a key map (motion).

``hash_video`` clusters all tokens of each video across frames; ``TokenHashTable`` holds the result and
the token hash function ``reconstruct()`` (``table[key_map]``) that rebuilds the full token sequence.

Shapes: ``B`` videos of ``T`` frames of ``H x W`` tokens of width ``D``; ``N = T * H * W``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

from ._tensors import take
from .cluster import cudagraphs
from .cluster.backend import Backend
from ._checks import check_choice, check_length_mode, check_positive_int, check_video_tokens, read_safetensors
from .cluster.kmeans import CPU_CHUNK_ELEMENTS, METRICS, cluster_sums, kmeans, kmeans_plusplus, lloyd, prepare

_FORMAT = "tokendynamics.TokenHashTable"
_FORMAT_VERSION = "1"


class TokenHashTable:
    """A batch of hashed videos.

    table: ``[B, K_max, D]`` row ``k`` is the mean of the tokens whose key is ``k``; rows
        ``>= num_tokens[b]`` are zero padding.
    key_map: ``[B, T, H, W]`` int64, values in ``[0, num_tokens[b])``.
    num_tokens: ``[B]`` int64, rows in use per video.
    Rows are ordered by first appearance in the key map (frame by frame, in raster order), so equal
    videos give equal tables whatever the clustering's internal labels were.
    """

    def __init__(self, table: torch.Tensor, key_map: torch.Tensor, num_tokens: torch.Tensor,
                 distortion: torch.Tensor | None = None, *, validate: bool = True):
        if validate:  # False for parts known to agree (hash_video's own): the checks wait for the GPU
            _check_parts(table, key_map, num_tokens)
        self.table = table
        self.key_map = key_map
        self.num_tokens = num_tokens
        self._distortion = distortion

    @property
    def mask(self) -> torch.Tensor:
        """``[B, K_max]`` bool: which table rows are in use."""
        rows = torch.arange(self.table.shape[1], device=self.table.device)
        return rows.unsqueeze(0) < self.num_tokens.unsqueeze(1)

    def reconstruct(self) -> torch.Tensor:
        """The token hash function: ``table[key_map]`` -> ``[B, T, H, W, D]`` in the table's dtype."""
        b, _, d = self.table.shape
        return take(self.table, self.key_map.reshape(b, -1)).view(*self.key_map.shape, d)

    def distortion(self, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Fraction of variance unexplained ``[B]``: ``sum|x - x_hat|^2 / sum|x - mean(x)|^2`` per video.

        Without ``tokens``, the value for the tokens the table was built from (kept at hashing time);
        with ``tokens`` (``[T, H, W, D]`` or ``[B, T, H, W, D]``), against those.
        """
        if tokens is None:
            if self._distortion is None:
                raise ValueError("tokens must be given: this table does not know the tokens it came from")
            return self._distortion
        tokens = check_video_tokens(tokens)
        if tokens.shape[:-1] != self.key_map.shape or tokens.shape[-1] != self.table.shape[-1]:
            raise ValueError(f"tokens must have shape {(*self.key_map.shape, self.table.shape[-1])} to "
                             f"match this table, got {tuple(tokens.shape)}")
        b, d = tokens.shape[0], tokens.shape[-1]
        return fraction_unexplained(tokens.reshape(b, -1, d), self.table, self.key_map.reshape(b, -1))

    def to(self, *args, **kwargs) -> "TokenHashTable":
        """A copy on another device (``to("cuda")``); the table may also change dtype, the key map never."""
        table = self.table.to(*args, **kwargs)
        dev = table.device
        dist = None if self._distortion is None else self._distortion.to(dev)
        return TokenHashTable(table, self.key_map.to(dev), self.num_tokens.to(dev), dist)

    def save(self, path: str | Path) -> None:
        """Write the table, key map and counts to one safetensors file (format name in its metadata)."""
        tensors = {"table": self.table, "key_map": self.key_map, "num_tokens": self.num_tokens}
        if self._distortion is not None:
            tensors["distortion"] = self._distortion
        meta = {"format": _FORMAT, "version": _FORMAT_VERSION,
                "shape": json.dumps({"batch": self.table.shape[0], "k_max": self.table.shape[1],
                                     "grid": list(self.key_map.shape[1:]), "dim": self.table.shape[2]})}
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "TokenHashTable":
        """Read a file written by :meth:`save`."""
        t, meta = read_safetensors(path, device)
        if meta.get("format") != _FORMAT or not {"table", "key_map", "num_tokens"} <= set(t):
            raise ValueError(f"file {str(path)!r} is not a TokenHashTable file (format {meta.get('format')!r})")
        if not bool(torch.isfinite(t["table"]).all()):
            raise ValueError(f"file {str(path)!r} holds a table with non-finite values")
        try:
            return cls(t["table"], t["key_map"], t["num_tokens"], t.get("distortion"))
        except (TypeError, ValueError) as e:
            raise ValueError(f"file {str(path)!r} holds an inconsistent TokenHashTable: {e}") from None

    def __repr__(self) -> str:
        b, k, d = self.table.shape
        return (f"TokenHashTable(batch={b}, k_max={k}, dim={d}, grid={tuple(self.key_map.shape[1:])}, "
                f"num_tokens={self.num_tokens.tolist()}, dtype={self.table.dtype}, device={self.table.device})")


def _check_parts(table, key_map, num_tokens) -> None:
    for name, t in [("table", table), ("key_map", key_map), ("num_tokens", num_tokens)]:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if table.dim() != 3 or key_map.dim() != 4 or num_tokens.dim() != 1:
        raise ValueError(f"table, key_map and num_tokens must have shapes [B, K, D], [B, T, H, W] and [B], "
                         f"got {tuple(table.shape)}, {tuple(key_map.shape)} and {tuple(num_tokens.shape)}")
    if not table.shape[0] == key_map.shape[0] == num_tokens.shape[0]:
        raise ValueError("table, key_map and num_tokens must have the same batch size")
    if key_map.dtype != torch.long or num_tokens.dtype != torch.long:
        raise TypeError("key_map and num_tokens must be int64")
    if bool((num_tokens < 1).any()) or bool((num_tokens > table.shape[1]).any()):
        raise ValueError(f"num_tokens must be in [1, {table.shape[1]}], got {num_tokens.tolist()}")
    limit = num_tokens.view(-1, 1, 1, 1)
    if bool(((key_map < 0) | (key_map >= limit)).any()):
        raise ValueError("key_map values must be in [0, num_tokens[b]) for each video b")


def fraction_unexplained(x: torch.Tensor, table: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Distortion ``[B]``: ``sum|x - table[labels]|^2 / sum|x - mean(x)|^2`` per video.

    x: ``[B, N, D]``; table: ``[B, M, D]``; labels: ``[B, N]`` in ``[0, M)``. See :func:`_unexplained`.
    """
    sums, counts = cluster_sums(x, labels, table.shape[1], dtype=torch.float64)
    return _unexplained(sums, counts, table, _sq_total(x))


def _sq_total(x: torch.Tensor) -> torch.Tensor:
    """``sum_n |x_n|^2`` per video ``[B]`` float64, for ``x`` ``[B, N, D]``: one fused pass on CUDA; on CPU
    (where a float64 norm of float32 data is slow) through a small float64 buffer."""
    b, n, d = x.shape
    if x.is_cuda:
        return torch.linalg.vector_norm(x, dim=-1, dtype=torch.float64).square().sum(1)
    total = torch.zeros(b, dtype=torch.float64)
    step = max(1, CPU_CHUNK_ELEMENTS // (b * d))
    buf = torch.empty(b, min(step, n), d, dtype=torch.float64)
    for i in range(0, n, step):
        part = buf[:, : x[:, i : i + step].shape[1]].copy_(x[:, i : i + step])
        total += part.square().sum((1, 2))
    return total


def _unexplained(sums: torch.Tensor, counts: torch.Tensor, table: torch.Tensor, sq_total: torch.Tensor):
    """Distortion ``[B]`` float32 from the clusters' float64 sums ``[B, M, D]`` and counts ``[B, M]``, the
    rows ``table`` ``[B, M, D]`` that stand for them and ``sq_total`` (:func:`_sq_total`), without another
    pass over the points: ``sum|x - t|^2 = sum|x|^2 - 2 sum_k S_k.t_k + sum_k n_k |t_k|^2``, and the
    variance ``sum|x|^2 - |sum_k S_k|^2 / N``, in float64 (exact to ~1e-16 of ``sum|x|^2``). A video whose
    variance is below 1e-12 of ``sum|x|^2`` (a constant video) scores 0 if rebuilt to that resolution, else 1.
    """
    t = table.double()
    err = (sq_total - 2 * (sums * t).sum((1, 2)) + (counts * t.square().sum(-1)).sum(1)).clamp_min(0)
    var = sq_total - sums.sum(1).square().sum(-1) / counts.sum(1)
    floor = 1e-12 * sq_total
    return torch.where(var > floor, err / var.clamp_min(1e-300), (err > floor).double()).float()


def _clusters(x: torch.Tensor, labels: torch.Tensor, k: int):
    """Means ``[B, k, D]`` in x's dtype (averaged in float64, so that identical tokens average exactly to
    themselves), counts ``[B, k]`` and the distortion ``[B]`` of those means, for ``x`` ``[B, N, D]``
    grouped by ``labels`` ``[B, N]`` in ``[0, k)``."""
    sums, counts = cluster_sums(x, labels, k, dtype=torch.float64)
    means = (sums / counts.clamp_min(1).unsqueeze(-1)).to(x.dtype)
    return means, counts, _unexplained(sums, counts, means, _sq_total(x))


def _compact(means: torch.Tensor, counts: torch.Tensor, labels: torch.Tensor, k_out: int):
    """Drop empty clusters and order rows by first appearance.

    means: ``[B, k, D]``; counts: ``[B, k]``; labels: ``[B, N]`` in ``[0, k)``. Returns table
    ``[B, k_out, D]`` (zero padded), key map ``[B, N]`` and row counts ``[B]``.
    """
    (b, n), k = labels.shape, means.shape[1]
    position = torch.arange(n, device=labels.device).expand(b, n)
    first = torch.full((b, k), n, dtype=torch.long, device=labels.device)
    first.scatter_reduce_(1, labels, position, reduce="amin")
    order = torch.argsort(first, dim=1, stable=True)  # used rows by first appearance, empty rows last
    relabel = torch.empty_like(order).scatter_(1, order, torch.arange(k, device=labels.device).expand(b, k))
    num_tokens = (counts > 0).sum(1)
    rows = torch.arange(k, device=labels.device).unsqueeze(0) < num_tokens.unsqueeze(1)
    table = take(means, order) * rows.unsqueeze(-1)
    if k_out > k:
        table = torch.nn.functional.pad(table, (0, 0, 0, k_out - k))
    return table[:, :k_out], relabel.gather(1, labels), num_tokens


def hash_video(
    tokens: torch.Tensor,
    num_tokens: int | None = None,
    *,
    max_distortion: float | None = None,
    min_tokens: int = 1,
    max_tokens: int = 64,
    metric: str = "cosine",
    max_iters: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
    backend: Backend | None = None,
) -> TokenHashTable:
    """Hash a video's tokens into a token hash table and key map.

    tokens: ``[T, H, W, D]`` or ``[B, T, H, W, D]``, float32/float16/bfloat16, CPU or CUDA.
    Fixed length: ``num_tokens=K``; the table has K rows (fewer in use if the video has fewer distinct
    tokens). Adaptive length: ``max_distortion=f``: per video, the smallest K in
    ``[min_tokens, max_tokens]`` whose distortion is at most ``f`` (``max_tokens`` if none is), found by
    binary search over K; the table has as many rows as the largest K of the batch.
    Clustering: k-means (``metric`` ``"cosine"`` or ``"l2"``) seeded by greedy k-means++ from ``seed``,
    at most ``max_iters`` Lloyd iterations, stopping early at relative inertia change ``tol``.
    The table is in the tokens' dtype and device; clustering runs in float32 arithmetic (bfloat16 tokens on
    CUDA are read as they are, by the Triton Lloyd kernels: see ``kmeans.lloyd``). ``backend``: Triton
    kernels and CUDA graphs or not (default :meth:`~tokendynamics.cluster.backend.Backend.choose`).
    """
    x5 = check_video_tokens(tokens)
    check_choice(metric, "metric", METRICS)
    check_positive_int(max_iters, "max_iters")
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    check_length_mode(num_tokens, max_distortion)
    with torch.autocast(x5.device.type, enabled=False):  # clustering stays in float32 under mixed precision
        backend = Backend.choose(x5.device) if backend is None else backend
        return _hash(x5, num_tokens, max_distortion, min_tokens, max_tokens,
                     dict(metric=metric, max_iters=max_iters, tol=tol, seed=seed, backend=backend))


def _hash(x5, num_tokens, max_distortion, min_tokens, max_tokens, opts) -> TokenHashTable:
    b, t, h, w, d = x5.shape
    x = x5.reshape(b, t * h * w, d)
    graphs = opts["backend"].graphs
    if graphs:  # one copy read in place by every graph (float32 tokens need no other)
        x = cudagraphs.stage(x)
    if num_tokens is not None:
        k = num_tokens
        labels = kmeans(x, k, **opts).labels
        k_out = k
    else:
        labels, k = _adaptive_labels(x, max_distortion, min_tokens, max_tokens, **opts)
        k_out = None
    table, key_map, counts, distortion = cudagraphs.run(graphs, _table, x, labels, k=k, k_out=k_out or k)
    if k_out is None:
        table = table[:, : int(counts.max())]
    return TokenHashTable(table, key_map.view(b, t, h, w), counts, distortion, validate=False)


def _table(x, labels, *, k, k_out):
    """Table, key map and counts (see :func:`_compact`) and distortion ``[B]`` from k-means ``labels``."""
    means, counts, distortion = _clusters(x, labels, k)
    return (*_compact(means, counts, labels, k_out), distortion)


def _adaptive_labels(x, max_distortion, min_tokens, max_tokens, *, metric, max_iters, tol, seed, backend):
    """Binary search per video for the smallest K meeting ``max_distortion``; labels ``[B, N]`` and K_max.

    All videos still searching are clustered together at each step, on features prepared once; the
    k-means++ seeds for ``max_tokens`` are computed once and their prefixes serve every smaller K.
    """
    check_positive_int(min_tokens, "min_tokens")
    check_positive_int(max_tokens, "max_tokens")
    if min_tokens > max_tokens:
        raise ValueError(f"min_tokens ({min_tokens}) must be <= max_tokens ({max_tokens})")
    b, n, _ = x.shape
    dev = x.device
    feats = prepare(x, metric, backend=backend)
    seeds = kmeans_plusplus(feats, max_tokens, seed=seed)
    lo = torch.full((b,), min_tokens, device=dev)
    hi = torch.full((b,), max_tokens, device=dev)
    labels = torch.zeros(b, n, dtype=torch.long, device=dev)
    found = torch.zeros(b, dtype=torch.bool, device=dev)  # labels hold a clustering with K == hi
    while True:
        searching = lo < hi
        todo = (searching | ~found).nonzero().squeeze(1)
        if todo.numel() == 0:
            return labels, max_tokens
        k = torch.where(searching, (lo + hi) // 2, hi)[todo]
        res = lloyd(feats.select(todo), seeds[todo, : int(k.max())], k,
                    metric=metric, max_iters=max_iters, tol=tol)
        ok = _clusters(x[todo], res.labels, res.centroids.shape[1])[2] <= max_distortion
        ok |= ~searching[todo]  # K == hi was never tried and no smaller K is left: take it
        labels[todo[ok]] = res.labels[ok]
        found[todo[ok]] = True
        hi[todo[ok]] = k[ok]
        lo[todo[~ok]] = k[~ok] + 1
