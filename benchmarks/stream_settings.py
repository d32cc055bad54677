"""How a ``HashStream``'s settings (Lloyd steps per frame, rows a frame may respawn) move its distortion
against the offline ``hash_video`` table, on the tokens of the built-in ``token_dynamics-8`` model (what it
streams) for MotionQA test videos (seed 7, 8 frames, K = 8), clustered by the model's metric (or
``--metric``), and the time of a later frame's update on this machine. Fewer steps and spawns mean fewer
kernels in a frame's update.

    python benchmarks/stream_settings.py [--videos 15] [--metric cosine|l2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import tokendynamics as td
from tokendynamics.models import load_model
from tokendynamics.models.builtin import test_clips

SETTINGS = [(3, 2), (1, 2), (6, 2), (3, 0), (3, 1), (6, 4), (3, 8), (2, 1), (1, 1), (1, 0)]  # (steps, spawns);
# the default first


def test_tokens(videos: int) -> tuple[list[torch.Tensor], str]:
    """The built-in ``token_dynamics-8`` model's tokens ``[8, 14, 14, D]`` of ``videos`` MotionQA test clips
    (seed 7), what it streams, and the metric its key map is clustered by."""
    model = load_model("builtin:token_dynamics-8").eval()
    with torch.no_grad():
        tokens = [model.video_features([clip])[0].float() for clip, _ in test_clips(videos, seed=7)]
    return tokens, model.reducer.model.config.metric


def offline_ratio(stream: td.HashStream, tokens: torch.Tensor, metric: str) -> float:
    """A stream's distortion over the offline ``hash_video`` table's at the same K (8) and metric."""
    return float(stream.table().distortion(tokens)) / float(td.hash_video(tokens, 8, metric=metric).distortion())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=15)
    p.add_argument("--metric", choices=["cosine", "l2"], help="default: the model's")
    a = p.parse_args()
    videos, metric = test_tokens(a.videos)
    metric = a.metric or metric
    print(f"{len(videos)} videos, metric {metric}")
    for steps, spawns in SETTINGS:
        ratios, seconds = [], []
        for tokens in videos:
            stream = td.HashStream(8, tokens.shape[-1], steps=steps, spawns=spawns, metric=metric)
            stream.push(tokens[:1])  # the first frame is clustered, not updated: left out of the time
            start = time.perf_counter()
            stream.push(tokens[1:])
            seconds.append((time.perf_counter() - start) / (len(tokens) - 1))
            ratios.append(offline_ratio(stream, tokens, metric))
        print(f"steps {steps}, spawns {spawns}: distortion {np.mean(ratios):.2f}x the offline table's on average, "
              f"{max(ratios):.2f}x at worst; {1e3 * np.median(seconds):.2f} ms a later frame (median)")


if __name__ == "__main__":
    main()
