"""Videos from ``(seed, index)`` and the dataset on disk (layout in :mod:`tokendynamics.data.motionqa`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..._checks import check_choice, check_positive_int
from ..qa import QAItem
from .questions import MOTION_TYPES, content_question, motion_scene, options_for
from .render import background, render
from .spec import BACKGROUNDS, COLOURS, CONTENT_TYPES, split_of
from .writer import write_video_set


@dataclass(frozen=True)
class MotionQAConfig:
    """num_frames, size (square side in pixels, even), fps of the mp4, seed; arrays: also write each
    video's frames as a compressed ``.npz`` archive; mp4: write the mp4 files (off: archives only, for
    training machines without PyAV); backgrounds: one of :data:`~.spec.BACKGROUNDS` ("muted", the
    benchmark's; "wide": any level, plain ones too)."""

    num_frames: int = 32
    size: int = 384
    fps: int = 8
    seed: int = 0
    arrays: bool = False
    mp4: bool = True
    backgrounds: str = "muted"

    def __post_init__(self):
        for name in ("num_frames", "size", "fps"):
            check_positive_int(getattr(self, name), name)
        if self.num_frames < 16:
            raise ValueError(f"num_frames must be >= 16 (events need room), got {self.num_frames}")
        if self.size % 2 or self.size < 64:
            raise ValueError(f"size must be an even number >= 64, got {self.size}")
        check_choice(self.backgrounds, "backgrounds", BACKGROUNDS)
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
    picture = background(rng, config.size, config.backgrounds, [COLOURS[o.colour] for o in objs])
    return render(draw_order, picture), scene, items


def generate_motionqa(out_dir: str | Path, num_videos: int, seed: int = 0, num_frames: int = 32,
                      size: int = 384, fps: int = 8, arrays: bool = False, mp4: bool = True,
                      workers: int | None = None, progress: bool = True, backgrounds: str = "muted") -> dict:
    """Generate ``num_videos`` MotionQA videos into ``out_dir`` (layout in the module docstring), on
    ``workers`` processes (default: every core); ``backgrounds``: see :class:`MotionQAConfig`. Returns the
    statistics also written to ``stats.json``."""
    config = MotionQAConfig(num_frames, size, fps, seed, arrays, mp4, backgrounds)
    return write_video_set(out_dir, make_video, config, num_videos, "MotionQA", workers, progress)
