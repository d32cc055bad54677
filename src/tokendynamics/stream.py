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

Each later frame's update (Lloyd steps, the merge-and-spawn tries, the running sums) is one pure tensor
function without host syncs; on CUDA it is replayed as one CUDA graph per stream (kept with the stream).
A merge's relabelling of the earlier frames is done on the device too. So ``push`` checks a frame's shape
and dtype at once and its values on the device, without waiting for it: a frame that holds NaN or
infinity makes the next ``table()`` fail, naming the frame.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ._checks import check_choice, check_length_mode, check_positive_int, video_tokens
from .cluster import cudagraphs
from .cluster.backend import Backend
from .cluster.kmeans import METRICS, cluster_sums, kmeans
from .hashing import TokenHashTable, _compact, hash_video


class _State(NamedTuple):
    """What a stream carries from frame to frame (``K`` rows of width ``D``), all on its device."""

    sums: torch.Tensor  # [K, D] float64: the rows' raw sums
    space: torch.Tensor  # [K, D] float64: their sums in the clustering space
    counts: torch.Tensor  # [K] float64: cells per row
    error: torch.Tensor  # [] float64: running squared error
    squares: torch.Tensor  # [] float64: sum of |x|^2
    total: torch.Tensor  # [D] float64: sum of x
    seen: torch.Tensor  # [] int64: frames recorded
    bad: torch.Tensor  # [] int64: the first frame holding a non-finite value, -1 if none


class HashStream:
    """A token hash table of one video, built frame by frame: fixed length (``num_tokens`` rows) or
    adaptive (``max_distortion`` with ``min_tokens``/``max_tokens``, as in ``hash_video``); ``dim``: the
    tokens' width; ``metric``, ``seed`` as in ``hash_video``; ``steps``: Lloyd steps per later frame;
    ``spawns``: new rows a later frame may start at the most rows (each by merging the two closest rows,
    see ``_respawn``); ``backend``: CUDA graphs (and the first frame's Triton k-means) or not (default
    :meth:`~tokendynamics.cluster.backend.Backend.choose` for ``device``)."""

    def __init__(self, num_tokens: int | None, dim: int, *, max_distortion: float | None = None,
                 min_tokens: int = 1, max_tokens: int = 64, metric: str = "cosine", seed: int = 0, steps: int = 3,
                 spawns: int = 2, device: str | torch.device = "cpu", backend: Backend | None = None):
        check_length_mode(num_tokens, max_distortion)
        self.num_tokens, self.dim = num_tokens, check_positive_int(dim, "dim")
        self.max_distortion, self.min_tokens = max_distortion, check_positive_int(min_tokens, "min_tokens")
        self.max_tokens = check_positive_int(max_tokens, "max_tokens")
        self.metric, self.seed = check_choice(metric, "metric", METRICS), seed
        self.steps, self.device = check_positive_int(steps, "steps"), torch.device(device)
        if not isinstance(spawns, int) or spawns < 0:
            raise ValueError(f"spawns must be an int >= 0, got {spawns!r}")
        self.spawns = spawns
        self._backend = Backend.choose(self.device) if backend is None else backend
        self._state: _State | None = None
        self._keys = torch.empty(0, dtype=torch.long, device=self.device)  # [capacity, H, W]: the key map so far
        self._frames = 0

    @property
    def frames(self) -> int:
        """Frames pushed so far."""
        return self._frames

    def push(self, frames: torch.Tensor) -> None:
        """Add one frame ``[H, W, D]`` or several ``[t, H, W, D]`` (floating tokens) to the table."""
        if isinstance(frames, torch.Tensor) and frames.dim() == 3:
            frames = frames[None]
        if isinstance(frames, torch.Tensor) and (frames.dim() != 4 or frames.shape[-1] != self.dim):
            raise ValueError(f"frames must have shape [H, W, {self.dim}] or [t, H, W, {self.dim}], "
                             f"got {tuple(frames.shape)}")
        frames = video_tokens(frames, "frames")[0]  # floating, not empty; values: on the device (see table)
        if self._frames and frames.shape[1:3] != self._keys.shape[1:]:
            raise ValueError(f"frames must keep the stream's grid {tuple(self._keys.shape[1:])}, "
                             f"got {tuple(frames.shape[1:3])}")
        for frame in frames.to(self.device):
            self._add(frame)

    def _add(self, frame: torch.Tensor) -> None:
        """One frame ``[H, W, D]``: cluster it (the first) or refine the rows with it, then record it."""
        if self._state is None:
            x = frame.reshape(-1, self.dim).float()
            labels, k = self._first(frame, _point(x, self.metric))
            zeros = torch.zeros(k, self.dim, dtype=torch.float64, device=self.device)
            empty = _State(zeros, zeros.clone(), zeros[:, 0].clone(), *(torch.zeros((), dtype=torch.float64,
                           device=self.device) for _ in range(2)), torch.zeros(self.dim, dtype=torch.float64,
                           device=self.device), torch.zeros((), dtype=torch.long, device=self.device),
                           torch.full((), -1, dtype=torch.long, device=self.device))
            self._state = _accumulate(x, _point(x, self.metric), labels, empty)
            self._keys = torch.empty(4, *frame.shape[:2], dtype=torch.long, device=self.device)
            self._record(labels, torch.zeros(0, 3, dtype=torch.long, device=self.device))
            return
        if self.max_distortion is not None:
            self._grow_rows(frame.reshape(-1, self.dim).float())
        out = cudagraphs.run(self._backend.graphs, _update, frame, *self._state,
                             torch.empty(frame.shape[0] * frame.shape[1], dtype=torch.long, device=self.device),
                             torch.empty(self.spawns, 3, dtype=torch.long, device=self.device), carry=True,
                             owner=self, metric=self.metric, steps=self.steps, spawns=self.spawns)
        self._state = _State(*out[:len(_State._fields)])
        self._record(*out[len(_State._fields):])

    def _record(self, labels: torch.Tensor, merges: torch.Tensor) -> None:
        """The earlier frames relabelled by ``merges`` ``[M, 3]`` (done, into, out of), then the frame's
        ``labels`` ``[N]`` appended to the key map; all on the device."""
        earlier = self._keys[:self._frames]
        for done, into, out in merges:
            earlier.masked_fill_((earlier == out) & done.bool(), into)
        if self._frames == len(self._keys):  # room for twice the frames
            self._keys = torch.cat([self._keys, torch.empty_like(self._keys)])
        self._keys[self._frames].copy_(labels.view(self._keys.shape[1:]))
        self._frames += 1

    def _first(self, frame: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The first frame's labels ``[N]`` and row count: k-means at K, or ``hash_video``'s adaptive K."""
        if self.num_tokens is not None:
            k = min(self.num_tokens, len(z))
            return kmeans(z[None], k, metric=self.metric, seed=self.seed, backend=self._backend).labels[0], k
        h = hash_video(frame[None].float(), max_distortion=self.max_distortion, min_tokens=self.min_tokens,
                       max_tokens=self.max_tokens, metric=self.metric, seed=self.seed, backend=self._backend)
        return h.key_map.reshape(-1), int(h.num_tokens[0])

    def _grow_rows(self, x: torch.Tensor) -> None:
        """Adaptive length: while the rows fit a later frame ``x`` ``[N, D]`` worse than ``max_distortion``
        (and ``max_tokens`` allows), a new row at its worst-fitted point (these checks wait for the device)."""
        z = _point(x, self.metric)
        while len(self._state.counts) < self.max_tokens:
            labels = _refine(z, self._state, self.metric, self.steps)
            if self._frame_distortion(x, labels) <= self.max_distortion:
                return
            st = self._state
            worst = int(((z - _centres(st, self.metric)[labels]) ** 2).sum(-1).argmax())
            space = F.pad(st.space, (0, 0, 0, 1))
            space[-1] = z[worst].double()
            self._state = st._replace(sums=F.pad(st.sums, (0, 0, 0, 1)), space=space, counts=F.pad(st.counts, (0, 1)))

    def _frame_distortion(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        """A later frame's squared error ``x [N, D]`` against the rows' means with it joined by ``labels``,
        over its share of the variance of the video so far (the frame included)."""
        st = self._state
        raw, counts = _grouped(x, labels, len(st.counts))
        means = (st.sums + raw) / (st.counts + counts).clamp_min(1)[:, None]
        error = float(((x.double() - means[labels]) ** 2).sum())
        cells = (self._frames + 1) * len(x)  # every frame has the stream's grid
        variance = _variance(st.squares + (x.double() ** 2).sum(), st.total + x.double().sum(0), cells)
        return error / (variance * len(x) / cells) if variance > 0 else 0.0

    def table(self) -> TokenHashTable:
        """The video so far as a ``TokenHashTable`` (batch of one), compacted as ``hash_video`` compacts its
        own (rows in order of first appearance in the key map, rows no cell holds moved to the padding),
        with the running distortion."""
        if self._state is None:
            raise ValueError("the stream holds no frames yet: push some first")
        st = self._state
        bad = int(st.bad)
        if bad >= 0:
            raise ValueError(f"frame {bad} pushed to the stream holds NaN or infinity (tokens must be finite); "
                             f"the table is spoiled from there: start a new stream")
        keys = self._keys[:self._frames]  # [T, H, W]
        means = (st.sums / st.counts.clamp_min(1)[:, None]).float()
        k = len(st.counts)
        table, key_map, used = _compact(means[None], st.counts[None], keys.reshape(1, -1), k)
        variance = _variance(st.squares, st.total, keys.numel())
        distortion = torch.tensor([float(st.error) / variance if variance > 0 else 0.0], device=keys.device)
        return TokenHashTable(table, key_map.view(1, *keys.shape), used, distortion)


def _point(x: torch.Tensor, metric: str) -> torch.Tensor:
    """Tokens ``[N, D]`` in the clustering space (normalised for cosine)."""
    return F.normalize(x, dim=-1) if metric == "cosine" else x


def _centres(st: _State, metric: str) -> torch.Tensor:
    """The rows' centres ``[K, D]`` float32 in the clustering space."""
    return _point((st.space / st.counts.clamp_min(1)[:, None]).float(), metric)


def _grouped(points: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row float64 sums ``[k, D]`` and counts ``[k]`` of ``points`` ``[N, D]`` by ``labels``."""
    sums, counts = cluster_sums(points[None], labels[None], k, dtype=torch.float64)
    return sums[0], counts[0].double()


def _refine(z: torch.Tensor, st: _State, metric: str, steps: int) -> torch.Tensor:
    """Labels ``[N]`` of a later frame's points ``z``: Lloyd steps from the rows, each weighted by the
    cells it holds."""
    moved = st
    for _ in range(steps):
        centres = _centres(moved, metric)
        labels = (z @ centres.T).argmax(-1) if metric == "cosine" else torch.cdist(z, centres).argmin(-1)
        sums, members = _grouped(z, labels, len(st.counts))
        moved = st._replace(space=st.space + sums, counts=st.counts + members)
    return labels


def _respawn(z: torch.Tensor, labels: torch.Tensor, st: _State, metric: str) -> tuple[_State, torch.Tensor]:
    """Where a new row would cut this frame's error by more than merging the two closest rows costs (Ward's
    increase of the squared error), merge them and start a row at the frame's worst-fitted point. Without
    host syncs: the state, merged or not, and ``(done, into, out of)`` ``[3]`` int64."""
    error = ((z - _centres(st, metric)[labels]) ** 2).sum(-1)  # [N]
    worst = error.argmax().view(1)
    point = z.index_select(0, worst)  # [1, D]
    gain = (error - ((z - point) ** 2).sum(-1)).clamp_min(0).sum()  # the points a new row would take, and by how much
    n = st.counts.float()
    means = (st.space / st.counts.clamp_min(1)[:, None]).float()
    ward = (n[:, None] * n[None] / (n[:, None] + n[None]).clamp_min(1)) * torch.cdist(means, means) ** 2
    ward = ward.fill_diagonal_(float("inf")).masked_fill((n == 0)[:, None] | (n == 0)[None], float("inf"))
    cost, pair = ward.flatten().min(0)
    done, k = gain > cost, len(n)
    into, out = pair // k, pair % k
    rows = torch.arange(k, device=z.device)
    to, off = ((rows == into) & done)[:, None], ((rows == out) & done)[:, None]

    def merged(t):  # [K, D]: row ``out`` added into row ``into`` and emptied
        return torch.where(off, 0.0, t + to * t.index_select(0, out.view(1)))
    counts = merged(st.counts[:, None])[:, 0]
    space = torch.where(off, point.double(), merged(st.space))  # the new row's centre until cells join it
    merge = torch.stack([done.long(), into, out])
    return st._replace(sums=merged(st.sums), space=space, counts=counts), merge


def _accumulate(x: torch.Tensor, z: torch.Tensor, labels: torch.Tensor, st: _State) -> _State:
    """The state with a frame's tokens ``x`` (``z`` in the clustering space) ``[N, D]`` joined to the rows
    ``labels`` ``[N]``: sums, counts, the running error and sums of squares; a non-finite frame noted."""
    k = len(st.counts)
    raw, counts = _grouped(x, labels, k)
    sums, counts = st.sums + raw, st.counts + counts
    xd = x.double()
    error = ((xd - (sums / counts.clamp_min(1)[:, None])[labels]) ** 2).sum()
    bad = torch.where((st.bad < 0) & ~torch.isfinite(x).all(), st.seen, st.bad)
    return _State(sums, st.space + _grouped(z, labels, k)[0], counts, st.error + error,
                  st.squares + (xd ** 2).sum(), st.total + xd.sum(0), st.seen + 1, bad)


def _update(frame, *buffers, metric: str, steps: int, spawns: int, owner=None):
    """A later frame ``[H, W, D]`` joined to the stream: Lloyd steps, ``spawns`` merge-and-spawn tries
    (each followed by Lloyd steps again; a try that changes nothing leaves the labels as they were), then
    the running sums. ``buffers``: the :class:`_State`, then the labels ``[N]`` and merges ``[spawns, 3]``
    it returns anew (so that a CUDA graph carries them). No host syncs; ``owner`` keys the graph only."""
    st = _State(*buffers[:len(_State._fields)])
    x = frame.reshape(-1, frame.shape[-1]).float()
    z = _point(x, metric)
    labels, merges = _refine(z, st, metric, steps), []
    for _ in range(spawns):
        st, merge = _respawn(z, labels, st, metric)
        merges.append(merge)
        labels = _refine(z, st, metric, steps)
    merges = torch.stack(merges) if merges else buffers[-1]
    return (*_accumulate(x, z, labels, st), labels, merges)


def _variance(squares, total: torch.Tensor, cells: int) -> float:
    """The summed squared distance of ``cells`` tokens from their mean, from ``sum |x|^2`` and ``sum x``."""
    return float(squares) - float((total ** 2).sum()) / cells
