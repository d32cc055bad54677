"""Does a model answer direction on the simple videos a user makes? A coloured shape moving left, right,
up or down, or standing still, on a plain background, written as an mp4 and read back as ``tokendynamics
demo --video`` reads it; the MotionQA direction question with its five options, scored by likelihood, for
every model named, on the same videos in the same run (accuracy per motion and per background with 95%
intervals).

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

from tokendynamics.data.motionqa import COLOURS, DIRECTIONS, shape_mask
from tokendynamics.data.motionqa.spec import STILL
from tokendynamics.data.video import count_frames, read_video, uniform_indices, write_video
from tokendynamics.evaluate import wilson
from tokendynamics.models.builtin import FRAMES
from tokendynamics.models.load import load_model

MOTIONS = (*DIRECTIONS, STILL)
BACKGROUNDS = {"white": (235, 235, 235), "grey": (128, 128, 128), "black": (20, 20, 20)}


def plain_clip(shape: str, colour: str, motion: str, background: str, size: int, frames: int) -> np.ndarray:
    """``uint8 [frames, size, size, 3]``: one ``shape`` of ``colour`` (radius 8% of the side) on a plain
    ``background``, crossing the middle 40% of the frame in ``motion``'s direction (or standing at the
    centre)."""
    radius, (dx, dy) = 0.08 * size, DIRECTIONS.get(motion, (0.0, 0.0))
    travel = np.linspace(-0.2, 0.2, frames) * size
    yy, xx = np.mgrid[:size, :size] + 0.5
    video = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        x, y = size / 2 + dx * travel[t], size / 2 + dy * travel[t]
        video[t] = BACKGROUNDS[background]
        video[t][shape_mask(shape, xx - x, yy - y, radius)] = COLOURS[colour]
    return video


def cases(size: int, frames: int, seed: int):
    """Every (shape, colour, background, motion) of a fixed set, with the options in a shuffled order:
    ``(clip uint8 [T, size, size, 3], question, options, motion, background)``."""
    rng = np.random.default_rng(seed)
    for shape, colour, background, motion in itertools.product(("square", "circle", "triangle"),
                                                               ("red", "blue", "yellow"), BACKGROUNDS, MOTIONS):
        options = [str(o) for o in rng.permutation(MOTIONS)]
        yield (plain_clip(shape, colour, motion, background, size, frames),
               f"In which direction does the {colour} {shape} move?", options, motion, background)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["builtin:full"], help="models to compare (load_model names)")
    p.add_argument("--size", type=int, default=224, help="the videos' side in pixels")
    p.add_argument("--frames", type=int, default=48, help="frames written per video")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSON report")
    a = p.parse_args()
    models = {spec: load_model(spec, "full").eval() for spec in a.models}
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
    groups = [*MOTIONS, *(f"on {b}" for b in BACKGROUNDS)]
    print("| model | all | " + " | ".join(groups) + " |\n|---|---|" + "---|" * len(groups))
    for spec, right in picks.items():
        right = np.array(right)
        per = {m: right[[x == m for x in motions]] for m in MOTIONS}
        per.update({f"on {b}": right[[x == b for x in backgrounds]] for b in BACKGROUNDS})
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
