"""``HashStream``: a token hash table that grows as frames arrive, for live video.

    stream = td.HashStream(num_tokens=8, dim=D)
    stream.push(frame_tokens)          # [H, W, D] or [t, H, W, D], as frames come
    h = stream.table()                 # a TokenHashTable of the video so far, at any moment

The first frame is clustered into K rows by :func:`~tokendynamics.cluster.kmeans.kmeans` (as ``hash_video``
would cluster it); every later frame refines them: a few Lloyd steps over that frame alone, starting from
the rows, each row weighted by the cells it already holds (sequential k-means), then the frame's cells join
the key map with the labels of the last step. Where a later frame shows something the rows fit badly (a new
object, a changed background), the two closest rows merge (relabelled in the key map so far) and a new row
starts there, if that lowers the squared error by more than the merge raises it. Earlier frames keep the labels they got.
Adaptive length (``num_tokens=None, max_distortion=f``): the first frame gets the rows ``hash_video``'s
adaptive search gives it; a later frame whose cells the rows fit worse than ``f`` (its squared error
against its share of the video's variance so far) gets new rows at its worst-fitted cells, up to
``max_tokens``, before any merge. Memory: the rows'
sums and counts (K x D each), the key map's integers and four running sums for the distortion, never the
video's tokens. Deterministic for a seed. The distortion the table reports is measured as frames arrive
(each cell against its row's mean at that moment); ``table().distortion(tokens)`` gives the exact one where
the tokens are at hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_choice, check_length_mode, check_positive_int, check_video_tokens
from .cluster.kmeans import METRICS, cluster_sums, kmeans
from .hashing import TokenHashTable, _compact, hash_video


class HashStream:
    """A token hash table of one video, built frame by frame: fixed length (``num_tokens`` rows) or
    adaptive (``max_distortion`` with ``min_tokens``/``max_tokens``, as in ``hash_video``); ``dim``: the
    tokens' width; ``metric``, ``seed`` as in ``hash_video``; ``steps``: Lloyd steps per later frame;
    ``spawns``: new rows a later frame may start at the most rows (each by merging the two closest rows,
    see ``_respawn``)."""

    def __init__(self, num_tokens: int | None, dim: int, *, max_distortion: float | None = None,
                 min_tokens: int = 1, max_tokens: int = 64, metric: str = "cosine", seed: int = 0, steps: int = 3,
                 spawns: int = 2, device: str | torch.device = "cpu"):
        check_length_mode(num_tokens, max_distortion)
        self.num_tokens, self.dim = num_tokens, check_positive_int(dim, "dim")
        self.max_distortion, self.min_tokens = max_distortion, check_positive_int(min_tokens, "min_tokens")
        self.max_tokens = check_positive_int(max_tokens, "max_tokens")
        self.metric, self.seed = check_choice(metric, "metric", METRICS), seed
        self.steps, self.device = check_positive_int(steps, "steps"), torch.device(device)
        if not isinstance(spawns, int) or spawns < 0:
            raise ValueError(f"spawns must be an int >= 0, got {spawns!r}")
        self.spawns = spawns
        self._keys: list[torch.Tensor] = []  # [H, W] int64 per frame
        self._sums = self._space = self._counts = None  # [K, D] float64 raw sums, [K, D] clustering sums, [K]
        self._error = self._squares = 0.0  # running squared error, sum of |x|^2
        self._total = torch.zeros(dim, dtype=torch.float64, device=self.device)  # sum of x

    @property
    def frames(self) -> int:
        """Frames pushed so far."""
        return len(self._keys)

    def push(self, frames: torch.Tensor) -> None:
        """Add one frame ``[H, W, D]`` or several ``[t, H, W, D]`` (floating tokens) to the table."""
        if isinstance(frames, torch.Tensor) and frames.dim() == 3:
            frames = frames[None]
        if isinstance(frames, torch.Tensor) and (frames.dim() != 4 or frames.shape[-1] != self.dim):
            raise ValueError(f"frames must have shape [H, W, {self.dim}] or [t, H, W, {self.dim}], "
                             f"got {tuple(frames.shape)}")
        frames = check_video_tokens(frames, "frames")[0]  # floating, not empty, finite
        if self._keys and frames.shape[1:3] != self._keys[0].shape:
            raise ValueError(f"frames must keep the stream's grid {tuple(self._keys[0].shape)}, "
                             f"got {tuple(frames.shape[1:3])}")
        for frame in frames.to(self.device):
            self._add(frame)

    def _point(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.metric == "cosine" else x

    def _centres(self, space: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows' means ``[K, D]`` in the clustering space, and their centres (normalised for cosine)."""
        means = (space / counts.clamp_min(1)[:, None]).float()
        return means, self._point(means)

    @staticmethod
    def _grouped(points: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row float64 sums ``[k, D]`` and counts ``[k]`` of ``points`` ``[N, D]`` by ``labels``."""
        sums, counts = cluster_sums(points[None], labels[None], k, dtype=torch.float64)
        return sums[0], counts[0].double()

    def _add(self, frame: torch.Tensor) -> None:
        """One frame ``[H, W, D]``: cluster it (the first) or refine the rows with it, then record it."""
        x = frame.reshape(-1, self.dim).float()
        z = self._point(x)
        if self._sums is None:
            labels, k = self._first(frame, z)
            self._sums = torch.zeros(k, self.dim, dtype=torch.float64, device=self.device)
            self._space = torch.zeros(k, self.dim, dtype=torch.float64, device=self.device)
            self._counts = torch.zeros(k, dtype=torch.float64, device=self.device)
        else:
            labels = self._refine(z)
            while self.max_distortion is not None and len(self._counts) < self.max_tokens \
                    and self._frame_distortion(x, labels) > self.max_distortion:
                self._grow(z, labels)  # adaptive: a row for what the rows fit worst
                labels = self._refine(z)
            for _ in range(self.spawns):  # rows for what the first frames did not show
                if not self._respawn(z, labels):
                    break
                labels = self._refine(z)
        k = len(self._counts)
        raw, counts = self._grouped(x, labels, k)
        self._sums += raw
        self._space += self._grouped(z, labels, k)[0]
        self._counts += counts
        means = self._sums / self._counts.clamp_min(1)[:, None]
        self._error += float(((x.double() - means[labels]) ** 2).sum())
        self._squares += float((x.double() ** 2).sum())
        self._total += x.double().sum(0)
        self._keys.append(labels.view(frame.shape[0], frame.shape[1]))

    def _first(self, frame: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The first frame's labels ``[N]`` and row count: k-means at K, or ``hash_video``'s adaptive K."""
        if self.num_tokens is not None:
            k = min(self.num_tokens, len(z))
            return kmeans(z[None], k, metric=self.metric, seed=self.seed).labels[0], k
        h = hash_video(frame[None].float(), max_distortion=self.max_distortion, min_tokens=self.min_tokens,
                       max_tokens=self.max_tokens, metric=self.metric, seed=self.seed)
        return h.key_map.reshape(-1), int(h.num_tokens[0])

    def _frame_distortion(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        """A later frame's squared error ``x [N, D]`` against the rows' means with it joined by ``labels``,
        over its share of the variance of the video so far (the frame included)."""
        raw, counts = self._grouped(x, labels, len(self._counts))
        means = (self._sums + raw) / (self._counts + counts).clamp_min(1)[:, None]
        error = float(((x.double() - means[labels]) ** 2).sum())
        cells = (len(self._keys) + 1) * len(x)  # every frame has the stream's grid
        variance = _variance(self._squares + float((x.double() ** 2).sum()), self._total + x.double().sum(0), cells)
        return error / (variance * len(x) / cells) if variance > 0 else 0.0

    def _grow(self, z: torch.Tensor, labels: torch.Tensor) -> None:
        """A new row, centred on the frame's worst-fitted point (adaptive length)."""
        centres = self._centres(self._space, self._counts)[1]
        worst = int(((z - centres[labels]) ** 2).sum(-1).argmax())
        self._sums, self._space = (F.pad(t, (0, 0, 0, 1)) for t in (self._sums, self._space))
        self._counts = F.pad(self._counts, (0, 1))
        self._space[-1] = z[worst].double()

    def _respawn(self, z: torch.Tensor, labels: torch.Tensor) -> bool:
        """Where a new row would cut this frame's error by more than merging the two closest rows costs
        (Ward's increase of the squared error), merge them and start a row at the frame's worst-fitted point.
        Returns whether it did."""
        counts = self._counts
        means, centres = self._centres(self._space, counts)
        error = ((z - centres[labels]) ** 2).sum(-1)  # [N]
        worst = int(error.argmax())
        closer = ((z - z[worst]) ** 2).sum(-1)
        gain = float((error - closer).clamp_min(0).sum())  # the points the new row would take, and by how much
        n = counts.float()
        ward = (n[:, None] * n[None] / (n[:, None] + n[None]).clamp_min(1)) * torch.cdist(means, means) ** 2
        ward.fill_diagonal_(float("inf"))
        ward[(n == 0)[:, None] | (n == 0)[None]] = float("inf")
        cost, pair = ward.min(), int(ward.argmin())
        if not gain > float(cost):
            return False
        i, j = divmod(pair, len(counts))
        for total in (self._sums, self._space):
            total[i] += total[j]
            total[j] = 0
        counts[i] += counts[j]
        counts[j] = 0
        self._space[j] = z[worst].double()  # the new row's centre until cells join it
        for key in self._keys:
            key[key == j] = i
        return True

    def _refine(self, z: torch.Tensor) -> torch.Tensor:
        """Labels ``[N]`` of a later frame's points ``z``: Lloyd steps from the rows, each weighted by the
        cells it holds."""
        space, counts = self._space, self._counts
        for _ in range(self.steps):
            centres = self._centres(space, counts)[1]
            if self.metric == "cosine":
                labels = (z @ centres.T).argmax(-1)
            else:
                labels = torch.cdist(z, centres).argmin(-1)
            sums, members = self._grouped(z, labels, len(counts))
            space, counts = self._space + sums, self._counts + members
        return labels

    def table(self) -> TokenHashTable:
        """The video so far as a ``TokenHashTable`` (batch of one), compacted as ``hash_video`` compacts its
        own (rows in order of first appearance in the key map, rows no cell holds moved to the padding),
        with the running distortion."""
        if not self._keys:
            raise ValueError("the stream holds no frames yet: push some first")
        keys = torch.stack(self._keys)  # [T, H, W]
        means = (self._sums / self._counts.clamp_min(1)[:, None]).float()
        k = len(self._counts)
        table, key_map, used = _compact(means[None], self._counts[None], keys.reshape(1, -1), k)
        variance = _variance(self._squares, self._total, keys.numel())
        distortion = torch.tensor([self._error / variance if variance > 0 else 0.0], device=keys.device)
        return TokenHashTable(table, key_map.view(1, *keys.shape), used, distortion)


def _variance(squares: float, total: torch.Tensor, cells: int) -> float:
    """The summed squared distance of ``cells`` tokens from their mean, from ``sum |x|^2`` and ``sum x``."""
    return squares - float((total ** 2).sum()) / cells
