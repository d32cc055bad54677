"""The simplest video a user makes: one coloured shape crossing a plain frame, or standing at its centre.

    clip = torch.from_numpy(plain_clip("square", "red", "left", "white"))      # uint8 [48, 224, 224, 3]
    model.choose([clip[uniform_indices(len(clip), 8)]], [direction_question("red square")],
                 [list(DIRECTION_ANSWERS)])                                    # answers "left"

MotionQA's shapes and colours, drawn as MotionQA draws them, on a plain background of three levels; the
direction question and its five answers are MotionQA's own (:mod:`.spec`).
"""

from __future__ import annotations

import numpy as np

from ..._checks import check_choice, check_positive_int
from .render import shape_mask
from .spec import COLOURS, DIRECTION_ANSWERS, DIRECTIONS, SHAPES

PLAIN_BACKGROUNDS = {"white": (235, 235, 235), "grey": (128, 128, 128), "black": (20, 20, 20)}


def plain_clip(shape: str, colour: str, motion: str, background: str, size: int = 224,
               frames: int = 48) -> np.ndarray:
    """``uint8 [frames, size, size, 3]``: one ``shape`` of ``colour`` (radius 8% of the side) on a plain
    ``background`` (:data:`PLAIN_BACKGROUNDS`), crossing the middle 40% of the frame in ``motion``'s
    direction (one of :data:`~.spec.DIRECTION_ANSWERS`; "it does not move": standing at the centre)."""
    check_choice(shape, "shape", SHAPES)
    check_choice(colour, "colour", COLOURS)
    check_choice(motion, "motion", DIRECTION_ANSWERS)
    check_choice(background, "background", PLAIN_BACKGROUNDS)
    size, frames = check_positive_int(size, "size"), check_positive_int(frames, "frames")
    radius, (dx, dy) = 0.08 * size, DIRECTIONS.get(motion, (0.0, 0.0))
    travel = np.linspace(-0.2, 0.2, frames) * size
    yy, xx = np.mgrid[:size, :size] + 0.5
    video = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        x, y = size / 2 + dx * travel[t], size / 2 + dy * travel[t]
        video[t] = PLAIN_BACKGROUNDS[background]
        video[t][shape_mask(shape, xx - x, yy - y, radius)] = COLOURS[colour]
    return video
