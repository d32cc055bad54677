"""MotionQA questions whose videos are rendered when they are read, for training without epochs.

A MotionQA video follows from ``(seed, index)`` and takes a few milliseconds to draw at 112 px, so a data
loader can render each one as it is needed: a run of 100,000 questions then sees 100,000 different
questions (50,000 videos) instead of repeating a fixed set, and a model cannot lower its loss by remembering
clips. Item ``i`` is the same question on every machine and in every epoch.

    data = RenderedMotionQA(seed=0, num_frames=8, size=112, types=("direction",))
    data[0]["frames"].shape    # torch.Size([8, 112, 112, 3])
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..._checks import check_choice, check_positive_int
from ..video import uniform_indices
from .generate import MotionQAConfig, make_video, question_types
from .questions import MOTION_TYPES
from .spec import CONTENT_TYPES, SPLITS, split_of

QUESTION_TYPES = MOTION_TYPES + CONTENT_TYPES
PERIOD = 180  # the question types of video i are those of video i + PERIOD (generate.question_types)


class RenderedMotionQA(Dataset):
    """The questions of MotionQA's ``split`` of ``seed``, their videos rendered on reading: items are dicts
    as :class:`~tokendynamics.data.QADataset` gives (``frames`` ``uint8 [num_frames, size, size, 3]``,
    sampled from the ``video_frames`` drawn, as a frame archive of that length is read).

    types: keep only questions of these types (every type by default). weights: ``{type: w}``, whole numbers
    >= 1: a type of weight ``w`` comes ``w`` times as often as one of weight 1 (the default), from
    different videos (its questions are taken from ``w`` periods of videos for every one of the others).
    num_questions: the dataset's length (a run draws a fraction of it; its videos are the split's first
    ones in index order). augment: as QADataset's (training: :class:`~tokendynamics.data.augment.Mirror`).
    backgrounds: as :class:`~tokendynamics.data.motionqa.MotionQAConfig`'s.
    """

    def __init__(self, seed: int = 0, num_frames: int = 8, size: int = 112, split: str = "train",
                 types: tuple[str, ...] | None = None, num_questions: int = 10 ** 7, video_frames: int = 32,
                 augment=None, weights: dict[str, int] | None = None, backgrounds: str = "muted"):
        self.config = MotionQAConfig(num_frames=video_frames, size=size, seed=seed, arrays=True, mp4=False,
                                     backgrounds=backgrounds)
        self.num_frames = check_positive_int(num_frames, "num_frames")
        self.num_questions = check_positive_int(num_questions, "num_questions")
        check_choice(split, "split", SPLITS)
        for kind in [*(types or ()), *(weights or {})]:
            check_choice(kind, "types", QUESTION_TYPES)
        weights = {kind: check_positive_int(w, f"weights[{kind!r}]") for kind, w in (weights or {}).items()}
        wanted = set(types or QUESTION_TYPES)
        self.window = PERIOD * max(weights.values(), default=1)  # videos a pass over the pattern spans
        # (video offset within a window, which of its two questions) for every question kept, in order
        self.pattern = np.array([(i, slot) for i in range(self.window) if split_of(i) == split
                                 for slot, kind in enumerate(question_types(i))
                                 if kind in wanted and i < PERIOD * weights.get(kind, 1)])
        if not len(self.pattern):
            raise ValueError(f"split {split!r} holds no question of types {sorted(wanted)}")
        self.frames = uniform_indices(video_frames, num_frames)
        self.augment = augment

    def __len__(self) -> int:
        return self.num_questions

    def locate(self, index: int) -> tuple[int, int]:
        """``(video index, question slot)`` of item ``index`` (slot 0: the motion question, 1: content)."""
        if not 0 <= index < self.num_questions:
            raise IndexError(f"index {index} out of range for {self.num_questions} questions")
        window, place = divmod(index, len(self.pattern))
        offset, slot = self.pattern[place]
        return window * self.window + int(offset), int(slot)

    def __getitem__(self, index: int) -> dict:
        video, slot = self.locate(index)
        frames, _, items = make_video(video, self.config)
        item = items[slot]
        frames = torch.from_numpy(np.ascontiguousarray(frames[self.frames]))
        question, options = item.question, list(item.options)
        if self.augment is not None:
            frames, question, options = self.augment(frames, question, options)
        return dict(frames=frames, question=question, options=options, answer=item.answer, type=item.type,
                    id=item.id, index=index)
