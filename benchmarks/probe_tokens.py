"""What the built-in model's video tokens hold, by linear probes: for MotionQA videos of a seed it was not
trained on, the pooled, projected tokens ``[T, 7, 7, D]`` the LLM reads (``video_features``), probed for

- each token's own cell (row and column, 7 classes each): do tokens carry where they are?
- the colour and the shape of the object whose centre lies in a cell (8 and 5 classes), from that token;
- each object's centre inside its cell (the offset, regression R^2): finer position than the grid;
- the direction of a directed object (5 classes: left, right, up, down, still), from the mean of the tokens
  at its first and at its last frame, concatenated.

Logistic regression / ridge (scikit-learn), trained on 70% of the videos and scored on the rest; chance is
the majority class's share of the held-out videos.

    python benchmarks/probe_tokens.py [--videos 400 --seed 7] [--model builtin]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from tokendynamics.data.motionqa import generate_motionqa
from tokendynamics.data.video import uniform_indices
from tokendynamics.models import load_model


def samples(model, root: Path, frames: int, splits):
    """Per video: tokens ``[T, h, w, D]``, the scene's objects and the sampled frame indices."""
    scenes = [json.loads(line) for split in splits
              for line in (root / f"{split}_scenes.jsonl").read_text().splitlines()]
    questions = {}
    for split in splits:
        for line in (root / f"{split}.jsonl").read_text().splitlines():
            q = json.loads(line)
            questions.setdefault(q["video"], []).append(q)
    for scene in scenes:
        with np.load((root / scene["video"]).with_suffix(".npz")) as archive:
            video = torch.from_numpy(archive["frames"])
        index = uniform_indices(len(video), frames)
        with torch.no_grad():
            tokens = model.video_features([video[index].to(model.device)])[0].float().cpu().numpy()
        yield tokens, scene, index, questions[scene["video"]]


def probe(x_train, y_train, x_test, y_test, regression=False) -> tuple[float, float]:
    """(held-out score, chance): accuracy and majority share, or R^2 and 0 for a regression."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler().fit(x_train)
    if regression:
        fit = Ridge(alpha=1.0).fit(scale.transform(x_train), y_train)
        return fit.score(scale.transform(x_test), y_test), 0.0
    fit = LogisticRegression(max_iter=2000, C=0.5).fit(scale.transform(x_train), y_train)
    values, counts = np.unique(y_test, return_counts=True)
    return fit.score(scale.transform(x_test), y_test), counts.max() / counts.sum()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=400)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--model", default="builtin")
    p.add_argument("--data", help="an existing MotionQA folder (with .npz archives) instead of generating one")
    p.add_argument("--max-rows", type=int, default=20000, help="most samples per probe and side (seeded)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--splits", nargs="+", default=["train", "val", "test"], help="the splits to probe")
    a = p.parse_args()
    model = load_model(a.model, device=a.device).eval()
    frames = model.recipe.get("frames", 8)
    root = Path(a.data) if a.data else Path(tempfile.mkdtemp()) / "mqa"
    if not a.data:
        generate_motionqa(root, a.videos, seed=a.seed, num_frames=32, size=112, arrays=True, mp4=False,
                          progress=False)
    rows = {k: [] for k in ("cell", "object", "offset", "direction")}
    for v, (tokens, scene, index, qs) in enumerate(samples(model, root, frames, a.splits)):
        t_, h, w, _ = tokens.shape
        side = scene["size"]
        for t in range(t_):
            for y in range(h):
                for x in range(w):
                    rows["cell"].append((v, tokens[t, y, x], (y, x)))
        for obj in scene["objects"]:
            track = np.asarray(obj["track"])[index]
            for t, (cx, cy) in enumerate(track):
                if 0 <= cx < side and 0 <= cy < side:
                    gx, gy = cx / side * w, cy / side * h
                    feat = tokens[t, int(gy), int(gx)]
                    rows["object"].append((v, feat, (obj["colour"], obj["shape"])))
                    rows["offset"].append((v, feat, (gx % 1, gy % 1)))
        for q in qs:
            if q["type"] == "direction":
                name = q["question"].split("the ", 1)[1].rsplit(" move", 1)[0]
                obj = next(o for o in scene["objects"] if f"{o['colour']} {o['shape']}" == name)
                track = np.asarray(obj["track"])[index]
                cells = [tokens[t, min(h - 1, max(0, int(cy / side * h))), min(w - 1, max(0, int(cx / side * w)))]
                         for t, (cx, cy) in enumerate(track)]
                label = q["options"][q["answer"]]
                rows["direction"].append((v, np.concatenate([cells[0], cells[-1]]), label))
    held_out = set(range(int(0.7 * (v + 1)), v + 1))

    def split(name, pick):
        train = [(f, pick(y)) for v, f, y in rows[name] if v not in held_out]
        test = [(f, pick(y)) for v, f, y in rows[name] if v in held_out]
        if len({y for _, y in train}) < 2 or not test:  # too few videos for this probe
            return None
        rng = np.random.default_rng(0)  # at most --max-rows of each side: the fits stay within a minute
        train = [train[i] for i in sorted(rng.permutation(len(train))[: a.max_rows])]
        test = [test[i] for i in sorted(rng.permutation(len(test))[: a.max_rows])]
        return (np.stack([f for f, _ in train]), np.array([y for _, y in train]),
                np.stack([f for f, _ in test]), np.array([y for _, y in test]))

    def probe_or_nan(data, regression=False):
        return (float("nan"), float("nan")) if data is None else probe(*data, regression=regression)

    results = {
        "cell row": probe_or_nan(split("cell", lambda y: y[0])),
        "cell column": probe_or_nan(split("cell", lambda y: y[1])),
        "colour at the object's cell": probe_or_nan(split("object", lambda y: y[0])),
        "shape at the object's cell": probe_or_nan(split("object", lambda y: y[1])),
        "offset in the cell (R^2)": probe_or_nan(split("offset", lambda y: y), regression=True),
        "direction from first + last cell": probe_or_nan(split("direction", lambda y: y)),
    }
    print(f"{'probe':36s} held-out  chance  (n test)")
    sizes = {"cell row": "cell", "cell column": "cell", "colour at the object's cell": "object",
             "shape at the object's cell": "object", "offset in the cell (R^2)": "offset",
             "direction from first + last cell": "direction"}
    for name, (score, chance) in results.items():
        n = min(a.max_rows, sum(v in held_out for v, _, _ in rows[sizes[name]]))
        print(f"{name:36s} {score:8.3f} {chance:7.3f}  ({n})")
    print(json.dumps({k: [round(s, 4), round(c, 4)] for k, (s, c) in results.items()}))


if __name__ == "__main__":
    main()
