"""A generated video QA set written to disk, whatever made its videos: the videos per split (mp4 and/or
frame archives), the questions per split, the recorded scenes and the statistics (question types, answer
positions, the blind prior per split), on several processes. MotionQA and ChangeQA share it."""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
from rich.progress import Progress

from ..._checks import check_positive_int
from ..qa import write_qa
from ..video import write_video
from .spec import SPLITS, split_of
from .stats import answer_balance, blind_accuracy, majority_answers


def _write_one(index, make_video, config, out):
    frames, scene, items = make_video(index, config)
    path = out / scene["video"]
    if config.mp4:
        write_video(path, frames, fps=config.fps)
    if config.arrays:
        np.savez_compressed(path.with_suffix(".npz"), frames=frames)
    return index, scene, items


def write_video_set(out_dir: str | Path, make_video, config, num_videos: int, name: str,
                    workers: int | None = None, progress: bool = True) -> dict:
    """Videos ``0 .. num_videos - 1`` of ``make_video(index, config) -> (frames, scene, items)`` (a
    module-level function) into ``out_dir``: ``videos/{split}/``, ``{split}.jsonl``, ``{split}_scenes.jsonl``
    and ``stats.json`` (returned), split by :func:`split_of`; ``config`` has ``mp4``, ``arrays``, ``fps``."""
    check_positive_int(num_videos, "num_videos")
    out = Path(out_dir)
    for split in SPLITS:
        (out / "videos" / split).mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    results = {}
    write = partial(_write_one, make_video=make_video, config=config, out=out)
    with Progress(disable=not progress) as bar, ProcessPoolExecutor(workers) as pool:
        task = bar.add_task(f"{name}: {num_videos} videos on {workers} processes", total=num_videos)
        for index, scene, items in pool.map(write, range(num_videos),
                                            chunksize=max(1, min(16, num_videos // (4 * workers)))):
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
