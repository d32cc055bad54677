"""``HashStream``: a token hash table that grows as frames arrive, for live video.

    stream = td.HashStream(num_tokens=8, dim=D)
    stream.push(frame_tokens)          # [H, W, D] or [t, H, W, D], as frames come
    h = stream.table()                 # a TokenHashTable of the video so far, at any moment

    streams = td.HashStream(num_tokens=8, dim=D, batch=4)   # four live videos, updated together
    streams.push(frames)               # [4, H, W, D] or [4, t, H, W, D]: each stream's next frame(s)
    h = streams.table()                # a batch of 4 tables, each its stream's alone

A fixed-length stream keeps more rows than it gives, a sketch of ``sketch`` rows (default 2 K), and
``table()`` groups them into K by the metric's weighted k-means (spherical for cosine: a row weighs its
cells), each cell taking its row's group. Streamed rows cannot be split once earlier frames' cells are in
them, so finer rows while streaming and one grouping when a question comes fit the video better than K
rows kept all along (on the built-in model's tokens of 100 MotionQA videos, 1.15x the offline distortion
on average against 1.58x).

The first frame is clustered into the stream's rows by :func:`~tokendynamics.cluster.kmeans.kmeans` (as
``hash_video`` would cluster it); every later frame refines them: a few Lloyd steps over that frame alone,
starting from the rows, each row weighted by the cells it already holds (sequential k-means), then the
frame's cells join the key map with the labels of the last step. Where a later frame shows something the
rows fit badly (a new object, a changed background), the two closest rows merge (relabelled in the key map
so far) and a new row starts there, if that lowers the squared error by more than the merge raises it.
Earlier frames keep the labels they got. Adaptive length (``num_tokens=None, max_distortion=f``; no sketch,
its rows are the table's): the first frame gets the rows ``hash_video``'s adaptive search gives it; a later
frame whose cells the rows fit worse than ``f`` (its squared error against its share of the video's variance
so far) gets new rows at its worst-fitted cells, up to ``max_tokens``, before any merge. Memory: the rows'
sums and counts (sketch x D each), the key map's integers and four running sums for the distortion, never
the video's tokens. Deterministic for a seed. The distortion the table reports is measured as frames arrive
(each cell against its row's mean at that moment); ``table().distortion(tokens)`` gives the exact one where
the tokens are at hand.

Each later frame's update (Lloyd steps, the merge-and-spawn tries, the running sums) is one pure tensor
function without host syncs; on CUDA it is replayed as one CUDA graph per stream (kept with the stream).
A merge's relabelling of the earlier frames is done on the device too. So ``push`` checks a frame's shape
and dtype at once and its values on the device, without waiting for it: a frame that holds NaN or
infinity makes the next ``table()`` fail, naming the frame. With ``Backend(..., compiled=True)`` the update
is fused by ``torch.compile`` first (its Triton kernels captured in the graph instead of some 200 small ones).

Between questions the table can be refined (``HashStream(..., window=W)``, then ``stream.refine()``, for
example while waiting for the next frame): the last W frames' tokens are kept (memory grows by W frames,
no more) and their cells move to their nearest row as the rows now are, the rows' sums with them, a few
passes; the running distortion takes those frames' exact error. Several streams of one grid (``batch=B``,
fixed length) are held as one state with a leading stream dimension and updated by the same function in
one step (one graph for the batch); each stream's table equals the one it would have alone (on CUDA, up
to the rounding of batched against single matmuls, which can send a near-tied cell the other way).
"""

from __future__ import annotations

import collections
import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ._checks import check_choice, check_length_mode, check_positive_int, video_tokens
from .cluster import cudagraphs
from .cluster.backend import Backend
from .cluster.kmeans import METRICS, cluster_sums, kmeans
from .hashing import TokenHashTable, _compact, hash_video


class _State(NamedTuple):
    """What ``B`` streams carry from frame to frame (``K`` rows of width ``D`` each), on their device."""

    sums: torch.Tensor  # [B, K, D] float64: the rows' raw sums
    space: torch.Tensor  # [B, K, D] float64: their sums in the clustering space
    counts: torch.Tensor  # [B, K] float64: cells per row
    error: torch.Tensor  # [B] float64: running squared error
    squares: torch.Tensor  # [B] float64: sum of |x|^2
    total: torch.Tensor  # [B, D] float64: sum of x
    seen: torch.Tensor  # [] int64: frames recorded
    bad: torch.Tensor  # [B] int64: the first frame holding a non-finite value, -1 if none


class HashStream:
    """A token hash table of a video, built frame by frame: fixed length (``num_tokens`` rows) or
    adaptive (``max_distortion`` with ``min_tokens``/``max_tokens``, as in ``hash_video``); ``dim``: the
    tokens' width; ``metric``, ``seed`` as in ``hash_video``; ``steps``: Lloyd steps per later frame;
    ``spawns``: new rows a later frame may start at the most rows (each by merging the two closest rows,
    see ``_respawn``); ``batch``: streams held and updated together (fixed length; their frames come with a
    leading stream dimension); ``window``: the last frames whose tokens are kept for :meth:`refine` (0: none);
    ``sketch``: rows a fixed-length stream keeps, grouped into ``num_tokens`` by :meth:`table` (default
    ``2 * num_tokens``; ``num_tokens`` keeps the table's rows all along);
    ``backend``: CUDA graphs (and the first frame's Triton k-means) or not, the update compiled or not
    (default :meth:`~tokendynamics.cluster.backend.Backend.choose` for ``device``: graphs, not compiled;
    ``Backend.choose("cuda", compiled=True)`` fuses the update, 2.4x faster a frame on an H200 once
    compiled)."""

    def __init__(self, num_tokens: int | None, dim: int, *, max_distortion: float | None = None,
                 min_tokens: int = 1, max_tokens: int = 64, metric: str = "cosine", seed: int = 0, steps: int = 3,
                 spawns: int = 2, batch: int = 1, window: int = 0, sketch: int | None = None,
                 device: str | torch.device = "cpu", backend: Backend | None = None):
        check_length_mode(num_tokens, max_distortion)
        self.sketch = _sketch_rows(num_tokens, sketch)
        self.num_tokens, self.dim = num_tokens, check_positive_int(dim, "dim")
        self.max_distortion, self.min_tokens = max_distortion, check_positive_int(min_tokens, "min_tokens")
        self.max_tokens = check_positive_int(max_tokens, "max_tokens")
        self.metric, self.seed = check_choice(metric, "metric", METRICS), seed
        self.steps, self.device = check_positive_int(steps, "steps"), torch.device(device)
        if not isinstance(spawns, int) or spawns < 0:
            raise ValueError(f"spawns must be an int >= 0, got {spawns!r}")
        self.spawns, self.batch = spawns, check_positive_int(batch, "batch")
        if batch > 1 and max_distortion is not None:
            raise ValueError("batch > 1 needs a fixed length (num_tokens): adaptive streams grow apart")
        if not isinstance(window, int) or window < 0:
            raise ValueError(f"window must be an int >= 0, got {window!r}")
        self._window: collections.deque = collections.deque(maxlen=window)  # (tokens [B, N, D], error [B])
        self._backend = Backend.choose(self.device) if backend is None else backend
        self._state: _State | None = None
        self._keys = torch.empty(0, dtype=torch.long, device=self.device)  # [B, capacity, H, W]: the key maps
        self._frames = 0

    @property
    def frames(self) -> int:
        """Frames pushed so far (to each stream)."""
        return self._frames

    def push(self, frames: torch.Tensor) -> None:
        """Add one frame ``[H, W, D]`` or several ``[t, H, W, D]`` (floating tokens) to the table; with
        ``batch=B``, each stream's: ``[B, H, W, D]`` or ``[B, t, H, W, D]``."""
        lead = "" if self.batch == 1 else f"{self.batch}, "
        if isinstance(frames, torch.Tensor):
            given = tuple(frames.shape)
            if self.batch == 1:
                frames = frames[None]
            if frames.dim() == 4:
                frames = frames[:, None]
            if frames.dim() != 5 or frames.shape[0] != self.batch or frames.shape[-1] != self.dim:
                raise ValueError(f"frames must have shape [{lead}H, W, {self.dim}] or [{lead}t, H, W, {self.dim}], "
                                 f"got {given}")
        frames = video_tokens(frames, "frames")  # floating, not empty; values: on the device (see table)
        if self._frames and frames.shape[2:4] != self._keys.shape[2:]:
            raise ValueError(f"frames must keep the stream's grid {tuple(self._keys.shape[2:])}, "
                             f"got {tuple(frames.shape[2:4])}")
        for frame in frames.to(self.device).unbind(1):
            if not self._window.maxlen:
                self._add(frame)
                continue
            before = 0 if self._state is None else self._state.error.clone()  # the graph overwrites it
            self._add(frame)
            self._window.append((frame.flatten(1, 2).float().clone(), self._state.error - before))

    def refine(self, passes: int = 2) -> None:
        """Move the kept frames' cells (``window``) to their nearest row as the rows now are, the rows'
        sums with them, ``passes`` times; the running distortion takes those frames' exact error."""
        check_positive_int(passes, "passes")
        if not self._window.maxlen:
            raise ValueError("refine needs frames kept: make the stream with window=W (W > 0)")
        if not self._window:
            return
        x = torch.cat([tokens for tokens, _ in self._window], 1)  # [B, w * N, D]
        z, w, t = _point(x, self.metric), len(self._window), self._frames
        kept = self._keys[:, t - w:t]
        st = self._state
        for _ in range(passes):
            old = kept.reshape(self.batch, -1)
            new = _nearest(z, _centres(st, self.metric), self.metric)
            k = st.counts.shape[1]
            raw_old, space_old, n_old = _frame_sums(x, z, old, k)
            raw_new, space_new, n_new = _frame_sums(x, z, new, k)
            st = st._replace(sums=st.sums - raw_old + raw_new, counts=st.counts - n_old + n_new,
                             space=st.space - space_old + space_new)
            kept.copy_(new.view(kept.shape))
        means = st.sums / st.counts.clamp_min(1)[..., None]
        cells = kept.reshape(self.batch, -1)
        errors = ((x.double() - _take(means, cells)) ** 2).sum(-1).view(self.batch, w, -1).sum(-1)  # [B, w]
        st = st._replace(error=st.error - sum(e for _, e in self._window) + errors.sum(1))
        self._window = collections.deque(((tokens, errors[:, i]) for i, (tokens, _) in enumerate(self._window)),
                                         maxlen=self._window.maxlen)
        self._state = st

    def _add(self, frame: torch.Tensor) -> None:
        """Each stream's next frame ``[B, H, W, D]``: cluster it (the first) or refine the rows with it,
        then record it."""
        if self._state is None:
            x = frame.flatten(1, 2).float()
            z = _point(x, self.metric)
            labels, k = self._first(frame, z)
            b, d, f64 = self.batch, self.dim, dict(dtype=torch.float64, device=self.device)
            empty = _State(torch.zeros(b, k, d, **f64), torch.zeros(b, k, d, **f64), torch.zeros(b, k, **f64),
                           torch.zeros(b, **f64), torch.zeros(b, **f64), torch.zeros(b, d, **f64),
                           torch.zeros((), dtype=torch.long, device=self.device),
                           torch.full((b,), -1, dtype=torch.long, device=self.device))
            self._state = _accumulate(x, z, labels, empty)
            self._keys = torch.empty(b, 4, *frame.shape[1:3], dtype=torch.long, device=self.device)
            self._record(labels, torch.zeros(0, b, 3, dtype=torch.long, device=self.device))
            return
        if self.max_distortion is not None:
            self._grow_rows(frame.flatten(1, 2).float())
        cells = frame.shape[1] * frame.shape[2]
        update = _compiled_update() if self._backend.compiled else _update
        out = cudagraphs.run(self._backend.graphs, update, frame, *self._state,
                             torch.empty(self.batch, cells, dtype=torch.long, device=self.device),
                             torch.empty(self.spawns, self.batch, 3, dtype=torch.long, device=self.device),
                             carry=True, owner=self, metric=self.metric, steps=self.steps, spawns=self.spawns)
        self._state = _State(*out[:len(_State._fields)])
        self._record(*out[len(_State._fields):])

    def _record(self, labels: torch.Tensor, merges: torch.Tensor) -> None:
        """The earlier frames relabelled by ``merges`` ``[M, B, 3]`` (done, into, out of, per stream), then
        each stream's ``labels`` ``[B, N]`` appended to its key map; all on the device."""
        earlier = self._keys[:, :self._frames]
        for merge in merges:
            done, into, out = (m.view(-1, 1, 1, 1) for m in merge.unbind(-1))
            earlier.copy_(torch.where((earlier == out) & done.bool(), into, earlier))
        if self._frames == self._keys.shape[1]:  # room for twice the frames
            self._keys = torch.cat([self._keys, torch.empty_like(self._keys)], 1)
        self._keys[:, self._frames].copy_(labels.view(self.batch, *self._keys.shape[2:]))
        self._frames += 1

    def _first(self, frame: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The first frames' labels ``[B, N]`` and row count: k-means into the sketch's rows (fixed length),
        or ``hash_video``'s adaptive K."""
        if self.num_tokens is not None:
            k = min(self.sketch, z.shape[1])
            return kmeans(z, k, metric=self.metric, seed=self.seed, backend=self._backend).labels, k
        h = hash_video(frame[:, None].float(), max_distortion=self.max_distortion, min_tokens=self.min_tokens,
                       max_tokens=self.max_tokens, metric=self.metric, seed=self.seed, backend=self._backend)
        return h.key_map.flatten(1), int(h.num_tokens[0])

    def _grow_rows(self, x: torch.Tensor) -> None:
        """Adaptive length (one stream): while the rows fit a later frame ``x`` ``[1, N, D]`` worse than
        ``max_distortion`` (and ``max_tokens`` allows), a new row at its worst-fitted point (these checks
        wait for the device)."""
        z = _point(x, self.metric)
        while self._state.counts.shape[1] < self.max_tokens:
            labels = _refine(z, self._state, self.metric, self.steps)
            if self._frame_distortion(x, labels) <= self.max_distortion:
                return
            st = self._state
            worst = int(((z - _take(_centres(st, self.metric), labels)) ** 2).sum(-1).argmax())
            space = F.pad(st.space, (0, 0, 0, 1))
            space[0, -1] = z[0, worst].double()
            self._state = st._replace(sums=F.pad(st.sums, (0, 0, 0, 1)), space=space, counts=F.pad(st.counts, (0, 1)))

    def _frame_distortion(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        """A later frame's squared error ``x [1, N, D]`` against the rows' means with it joined by
        ``labels``, over its share of the variance of the video so far (the frame included)."""
        st = self._state
        raw, counts = _grouped(x, labels, st.counts.shape[1])
        means = (st.sums + raw) / (st.counts + counts).clamp_min(1)[..., None]
        xd = x.double()
        error = float(((xd - _take(means, labels)) ** 2).sum())
        n = x.shape[1]
        cells = (self._frames + 1) * n  # every frame has the stream's grid
        variance = _variance(st.squares[0] + (xd ** 2).sum(), st.total[0] + xd[0].sum(0), cells)
        return error / (variance * n / cells) if variance > 0 else 0.0

    def table(self) -> TokenHashTable:
        """The video so far as a ``TokenHashTable`` (a batch of one, or of ``batch`` streams), compacted as
        ``hash_video`` compacts its own (rows in order of first appearance in the key map, rows no cell
        holds moved to the padding), with the running distortion."""
        if self._state is None:
            raise ValueError("the stream holds no frames yet: push some first")
        st = self._state
        bad = st.bad.tolist()
        for b, frame in enumerate(bad):
            if frame >= 0:
                where = f"frame {frame}" + (f" of stream {b}" if self.batch > 1 else "")
                raise ValueError(f"{where} pushed to the stream holds NaN or infinity (tokens must be finite); "
                                 f"the table is spoiled from there: start a new stream")
        keys = self._keys[:, :self._frames]  # [B, T, H, W]
        sums, counts, error, labels = st.sums, st.counts, st.error, keys.flatten(1)
        if self.num_tokens is not None and counts.shape[1] > self.num_tokens:  # the sketch's rows grouped
            group = cudagraphs.run(self._backend.graphs, _group_rows, st.space, counts, k=self.num_tokens,
                                   metric=self.metric)  # [B, rows]
            sums, counts, joined = _grouped_rows(sums, counts, group, self.num_tokens)
            error, labels = error + joined, group.gather(1, labels)
        means = (sums / counts.clamp_min(1)[..., None]).float()
        table, key_map, used = _compact(means, counts, labels, counts.shape[1])
        cells = keys[0].numel()
        variance = [_variance(st.squares[b], st.total[b], cells) for b in range(self.batch)]
        distortion = torch.tensor([float(e) / v if v > 0 else 0.0 for e, v in zip(error.tolist(), variance)],
                                  device=keys.device)
        return TokenHashTable(table, key_map.view(keys.shape), used, distortion)


def _sketch_rows(num_tokens: int | None, sketch: int | None) -> int | None:
    """The rows a stream keeps: ``sketch`` (at least ``num_tokens``), by default twice ``num_tokens``;
    none for an adaptive stream, whose rows are its table's."""
    if num_tokens is None:
        if sketch is not None:
            raise ValueError("sketch needs a fixed length (num_tokens): an adaptive stream's rows are its table's")
        return None
    if sketch is None:
        return 2 * num_tokens
    if not isinstance(sketch, int) or isinstance(sketch, bool) or sketch < num_tokens:
        raise ValueError(f"sketch must be an int >= num_tokens ({num_tokens}), got {sketch!r}")
    return sketch


def _group_rows(space: torch.Tensor, counts: torch.Tensor, *, k: int, metric: str, iters: int = 20) -> torch.Tensor:
    """The group ``[B, R]`` of each of R rows, by the metric's k-means over the rows, each weighing its
    cells: ``space`` ``[B, R, D]`` (their sums in the clustering space), ``counts`` ``[B, R]``. Seeds: the
    heaviest row, then each time the row whose cells the seeds fit worst; then ``iters`` Lloyd steps (a
    group's centre is the mean of its rows' cells; spherical for cosine: its direction). Without host syncs
    (on CUDA, one graph replay)."""
    held = counts > 0
    space = space * held[..., None]  # a row without cells keeps a centre until one joins it: left out here
    points = _point(space / counts.clamp_min(1)[..., None], metric)  # [B, R, D]

    def misfit(centres):  # [B, R]: a row's cost against its nearest centre, its cells' count times the distance
        if metric == "cosine":
            return counts * (1 - (points @ centres.transpose(1, 2)).amax(-1))
        return counts * torch.cdist(points, centres).amin(-1) ** 2

    centres = _take(points, counts.argmax(1, keepdim=True))  # [B, 1, D]
    for _ in range(1, k):
        worst = misfit(centres).masked_fill(~held, -1).argmax(1, keepdim=True)
        centres = torch.cat([centres, _take(points, worst)], 1)
    for _ in range(iters):
        sums, cells = _group_totals(space, counts, _nearest(points, centres, metric), k)
        centres = torch.where(cells[..., None] > 0, _point(sums / cells.clamp_min(1)[..., None], metric), centres)
    return _nearest(points, centres, metric)


def _grouped_rows(sums: torch.Tensor, counts: torch.Tensor, group: torch.Tensor,
                  k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows' raw sums ``[B, R, D]`` and counts ``[B, R]`` added up by ``group`` ``[B, R]`` into ``k``: the
    groups' sums ``[B, k, D]`` and counts ``[B, k]``, and the squared error ``[B]`` that joining the rows
    adds (each row's cells measured against its group's mean instead of its own)."""
    total, n = _group_totals(sums, counts, group, k)
    own = ((sums ** 2).sum(-1) / counts.clamp_min(1)).sum(-1)
    return total, n, own - ((total ** 2).sum(-1) / n.clamp_min(1)).sum(-1)


def _group_totals(vectors: torch.Tensor, counts: torch.Tensor, group: torch.Tensor,
                  k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows' ``vectors`` ``[B, R, D]`` and cell ``counts`` ``[B, R]`` added up by ``group`` ``[B, R]``
    into ``k`` groups: ``[B, k, D]`` and the groups' cells ``[B, k]``."""
    return _grouped(vectors, group, k)[0], _grouped(counts[..., None], group, k)[0][..., 0]


def _point(x: torch.Tensor, metric: str) -> torch.Tensor:
    """Tokens ``[B, N, D]`` in the clustering space (normalised for cosine)."""
    return F.normalize(x, dim=-1) if metric == "cosine" else x


def _take(rows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``rows`` ``[B, K, D]`` at ``labels`` ``[B, N]`` -> ``[B, N, D]``."""
    return rows.gather(1, labels[..., None].expand(-1, -1, rows.shape[-1]))


def _centres(st: _State, metric: str) -> torch.Tensor:
    """The rows' centres ``[B, K, D]`` float32 in the clustering space."""
    return _point((st.space / st.counts.clamp_min(1)[..., None]).float(), metric)


def _grouped(points: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row float64 sums ``[B, k, D]`` and counts ``[B, k]`` of ``points`` ``[B, N, D]`` by ``labels``."""
    sums, counts = cluster_sums(points, labels, k, dtype=torch.float64)
    return sums, counts.double()


def _frame_sums(x: torch.Tensor, z: torch.Tensor, labels: torch.Tensor,
                k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A frame's per-row float64 sums of its tokens ``x`` and of their points ``z`` in the clustering space
    (``[B, N, D]`` each) by ``labels`` ``[B, N]``, ``[B, k, D]`` each, and the rows' counts ``[B, k]``; for
    l2 the points are the tokens, summed once."""
    raw, counts = _grouped(x, labels, k)
    return raw, raw if z is x else _grouped(z, labels, k)[0], counts


def _nearest(z: torch.Tensor, centres: torch.Tensor, metric: str) -> torch.Tensor:
    """Each point's nearest centre: labels ``[B, N]`` of ``z`` ``[B, N, D]`` among ``centres`` ``[B, K, D]``."""
    return (z @ centres.transpose(1, 2)).argmax(-1) if metric == "cosine" else torch.cdist(z, centres).argmin(-1)


def _refine(z: torch.Tensor, st: _State, metric: str, steps: int) -> torch.Tensor:
    """Labels ``[B, N]`` of each stream's later frame ``z``: Lloyd steps from the rows, each weighted by
    the cells it holds."""
    moved = st
    for _ in range(steps):
        labels = _nearest(z, _centres(moved, metric), metric)
        sums, members = _grouped(z, labels, st.counts.shape[1])
        moved = st._replace(space=st.space + sums, counts=st.counts + members)
    return labels


def _respawn(z: torch.Tensor, labels: torch.Tensor, st: _State, metric: str) -> tuple[_State, torch.Tensor]:
    """Per stream: where a new row would cut its frame's error by more than merging its two closest rows
    costs (Ward's increase of the squared error), merge them and start a row at the frame's worst-fitted
    point. Without host syncs: the state, merged or not, and ``(done, into, out of)`` ``[B, 3]`` int64."""
    error = ((z - _take(_centres(st, metric), labels)) ** 2).sum(-1)  # [B, N]
    worst = error.argmax(-1)  # [B]
    point = _take(z, worst[:, None])  # [B, 1, D]
    gain = (error - ((z - point) ** 2).sum(-1)).clamp_min(0).sum(-1)  # the points a new row would take
    n = st.counts.float()  # [B, K]
    means = (st.space / st.counts.clamp_min(1)[..., None]).float()
    k = n.shape[1]
    pair_n = n[:, :, None] * n[:, None] / (n[:, :, None] + n[:, None]).clamp_min(1)
    ward = pair_n * torch.cdist(means, means) ** 2
    never = torch.eye(k, dtype=torch.bool, device=z.device) | (n == 0)[:, :, None] | (n == 0)[:, None]
    cost, pair = ward.masked_fill(never, float("inf")).flatten(1).min(1)
    done = gain > cost  # [B]
    into, out = pair // k, pair % k
    rows = torch.arange(k, device=z.device)
    to, off = (rows == into[:, None]) & done[:, None], (rows == out[:, None]) & done[:, None]  # [B, K]

    def merged(t):  # [B, K, D]: row ``out`` added into row ``into`` and emptied
        return torch.where(off[..., None], 0.0, t + to[..., None] * _take(t, out[:, None]))
    counts = merged(st.counts[..., None])[..., 0]
    space = torch.where(off[..., None], point.double(), merged(st.space))  # the new row's centre until cells join it
    merge = torch.stack([done.long(), into, out], -1)
    return st._replace(sums=merged(st.sums), space=space, counts=counts), merge


def _accumulate(x: torch.Tensor, z: torch.Tensor, labels: torch.Tensor, st: _State) -> _State:
    """The state with each stream's frame ``x`` (``z`` in the clustering space) ``[B, N, D]`` joined to
    the rows ``labels`` ``[B, N]``: sums, counts, the running error and sums of squares; a non-finite frame
    noted."""
    raw, space, counts = _frame_sums(x, z, labels, st.counts.shape[1])
    sums, counts = st.sums + raw, st.counts + counts
    xd = x.double()
    error = ((xd - _take(sums / counts.clamp_min(1)[..., None], labels)) ** 2).sum((1, 2))
    bad = torch.where((st.bad < 0) & ~torch.isfinite(x).all(-1).all(-1), st.seen, st.bad)
    return _State(sums, st.space + space, counts, st.error + error,
                  st.squares + (xd ** 2).sum((1, 2)), st.total + xd.sum(1), st.seen + 1, bad)


def _update(frame, *buffers, metric: str, steps: int, spawns: int, owner=None):
    """Each stream's later frame ``[B, H, W, D]`` joined to it: Lloyd steps, ``spawns`` merge-and-spawn
    tries (each followed by Lloyd steps again; a try that changes nothing leaves the labels as they were),
    then the running sums. ``buffers``: the :class:`_State`, then the labels ``[B, N]`` and merges
    ``[spawns, B, 3]`` it returns anew (so that a CUDA graph carries them). No host syncs; ``owner`` keys
    the graph only."""
    st = _State(*buffers[:len(_State._fields)])
    x = frame.flatten(1, 2).float()
    z = _point(x, metric)
    labels, merges = _refine(z, st, metric, steps), []
    for _ in range(spawns):
        st, merge = _respawn(z, labels, st, metric)
        merges.append(merge)
        labels = _refine(z, st, metric, steps)
    merges = torch.stack(merges) if merges else buffers[-1]
    return (*_accumulate(x, z, labels, st), labels, merges)


@functools.cache
def _compiled_update():
    """:func:`_update` through ``torch.compile`` (one graph, static shapes), made on first use."""
    return torch.compile(_update, dynamic=False, fullgraph=True)


def _variance(squares, total: torch.Tensor, cells: int) -> float:
    """The summed squared distance of ``cells`` tokens from their mean, from ``sum |x|^2`` and ``sum x``."""
    return float(squares) - float((total ** 2).sum()) / cells
