"""Videos from ``(seed, index)`` and the dataset on disk (layout in :mod:`tokendynamics.data.motionqa`)."""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from ..._checks import check_positive_int
from ..qa import QAItem, write_qa
from ..video import write_video
from .questions import MOTION_TYPES, content_question, motion_scene, options_for
from .render import background, render
from .spec import CONTENT_TYPES, SPLITS, split_of
from .stats import answer_balance, blind_accuracy, majority_answers


@dataclass(frozen=True)
class MotionQAConfig:
    """num_frames, size (square side in pixels, even), fps of the mp4, seed; arrays: also write each
    video's frames as a compressed ``.npz`` archive; mp4: write the mp4 files (off: archives only, for
    training machines without PyAV)."""

    num_frames: int = 32
    size: int = 384
    fps: int = 8
    seed: int = 0
    arrays: bool = False
    mp4: bool = True

    def __post_init__(self):
        for name in ("num_frames", "size", "fps"):
            check_positive_int(getattr(self, name), name)
        if self.num_frames < 16:
            raise ValueError(f"num_frames must be >= 16 (events need room), got {self.num_frames}")
        if self.size % 2 or self.size < 64:
            raise ValueError(f"size must be an even number >= 64, got {self.size}")
        if not (self.mp4 or self.arrays):
            raise ValueError("write mp4 files, frame archives (arrays=True) or both")


def question_types(index: int) -> tuple[str, str]:
    """The motion and the content question type of video ``index``: both cycle with the index, within
    every split (a split is a place in the decade), so that every split holds every type evenly."""
    decade, place = divmod(index, 10)
    return (MOTION_TYPES[(decade + place) % len(MOTION_TYPES)],
            CONTENT_TYPES[(decade // len(MOTION_TYPES) + place) % len(CONTENT_TYPES)])


def make_scene(index: int, config: MotionQAConfig):
    """Scene ``index`` without its pictures: ``(rng, objects, scene dict, [QAItem, QAItem])``; the rng,
    advanced past the questions, then draws the pictures (:func:`make_video`)."""
    rng = np.random.default_rng([config.seed, index])
    split, vid = split_of(index), f"{index:06d}"
    mtype, ctype = question_types(index)
    objs, motion = motion_scene(rng, mtype, config.num_frames, config.size)
    content = content_question(rng, ctype, objs)
    video = f"videos/{split}/{vid}.mp4"
    items = []
    for qtype, (question, answer, distractors) in ((mtype, motion), (ctype, content)):
        options, position = options_for(rng, answer, distractors)
        items.append(QAItem(video, question, tuple(options), position, qtype, f"{vid}-{qtype}"))
    scene = dict(id=vid, split=split, video=video, size=config.size, objects=[asdict(o) for o in objs])
    return rng, objs, scene, items


def make_video(index: int, config: MotionQAConfig):
    """Video ``index``: ``(frames uint8 [T, S, S, 3], scene dict, [QAItem, QAItem])``; deterministic."""
    rng, objs, scene, items = make_scene(index, config)
    draw_order = [objs[i] for i in rng.permutation(len(objs))]
    return render(draw_order, background(rng, config.size)), scene, items


def _write_one(args):
    index, config, out = args
    frames, scene, items = make_video(index, config)
    path = out / scene["video"]
    if config.mp4:
        write_video(path, frames, fps=config.fps)
    if config.arrays:
        np.savez_compressed(path.with_suffix(".npz"), frames=frames)
    return index, scene, items


def generate_motionqa(out_dir: str | Path, num_videos: int, seed: int = 0, num_frames: int = 32,
                      size: int = 384, fps: int = 8, arrays: bool = False, mp4: bool = True,
                      workers: int | None = None, progress: bool = True) -> dict:
    """Generate ``num_videos`` MotionQA videos into ``out_dir`` (layout in the module docstring), on
    ``workers`` processes (default: every core). Returns the statistics also written to ``stats.json``."""
    check_positive_int(num_videos, "num_videos")
    config = MotionQAConfig(num_frames, size, fps, seed, arrays, mp4)
    out = Path(out_dir)
    for split in SPLITS:
        (out / "videos" / split).mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    results = {}
    jobs = [(i, config, out) for i in range(num_videos)]
    with Progress(disable=not progress) as bar, ProcessPoolExecutor(workers) as pool:
        task = bar.add_task(f"MotionQA: {num_videos} videos on {workers} processes", total=num_videos)
        for index, scene, items in pool.map(_write_one, jobs, chunksize=max(1, min(16, num_videos // (4 * workers)))):
            results[index] = (scene, items)
            bar.advance(task)
    stats = dict(config=asdict(config), num_videos=num_videos, splits={})
    by_split = {split: [results[i] for i in sorted(results) if split_of(i) == split] for split in SPLITS}
    prior = majority_answers([item for _, its in by_split["train"] for item in its])
    for split, chosen in by_split.items():
        items = [item for _, its in chosen for item in its]
        write_qa(out / f"{split}.jsonl", items)
        (out / f"{split}_scenes.jsonl").write_text("".join(json.dumps(s) + "\n" for s, _ in chosen))
        stats["splits"][split] = dict(videos=len(chosen), questions=len(items),
                                      types=dict(sorted(Counter(i.type for i in items).items())),
                                      answers=answer_balance(i.answer for i in items),
                                      blind_accuracy=blind_accuracy(items, prior))
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    return stats
