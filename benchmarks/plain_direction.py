"""Does a model answer direction on the simple videos a user makes? A coloured shape moving left, right,
up or down, or standing still, on a plain background, written as an mp4 and read back as ``tokendynamics
demo --video`` reads it; the MotionQA direction question with its five options, scored by likelihood, for
every model named, each with the reducer saved with it (full tokens, or Token Dynamics at 8), on the same
videos in the same run (accuracy per motion and per background with 95% intervals).

    python benchmarks/plain_direction.py --models builtin:full DIR ... [--size 224 --frames 48]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from tokendynamics.data.motionqa import DIRECTION_ANSWERS, PLAIN_BACKGROUNDS, direction_question, plain_clip
from tokendynamics.data.video import count_frames, read_video, uniform_indices, write_video
from tokendynamics.evaluate import wilson
from tokendynamics.models.builtin import FRAMES
from tokendynamics.models.load import load_model


def cases(size: int, frames: int, seed: int):
    """Every (shape, colour, background, motion) of a fixed set, with the options in a shuffled order:
    ``(clip uint8 [T, size, size, 3], question, options, motion, background)``."""
    rng = np.random.default_rng(seed)
    for shape, colour, background, motion in itertools.product(("square", "circle", "triangle"),
                                                               ("red", "blue", "yellow"), PLAIN_BACKGROUNDS,
                                                               DIRECTION_ANSWERS):
        options = [str(o) for o in rng.permutation(DIRECTION_ANSWERS)]
        yield (plain_clip(shape, colour, motion, background, size, frames),
               direction_question(f"{colour} {shape}"), options, motion, background)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["builtin:full"], help="models to compare (load_model names)")
    p.add_argument("--size", type=int, default=224, help="the videos' side in pixels")
    p.add_argument("--frames", type=int, default=48, help="frames written per video")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSON report")
    a = p.parse_args()
    models = {spec: load_model(spec).eval() for spec in a.models}  # each with the reducer saved with it
    picks = {spec: [] for spec in models}
    motions, backgrounds = [], []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for i, (clip, question, options, motion, background) in enumerate(cases(a.size, a.frames, a.seed)):
            path = Path(tmp) / f"{i}.mp4"
            write_video(path, clip)
            video = read_video(path, min(32, count_frames(path)))  # as the demo reads a user's video
            sampled = video[uniform_indices(len(video), FRAMES)]
            motions.append(motion)
            backgrounds.append(background)
            for spec, model in models.items():
                pick = model.choose([sampled], [question], [options], mode="likelihood").picks[0]
                picks[spec].append(options[pick] == motion)
    report = {"size": a.size, "frames": a.frames, "videos": len(motions), "models": {}}
    print(f"{len(motions)} plain videos, {a.size} px, {a.frames} frames; accuracy % [95% CI] (chance 20%)")
    groups = [*DIRECTION_ANSWERS, *(f"on {b}" for b in PLAIN_BACKGROUNDS)]
    print("| model | all | " + " | ".join(groups) + " |\n|---|---|" + "---|" * len(groups))
    for spec, right in picks.items():
        right = np.array(right)
        per = {m: right[[x == m for x in motions]] for m in DIRECTION_ANSWERS}
        per.update({f"on {b}": right[[x == b for x in backgrounds]] for b in PLAIN_BACKGROUNDS})
        cells = {"all": right, **per}
        report["models"][spec] = {k: dict(accuracy=float(v.mean()), n=len(v), ci95=wilson(int(v.sum()), len(v)))
                                  for k, v in cells.items()}
        print(f"| {spec} | " + " | ".join(_cell(v) for v in cells.values()) + " |")
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))


def _cell(right: np.ndarray) -> str:
    low, high = wilson(int(right.sum()), len(right))
    return f"{100 * right.mean():.0f} [{100 * low:.0f}, {100 * high:.0f}]"


if __name__ == "__main__":
    main()
