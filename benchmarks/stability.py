"""How stable is what each reducer keeps when the frames change imperceptibly? MotionQA test videos through
the built-in model's tower, each clean and perturbed (a few grey levels of noise, a JPEG round trip at
quality 90, a one-pixel shift), every reducer at the same K:

- output change: the K output tokens of the perturbed video matched one to one to the clean ones (least
  total distance), the mean relative L2 distance of the pairs;
- key-map cells changed (Token Dynamics and its table): the share of cells whose row, under the same
  matching of rows, differs;
- answers changed: the share of questions whose pick (by likelihood) differs. Token Dynamics answers with
  the shipped ``token_dynamics-8``; full tokens with ``full``; the baselines run training-free on ``full``.

    python benchmarks/stability.py [--videos 40 --k 8 --seed 7] [--out benchmarks/results/stability-cpu.json]
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

import tokendynamics as td
from tokendynamics.models import load_model
from tokendynamics.models.builtin import test_clips


def perturb(video: torch.Tensor, kind: str, rng: np.random.Generator) -> torch.Tensor:
    """``uint8 [T, H, W, 3]`` with an imperceptible change of ``kind``."""
    if kind == "noise":  # +-2 grey levels
        noise = torch.from_numpy(rng.integers(-2, 3, size=video.shape)).to(torch.int16)
        return (video.to(torch.int16) + noise).clamp(0, 255).to(torch.uint8)
    if kind == "jpeg":
        from PIL import Image

        frames = []
        for frame in video.numpy():
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
            frames.append(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
        return torch.from_numpy(np.stack(frames))
    if kind == "shift":  # one pixel right, the left column repeated
        return torch.cat([video[:, :, :1], video[:, :, :-1]], 2)
    raise ValueError(kind)


def matched(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, float]:
    """Rows of ``b`` ``[K, D]`` matched one to one to ``a``'s (least total distance): the matching and the
    mean relative L2 distance of the pairs."""
    cost = torch.cdist(a.float(), b.float()).numpy()
    rows, cols = linear_sum_assignment(cost)
    change = cost[rows, cols] / np.maximum(a.float().norm(dim=-1).numpy()[rows], 1e-12)
    return cols, float(change.mean())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=40)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    full, tuned = load_model("builtin:full").eval(), load_model("builtin:token_dynamics-8").eval()
    kinds, reducers = ("noise", "jpeg", "shift"), ["full"] + [n for n in td.reducers]
    rng = np.random.default_rng(a.seed)
    stats = {k: {r: dict(output=[], cells=[], answers=[]) for r in reducers} for k in kinds}

    dim = full.host.config.text_config.hidden_size
    chosen = {name: tuned.reducer if name == "token_dynamics" else td.Reducer(name, dim, None if name == "full" else a.k)
              for name in reducers}

    def picks(name, features, items):
        """The picks of ``name``'s model on one clip, given each model's tower output, and the reduced video."""
        model = tuned if name == "token_dynamics" else full
        out = chosen[name](features[model is tuned][None])
        visual = [model.visual_rows(out.tokens[0][out.mask[0]])]
        return [model.choose(None, [i.question], [list(i.options)], mode="likelihood", visual=visual).picks[0]
                for i in items], out

    def towers(clip):
        """The clip through each model's tower and projector, once: ``(full's, tuned's)``."""
        return full.video_features([clip])[0], tuned.video_features([clip])[0]

    with torch.no_grad():
        for clean, items in test_clips(a.videos, a.seed):
            features = towers(clean)
            base = {name: picks(name, features, items) for name in reducers}
            for kind in kinds:
                features = towers(perturb(clean, kind, rng))
                for name in reducers:
                    answers, out = picks(name, features, items)
                    ref_answers, ref = base[name]
                    cols, change = matched(ref.tokens[0][ref.mask[0]], out.tokens[0][out.mask[0]])
                    s = stats[kind][name]
                    s["output"].append(change)
                    s["answers"] += [x != y for x, y in zip(answers, ref_answers)]
                    if ref.hash is not None and len(cols) == int(ref.mask[0].sum()):
                        relabel = torch.full((int(out.mask[0].sum()),), -1, dtype=torch.long)
                        relabel[torch.as_tensor(cols)] = torch.arange(len(cols))
                        s["cells"].append(float((relabel[out.hash.key_map[0]] != ref.hash.key_map[0]).float().mean()))
    summary = {k: {r: {m: (round(float(np.mean(v)), 4) if v else None) for m, v in s.items()}
                   for r, s in by.items()} for k, by in stats.items()}
    print(f"{a.videos} videos ({2 * a.videos} questions), K = {a.k}, seed {a.seed}")
    print(f"{'reducer':16s}" + "".join(f"{k + ' out/cells/answers':>30s}" for k in kinds))
    for r in reducers:
        row = "".join(f"{summary[k][r]['output']:>10.3f} {summary[k][r]['cells'] if summary[k][r]['cells'] is not None else '-':>9} "
                      f"{summary[k][r]['answers']:>9.3f}" for k in kinds)
        print(f"{r:16s}{row}")
    if a.out:
        a.out.write_text(json.dumps(dict(videos=a.videos, k=a.k, seed=a.seed, results=summary), indent=1))


if __name__ == "__main__":
    main()
