"""How close a ``HashStream``'s table comes to the offline one on the built-in ``token_dynamics-8`` model's
tokens (MotionQA test videos of seed 7, 8 frames, K = 8): the rows it keeps while streaming
(``sketch``, grouped into K by ``table()``; K keeps the table's rows all along), and refining the last
``W`` frames (``HashStream(window=W).refine()``: their tokens kept, memory grows by W frames), after every
frame or once when the question comes. Each line: the exact distortion over the offline table's (mean,
median, worst, the share of videos within 10%), the key maps' agreement (the adjusted Rand index of the
streamed key map against the offline one, scikit-learn's), and the running figure the table reports over
the exact one.

    python benchmarks/stream_variants.py [--videos 100]
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import adjusted_rand_score

import tokendynamics as td

from stream_settings import test_tokens


def ratios(videos, tables, make, after_frame=None) -> str:
    """One line of figures for the streams ``make(dim)`` makes, against the offline ``tables`` (one per video)."""
    out, running, agreement = [], [], []
    for tokens, offline in zip(videos, tables):
        stream = make(tokens.shape[-1])
        for t in range(len(tokens)):
            stream.push(tokens[t])
            if after_frame:
                after_frame(stream, tokens, t)
        table = stream.table()
        exact = float(table.distortion(tokens))
        out.append(exact / float(offline.distortion()))
        running.append(float(table.distortion()) / exact)
        agreement.append(adjusted_rand_score(offline.key_map.flatten().numpy(), table.key_map.flatten().numpy()))
    return (f"{np.mean(out):.3f}x the offline distortion on average (median {np.median(out):.3f}x, worst "
            f"{max(out):.2f}x, {np.mean(np.array(out) <= 1.1):.0%} of videos within 10%); key maps' ARI "
            f"{np.mean(agreement):.3f} (median {np.median(agreement):.3f}); running figure {np.mean(running):.2f}x "
            f"the exact one")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=100)
    a = p.parse_args()
    videos = test_tokens(a.videos)
    offline = [td.hash_video(tokens, 8) for tokens in videos]  # once: every variant is measured against them
    for rows in (8, 16, 32, 64):
        note = {8: " (no sketch)", 16: " (the default)"}.get(rows, "")
        print(f"{rows} rows kept{note}:", ratios(videos, offline, lambda d, r=rows: td.HashStream(8, d, sketch=r)))
    for rows in (8, 16):
        for w in (4, 8):
            print(f"{rows} rows, last {w} frames refined after every frame:",
                  ratios(videos, offline, lambda d, w=w, r=rows: td.HashStream(8, d, window=w, sketch=r),
                         lambda s, x, t: s.refine(1)))
            print(f"{rows} rows, last {w} frames refined once at the end:",
                  ratios(videos, offline, lambda d, w=w, r=rows: td.HashStream(8, d, window=w, sketch=r),
                         lambda s, x, t: s.refine(3) if t == len(x) - 1 else None))


if __name__ == "__main__":
    main()
