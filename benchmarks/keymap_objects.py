"""Does a table row follow its object? For MotionQA videos of a seed the model was not trained on, the key
map Token Dynamics builds from the built-in model's tokens (``[T, 7, 7]``, K rows), against where each
moving object really is (the scene's tracks):

- follows: the share of frames in which the object's cell is keyed to its most common row;
- purity: the share of that row's cells, over the video, that are the object's cell (1: the row is the
  object alone; low: the row also holds background or other objects);
- displacement kept: the row's centre moved from its first to its last frame, projected on the object's
  own displacement, as a share of that displacement (1: the row's centre travels as the object does);
- same direction: the share of objects whose row's centre moves in the object's direction, of the four
  (left, right, up, down: the larger axis of each displacement and its sign);
- a direction probe: logistic regression from the object's row, as the table holds it and as the LLM
  reads it (after the cross-dynamics attention), to its direction of the four, fitted on 70% of the videos.

With ``--answers`` (``tokendynamics eval --output`` files on the same folder), each model's accuracy on the
direction questions about moving objects, split by whether the key map's row moves in the object's
direction (does the model lose a direction the key map holds?), and on the direction and "which object
moves" questions, split by whether the object's row is also another object's usual row (does a shared row
lose what a row of its own keeps?).

    python benchmarks/keymap_objects.py --data DIR [--model builtin:token_dynamics-8] [--videos 100]
        [--answers EVAL.json ...] [--shared-ks 4 8 16 32 [--shared-metric l2]]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import tokendynamics as td
from probe_tokens import probe, samples
from tokendynamics.cluster.kmeans import METRICS
from tokendynamics.data.motionqa import direction_question
from tokendynamics.evaluate import wilson
from tokendynamics.models import load_model

MEASURES = ("follows", "purity", "kept", "same")


def object_cells(key: np.ndarray, track: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray] | None:
    """An object's cell per frame ``[T, 2]`` (row, column, fractional) and the key map's row there ``[T]``:
    ``key`` ``[T, h, w]`` rows, ``track`` ``[T, 2]`` its centre (x, y) in pixels of a ``side``-pixel frame;
    None where it leaves the frame."""
    t_, h, w = key.shape
    cells = np.stack([track[:, 1] / side * h, track[:, 0] / side * w], 1)
    if (cells < 0).any() or (cells[:, 0] >= h).any() or (cells[:, 1] >= w).any():
        return None
    at = cells.astype(int)
    return cells, key[np.arange(t_), at[:, 0], at[:, 1]]


def object_rows(key: np.ndarray, cells: np.ndarray, rows: np.ndarray, row: int) -> dict | None:
    """The measures for one object of ``key`` ``[T, h, w]``: its cells and their rows (:func:`object_cells`)
    and ``row``, the one most of them are keyed to; None where it does not move a cell."""
    moved = cells[-1] - cells[0]
    if np.linalg.norm(moved) < 1:  # less than a cell: nothing for a row to follow
        return None
    present = [t for t in range(len(key)) if (key[t] == row).any()]
    centre = [np.argwhere(key[t] == row).mean(0) + 0.5 for t in (present[0], present[-1])]
    shift = centre[1] - centre[0]
    return dict(follows=float((rows == row).mean()), purity=float((rows == row).sum() / (key == row).sum()),
                kept=float(shift @ moved / (moved @ moved)), same=float(_heading(shift) == _heading(moved)),
                row=int(row), heading=str(_heading(moved)))


def moving_objects(key: np.ndarray, objects: dict[str, np.ndarray], side: int):
    """``(name, object_rows' measures, shared)`` for each moving object of ``objects`` (name -> track
    ``[T, 2]``): ``shared`` where its row is also another object's usual row (the row most of its cells
    are keyed to)."""
    inside = {name: c for name, track in objects.items() if (c := object_cells(key, track, side)) is not None}
    home = {name: int(np.bincount(rows).argmax()) for name, (_, rows) in inside.items()}
    for name, (cells, rows) in inside.items():
        result = object_rows(key, cells, rows, home[name])
        if result is not None:
            yield name, result, any(row == home[name] for other, row in home.items() if other != name)


def _about(questions: list[dict], name: str) -> dict[str, str]:
    """The ids of a video's questions about the object called ``name``: its direction question, and the
    "which object moves" question whose answer it is."""
    about = {}
    for q in questions:
        if q["type"] == "direction" and q["question"] == direction_question(name) or \
                q["type"] == "moved" and q["options"][q["answer"]] == name:
            about[q["type"]] = q["id"]
    return about


def _heading(d: np.ndarray) -> tuple[int, int]:
    """One of four directions: the larger axis of ``d`` (row, column) and its sign."""
    axis = int(abs(d[1]) > abs(d[0]))
    return axis, int(np.sign(d[axis]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a MotionQA folder with .npz archives")
    p.add_argument("--model", default="builtin:token_dynamics-8")
    p.add_argument("--videos", type=int, default=100)
    p.add_argument("--splits", nargs="+", default=["test"])
    p.add_argument("--answers", nargs="*", type=Path, default=[], help="eval outputs on the same folder")
    p.add_argument("--shared-ks", nargs="*", type=int, default=[],
                   help="also the share of moving objects whose row another object shares at these K")
    p.add_argument("--shared-metric", choices=METRICS, help="with --shared-ks: cluster by this metric "
                   "(default: the reducer's)")
    p.add_argument("--out", type=Path, help="JSON report")
    a = p.parse_args()
    if not (a.data / f"{a.splits[0]}_scenes.jsonl").is_file():
        raise SystemExit(f"--data {str(a.data)!r} has no {a.splits[0]}_scenes.jsonl (a MotionQA folder)")
    model = load_model(a.model).eval()
    clustering, shares = model.reducer.model.config.hash_kwargs, {k: [] for k in a.shared_ks}
    clustering |= {"metric": a.shared_metric} if a.shared_metric else {}
    found = []
    for v, (tokens, scene, index, qs) in enumerate(samples(model, a.data, model.recipe.get("frames", 8), a.splits)):
        if v == a.videos:
            break
        with torch.no_grad():
            out = model.reducer(torch.from_numpy(tokens)[None])
        key = out.hash.key_map[0].numpy()
        rows = {"fused": out.tokens[0].float().numpy(), "table": out.hash.table[0].float().numpy()}
        objects = {f"{o['colour']} {o['shape']}": np.asarray(o["track"])[index] for o in scene["objects"]}
        for name, result, shared in moving_objects(key, objects, scene["size"]):
            found.append(dict(result, shared=float(shared), questions=_about(qs, name), video=v,
                              **{kind: r[result["row"]] for kind, r in rows.items()}))
        for k in a.shared_ks:  # the same tokens clustered into k rows as the reducer clusters them
            key_k = td.hash_video(torch.from_numpy(tokens)[None], **(clustering | dict(num_tokens=k))).key_map[0]
            shares[k] += [shared for *_, shared in moving_objects(key_k.numpy(), objects, scene["size"])]
    report = {"model": a.model, "data": str(a.data), "videos": min(v + 1, a.videos), "objects": len(found),
              **{m: {"mean": float(np.mean([r[m] for r in found])), "median": float(np.median([r[m] for r in found]))}
                 for m in MEASURES}}
    print(f"{report['objects']} moving objects in {report['videos']} videos ({a.model}):")
    for m in MEASURES:
        print(f"  {m:8s} mean {report[m]['mean']:.2f}  median {report[m]['median']:.2f}")
    if shares:
        report[f"moving objects whose row another object shares, by K ({clustering['metric']})"] = {
            k: float(np.mean(v)) for k, v in shares.items()}
        print(f"  moving objects whose row another object shares ({clustering['metric']}): " + ", ".join(
            f"K = {k}: {100 * np.mean(v):.0f}%" for k, v in shares.items()))
    held_out = {r["video"] for r in found if r["video"] >= 0.7 * report["videos"]}
    for name in ("table", "fused"):  # the object's row, as the table holds it and as the LLM reads it
        data = [np.stack([r[name] for r in found if (r["video"] in held_out) == test]) for test in (False, True)]
        labels = [np.array([r["heading"] for r in found if (r["video"] in held_out) == test]) for test in (False, True)]
        score, chance = probe(data[0], labels[0], data[1], labels[1])
        report[f"direction probe, {name} row"] = dict(accuracy=score, chance=chance, n_test=len(labels[1]),
                                                      ci95=wilson(round(score * len(labels[1])), len(labels[1])))
        print(f"  direction (of four) from the object's {name} row: {score:.2f} held out (chance {chance:.2f})")
    for path in a.answers:
        right = {r["id"]: r["correct"] for r in json.loads(path.read_text())["records"]}
        split = {f"row moves {'with' if same else 'against'} it":
                 [right[r["questions"]["direction"]] for r in found
                  if r["questions"].get("direction") in right and r["same"] == same] for same in (1.0, 0.0)}
        for qtype in ("direction", "moved"):
            split |= {f"{qtype}, the object's row {'shared with another object' if shared else 'its own'}":
                      [right[r["questions"][qtype]] for r in found
                       if r["questions"].get(qtype) in right and r["shared"] == shared] for shared in (0.0, 1.0)}
        report.setdefault("answers", {})[path.stem] = {
            k: dict(n=len(v), accuracy=float(np.mean(v)), ci95=wilson(sum(v), len(v))) if v else dict(n=0)
            for k, v in split.items()}
        print(f"  {path}:")
        for k, v in split.items():
            print(f"    {k}: {100 * np.mean(v):.0f}% of {len(v)}" if v else f"    {k}: none")
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
