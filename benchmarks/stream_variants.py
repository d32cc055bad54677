"""Two ideas for bringing a ``HashStream``'s distortion within 10% of the offline table's on the built-in
``token_dynamics-8`` model's tokens (MotionQA test videos of seed 7, 8 frames, K = 8): refining the last
``W`` frames (``HashStream(window=W).refine()``, offered: their tokens kept, memory grows by W frames),
after every frame or once when the question comes; and clustering the first frame into fewer rows,
keeping the rest for what later frames show (an empty row takes new content without a merge; not offered).

    python benchmarks/stream_variants.py [--videos 15]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import tokendynamics as td
import tokendynamics.stream as stream_module
from tokendynamics.cluster.kmeans import kmeans

from stream_settings import offline_ratio, test_tokens

_respawn = stream_module._respawn


class Reserving(td.HashStream):
    """A stream whose first frame takes ``num_tokens - reserve`` rows."""

    def __init__(self, *args, reserve: int = 0, **kw):
        super().__init__(*args, **kw)
        self.reserve = reserve

    def _first(self, frame, z):
        return kmeans(z, self.num_tokens - self.reserve, metric=self.metric, seed=self.seed).labels, self.num_tokens


def _free_row_respawn(z, labels, st, metric):
    """:func:`~tokendynamics.stream._respawn`, but where a row is empty it takes the worst-fitted point."""
    empty = st.counts == 0
    if not bool(empty.any()):
        return _respawn(z, labels, st, metric)
    error = ((z - stream_module._take(stream_module._centres(st, metric), labels)) ** 2).sum(-1)
    point = z.gather(1, error.argmax(-1).view(-1, 1, 1).expand(-1, 1, z.shape[-1]))
    done = (error - ((z - point) ** 2).sum(-1)).clamp_min(0).sum(-1) > 0
    row = empty.float().argmax(-1)
    off = (torch.arange(st.counts.shape[1]) == row[:, None]) & done[:, None]
    return st._replace(space=torch.where(off[..., None], point.double(), st.space)), \
        torch.stack([torch.zeros_like(row), row, row], -1)


def ratios(videos, make, after_frame=None) -> str:
    out = []
    for tokens in videos:
        stream = make(tokens.shape[-1])
        for t in range(len(tokens)):
            stream.push(tokens[t])
            if after_frame:
                after_frame(stream, tokens, t)
        out.append(offline_ratio(stream, tokens))
    return f"{np.mean(out):.2f}x the offline distortion on average, {max(out):.2f}x at worst"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=15)
    a = p.parse_args()
    videos = test_tokens(a.videos)
    print("the stream as it is:", ratios(videos, lambda d: td.HashStream(8, d)))
    for w in (2, 4, 8):
        print(f"last {w} frames refined after every frame:",
              ratios(videos, lambda d, w=w: td.HashStream(8, d, window=w), lambda s, x, t: s.refine(1)))
        print(f"last {w} frames refined once at the end:",
              ratios(videos, lambda d, w=w: td.HashStream(8, d, window=w),
                     lambda s, x, t: s.refine(3) if t == len(x) - 1 else None))
    stream_module._respawn = _free_row_respawn
    try:
        for r in (2, 4):
            print(f"{r} rows kept for later frames:", ratios(videos, lambda d, r=r: Reserving(8, d, reserve=r)))
    finally:
        stream_module._respawn = _respawn


if __name__ == "__main__":
    main()
