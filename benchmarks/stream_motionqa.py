"""The built-in Token Dynamics model answering from a stream: each frame's tokens pushed into a
``HashStream`` as it arrives, the cross-dynamics attention and the LLM run only when the question comes;
against the same model on the whole video (offline ``hash_video``), on MotionQA videos of an unseen seed.

    python benchmarks/stream_motionqa.py [--videos 100 --seed 7] [--window 4] [--out benchmarks/results/stream-cpu.json]

``--window W``: the stream keeps its last W frames' tokens and refines the table after each frame
(``HashStream(window=W)``, ``refine()``), as ``tokendynamics live --refine W --every 1`` does (it refines
after each answer).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import tokendynamics as td
from tokendynamics.evaluate import wilson
from tokendynamics.models import load_model
from tokendynamics.models.builtin import test_clips


def streamed_rows(model, clip: torch.Tensor, window: int = 0) -> tuple[torch.Tensor, float, td.TokenHashTable]:
    """The visual rows the LLM reads for ``clip`` ``[T, H, W, 3]`` fed frame by frame (``window``: refined
    after each from its last frames), the mean time per frame's table update (ms, the tower left out, the
    refinement in) and the table."""
    stream, spent = model.new_stream(window=window), 0.0
    for t in range(len(clip)):
        features = model.video_features([clip[t:t + 1]])[0]  # [1, h, w, D]: the tower on this frame alone
        start = time.perf_counter()
        stream.push(features)
        if window:
            stream.refine()
        spent += time.perf_counter() - start
    return model.stream_tokens(stream), 1e3 * spent / len(clip), stream.table()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=100)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--window", type=int, default=0, help="refine after each frame from the last W frames")
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    model = load_model("builtin:token_dynamics-8").eval()
    right, agree, n, update_ms, ratios = {"offline": 0, "streamed": 0}, 0, 0, [], []
    with torch.no_grad():
        for clip, items in test_clips(a.videos, a.seed):
            features = model.video_features([clip])[0]  # the whole clip, once: offline rows and distortion
            whole = model.reducer(features[None])
            offline = [model.visual_rows(whole.tokens[0][whole.mask[0]])]
            rows, ms, table = streamed_rows(model, clip, a.window)
            update_ms.append(ms)
            ratios.append(float(table.distortion(features[None])) / float(whole.hash.distortion()))
            for item in items:
                picks = {name: model.choose(None, [item.question], [list(item.options)], visual=visual).picks[0]
                         for name, visual in (("offline", offline), ("streamed", [rows]))}
                for name, pick in picks.items():
                    right[name] += pick == item.answer
                agree += picks["offline"] == picks["streamed"]
                n += 1
    result = dict(videos=a.videos, questions=n, seed=a.seed, window=a.window,
                  accuracy={k: dict(accuracy=round(v / n, 4), ci95=wilson(v, n)) for k, v in right.items()},
                  same_pick=round(agree / n, 4), update_ms_per_frame=round(sum(update_ms) / len(update_ms), 3),
                  distortion_ratio_mean=round(sum(ratios) / len(ratios), 4), distortion_ratio_max=round(max(ratios), 4))
    print(json.dumps(result, indent=1))
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
