"""The MotionQA study: train the built-in model on full tokens (stage 1), then compare every reducer at
the same token budgets, training-free and fine-tuned (stage 2). Raw results go to ``OUT/results.jsonl``.

    python benchmarks/motionqa_study.py data   OUT [--videos 10000]
    python benchmarks/motionqa_study.py cache  OUT --frames 8     # every split's frame cache (optional)
    python benchmarks/motionqa_study.py stage0 OUT --pretrain-steps 1000 [--dense --position]  # the host
    python benchmarks/motionqa_study.py stage1 OUT [--steps N | --minutes M] [--batch-size 32 --lr 5e-4]
        [--host OTHER/host]           # from another run's stage-0 host (else stage 0 first, as above)
        [--rendered] [--types T ...]  # videos rendered as read (no repeats); these question types only
        [--first-types T ... --first-steps N]   # a curriculum: those types alone first
        [--type-weights '{"direction": 3}']    # then a mixture that keeps them at a larger share
    python benchmarks/motionqa_study.py stage2 OUT --model OUT/stage1/model [--reducers ...] [--ks 8 32]
        [--llm lora|full|frozen]      # how the LLM trains in stage 2 (train.TrainConfig.llm)

Stage 2 trains each reducer with the host as the paper does (LoRA adapters on the LLM by default). The
equal-steps control is the reducer ``full`` in ``--reducers``: full tokens trained the same further steps
with the same recipe; ``benchmarks/motionqa_report.py`` sets every result beside it.

Models answer with the option's text after the question and are scored by each option's likelihood
(``eval --mode likelihood``): a model trained from scratch learns that far sooner than the letter
indirection of the multiple-choice prompt. Every run is seeded; the settings of each are recorded beside its result. ``--minutes`` times 20 steps
first and sets the step count that fits; the count is recorded, and ``--steps`` with it reproduces the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path


import tokendynamics as td
from tokendynamics.data.motionqa import BACKGROUNDS, CONTENT_TYPES, generate_motionqa
from tokendynamics.evaluate import EvalConfig, evaluate
from tokendynamics.models import CompressedLlavaOnevision
from tokendynamics.models.builtin import DATA, build_host, save_stage2
from tokendynamics.pretrain import pretrain_vision
from tokendynamics.train import TrainConfig, train

ADAPTIVE = ("token_dynamics", "hash_table")


def record(out: Path, **entry) -> None:
    with (out / "results.jsonl").open("a") as f:
        f.write(json.dumps(entry) + "\n")
    print(json.dumps({k: v for k, v in entry.items() if k != "log"} | (
        {"log_tail": entry["log"][-3:]} if "log" in entry else {})), flush=True)


def data(a) -> None:
    generate_motionqa(a.out / "mqa", a.videos, seed=DATA["seed"], num_frames=DATA["num_frames"], size=a.size,
                      arrays=True, mp4=not a.no_mp4, workers=a.workers)


def cache(a) -> None:
    """Build the frame caches that training and evaluation map (so that jobs side by side share them)."""
    from tokendynamics.data import QADataset

    for split in ("train", "test"):
        QADataset(a.out / "mqa" / f"{split}.jsonl", a.out / "mqa", a.frames, prefer_arrays=True,
                  cache_dir=a.frame_cache)


def _eval(a, model, compressor=None, num_tokens=None, options=None, split="test", batch=64) -> dict:
    report = evaluate(EvalConfig(model=str(model), data=str(a.out / "mqa" / f"{split}.jsonl"),
                                 video_root=str(a.out / "mqa"), compressor=compressor,
                                 num_tokens=num_tokens, compressor_options=options or {},
                                 frames=a.frames, batch_size=batch, workers=a.workers,
                                 mode="likelihood", frame_cache=a.frame_cache))
    content = [t for t in report["per_type"] if t in CONTENT_TYPES]
    motion = [t for t in report["per_type"] if t not in content]
    def share(types):
        n = sum(report["per_type"][t]["n"] for t in types)
        right = sum(report["per_type"][t]["accuracy"] * report["per_type"][t]["n"] for t in types)
        return dict(n=n, accuracy=round(right / n, 4) if n else None, ci95=td.evaluate.wilson(round(right), n))
    return dict(overall=report["overall"], content=share(content), motion=share(motion),
                per_type={t: b["accuracy"] for t, b in report["per_type"].items()},
                per_type_n={t: b["n"] for t, b in report["per_type"].items()},
                picks=[r["pick"] for r in report["records"]],
                visual_tokens=report["visual_tokens"], questions_per_second=report["questions_per_second"])


def _train(a, output, **kw) -> dict:
    source = (dict(data=None, video_root=None, rendered_seed=DATA["seed"], rendered_size=a.size,
                   rendered_backgrounds=a.backgrounds) if a.rendered
              else dict(data=str(a.out / "mqa" / "train.jsonl"), video_root=str(a.out / "mqa")))
    cfg = TrainConfig(**source, output=str(output), frames=a.frames, workers=a.workers, seed=a.seed, target="text",
                      frame_cache=a.frame_cache, augment=a.augment, **kw)
    shutil.rmtree(output, ignore_errors=True)
    start = time.perf_counter()
    summary = train(cfg)
    return dict(config={k: v for k, v in vars(cfg).items() if k not in ("data", "video_root", "output")},
                seconds=round(time.perf_counter() - start, 1), **summary)


def stage0(a) -> Path:
    """The untrained host in ``OUT/host``, its vision tower trained alone for ``--pretrain-steps``."""
    host = build_host(a.out / "host", seed=a.seed, **a.arch)
    if a.pretrain_steps:  # stage 0: the vision tower learns colours, shapes and positions per frame
        start = time.perf_counter()
        log = pretrain_vision(host, a.out / "mqa", steps=a.pretrain_steps, seed=a.seed, dense=a.dense,
                              position=a.position, balanced=a.balanced)
        record(a.out, run="stage0", steps=a.pretrain_steps, seconds=round(time.perf_counter() - start, 1), log=log,
               architecture=a.arch, dense=a.dense, position=a.position, balanced=a.balanced)
    return host


def stage1(a) -> None:
    host = a.host or stage0(a)  # --host: the stage-0 host of an earlier run (shared by runs side by side)
    settings = dict(model=str(host), compressor="full", num_tokens=None, llm="full", vision_lr_scale=a.vision_lr_scale,
                    batch_size=a.batch_size, lr=a.lr, weight_decay=0.01, warmup=a.warmup, log_every=100,
                    save_every=10 ** 6)
    steps = a.steps
    if steps is None:  # time 20 steps (after 5 warm-up ones), fit the budget
        timing = _train(a, a.out / "timing", steps=25, **{**settings, "log_every": 1})
        per_step = timing["seconds"] / 25
        steps = max(100, int(a.minutes * 60 / per_step))
        record(a.out, run="stage1-timing", seconds_per_step=round(per_step, 4), chosen_steps=steps, frames=a.frames)
    if a.first_types:  # a curriculum: these types alone first, then every type from that model
        first = _train(a, a.out / "stage1-first", steps=a.first_steps, types=a.first_types, **settings)
        record(a.out, run="stage1-first", types=a.first_types, **first)
        settings["model"] = str(a.out / "stage1-first" / "model")
    result = _train(a, a.out / "stage1", steps=steps, types=a.types, type_weights=a.type_weights, **settings)
    model = a.out / "stage1" / "model"
    record(a.out, run="stage1", **result, test=_eval(a, model, "full"))


def _budgets(a) -> list[tuple[str, int | None, dict]]:
    """(tag, num_tokens, size options) per token budget: fixed ``--ks``, then adaptive ``--max-distortions``
    (for the reducers that have an adaptive length)."""
    fixed = [(str(k), k, {}) for k in a.ks]
    return fixed + [(f"d{d}", None, dict(max_distortion=d, min_tokens=2, max_tokens=32)) for d in a.max_distortions]


def stage2(a) -> None:
    model = Path(a.model)
    budgets = _budgets(a)
    for tag, k, size in budgets:
        for name in a.reducers:
            if size and name not in ADAPTIVE or name == "full" and (tag, k, size) != budgets[0]:
                continue  # full tokens (the control) once, not per budget
            tag_k = ("full", None) if name == "full" else (tag, k)
            options = {**size, **({"seed": a.seed} if name == "random_prune" else {}),
                       **a.options}
            label = dict(reducer=name, k=tag_k[1], budget=tag_k[0], options=options, variant=a.label, llm=a.llm)
            if a.training_free and name != "full":
                record(a.out, run="training-free", **label, test=_eval(a, model, name, k, options))
            if name in a.finetune or name == "full":
                output = a.out / "-".join(filter(None, ["stage2", name, tag_k[0], a.llm, a.label]))
                result = _train(a, output, model=str(model), compressor=name, num_tokens=tag_k[1],
                                compressor_options=options, batch_size=a.batch_size, lr=a.lr, steps=a.steps,
                                llm=a.llm, warmup=20, log_every=25, save_every=10 ** 6)
                record(a.out, run="fine-tuned", **label, **result, test=_eval(a, output / "model"))
                if name == "token_dynamics" and a.keep:
                    adapter = output / "adapter"
                    save_stage2(CompressedLlavaOnevision.from_pretrained(output / "model"),
                                a.out / "-".join(filter(None, ["token_dynamics", tag, a.llm, a.label])),
                                adapter if adapter.is_dir() else None)
                shutil.rmtree(output, ignore_errors=True)  # the host copy is large; results are recorded


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=["data", "cache", "stage0", "stage1", "stage2"])
    p.add_argument("out", type=Path)
    p.add_argument("--videos", type=int, default=10000)
    p.add_argument("--no-mp4", action="store_true", help="frame archives only (machines without PyAV)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=DATA["num_frames"], help="frames sampled per video for the model")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--pretrain-steps", type=int, default=0, help="stage 0 steps for the vision tower (0: none)")
    p.add_argument("--dense", action="store_true", help="stage 0 also labels every patch's object (colour, shape)")
    p.add_argument("--balanced", action="store_true",
                   help="with --dense: object patches weigh as much as all background patches together")
    p.add_argument("--position", action="store_true", help="stage 0 also teaches every patch its own row and column")
    p.add_argument("--size", type=int, default=DATA["size"], help="data: the videos' side in pixels")
    p.add_argument("--backgrounds", choices=BACKGROUNDS, default="muted",
                   help="stage 1 with --rendered: the rendered videos' backgrounds (the test split stays muted)")
    p.add_argument("--arch", type=json.loads, default={},
                   help="stage 1: built-in architecture overrides, e.g. '{\"image_size\": 224, \"patch_size\": 16}'")
    p.add_argument("--vision-lr-scale", type=float, default=1.0,
                   help="stage 1: the vision tower's lr as a share of --lr (0: frozen after stage 0)")
    p.add_argument("--augment", choices=["hflip", "flip"], help="mirror training videos (train.TrainConfig.augment)")
    p.add_argument("--host", type=Path, help="stage 1: start from this stage-0 host instead of making one")
    p.add_argument("--steps", type=int)
    p.add_argument("--rendered", action="store_true",
                   help="stage 1: train on MotionQA videos rendered as they are read (no question repeats)")
    p.add_argument("--types", nargs="+", help="stage 1: train on questions of these types only")
    p.add_argument("--first-types", nargs="+", help="stage 1: train on these types alone for --first-steps first")
    p.add_argument("--first-steps", type=int, default=500)
    p.add_argument("--type-weights", type=json.loads, help="stage 1 with --rendered: JSON {type: w}, a type w times "
                   "as often (after --first-types: the mixture that keeps them)")
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--model")
    p.add_argument("--llm", choices=["lora", "full", "frozen"], default="lora",
                   help="stage 2: how the LLM trains with the reducer")
    p.add_argument("--no-frame-cache", dest="use_cache", action="store_false",
                   help="read frame archives in every step instead of OUT/frame-cache (data.framecache)")
    p.add_argument("--reducers", nargs="+", default=list(td.reducers))
    p.add_argument("--finetune", nargs="*", default=list(td.reducers))
    p.add_argument("--ks", nargs="*", type=int, default=[8, 32])
    p.add_argument("--max-distortions", nargs="*", type=float, default=[],
                   help="adaptive length at these distortion targets (token_dynamics, hash_table)")
    p.add_argument("--options", type=json.loads, default={},
                   help="JSON settings of the reducers run (one per job line), e.g. '{\"attend\": \"all\"}' "
                        "for token_dynamics or '{\"order\": \"video\"}' for tome")
    p.add_argument("--label", default="", help="names the variant in the results and output folders")
    p.add_argument("--keep", action="store_true", help="keep token_dynamics' stage-2 weights (save_stage2)")
    p.add_argument("--no-training-free", dest="training_free", action="store_false")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    a.frame_cache = str(a.out / "frame-cache") if a.use_cache else None
    {"data": data, "cache": cache, "stage0": stage0, "stage1": stage1, "stage2": stage2}[a.stage](a)


if __name__ == "__main__":
    main()
