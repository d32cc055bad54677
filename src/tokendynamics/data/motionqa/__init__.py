"""MotionQA: generated videos of moving objects with multiple-choice questions that need content or motion.

Each video shows 1-5 objects (distinct shapes and colours, three sizes) on a textured background (muted by
default; ``backgrounds="wide"``: any level from black to white, plain ones too). One motion question and
one content question are asked about each video; the motion question's type cycles through
:data:`MOTION_TYPES` with the video index, and its answer is drawn uniformly from its five choices before
the scene is built to match, so a blind guess scores chance on every motion type. The correct option's
position is uniform over the five. Splits are fixed by the video index (``index % 10``: 8 -> val,
9 -> test, else train); everything follows from ``(seed, index)``.

    generate_motionqa("motionqa/", num_videos=1000, seed=0)   # or: tokendynamics motionqa generate ...
    motionqa/{train,val,test}.jsonl          questions (the QA format of :mod:`tokendynamics.data.qa`)
    motionqa/{train,val,test}_scenes.jsonl   the recorded objects and their tracks, per video
    motionqa/videos/{split}/{id}.mp4         (and .npz frame archives with arrays=True)
    motionqa/stats.json                      question types, answer positions and the blind prior per split

``plain_clip`` draws the simplest video a user makes (one shape crossing a plain frame) for the direction
question (``direction_question``, ``DIRECTION_ANSWERS``).
"""

from .generate import MotionQAConfig, generate_motionqa, make_scene, make_video
from .motion import SceneObject, make_track
from .questions import MOTION_QUESTIONS, MOTION_TYPES, content_question, end_quadrant, motion_scene
from .plain import PLAIN_BACKGROUNDS, plain_clip
from .render import background, render, shape_mask
from .spec import (BACKGROUNDS, COLOURS, CONTENT_TYPES, DIRECTION_ANSWERS, DIRECTIONS, MOVES, NUM_OPTIONS,
                   QUADRANTS, SHAPES, SIZES, SPLITS, STILL, direction_question, split_of)
from .stats import answer_balance, blind_accuracy, majority_answers

__all__ = ["BACKGROUNDS", "COLOURS", "CONTENT_TYPES", "DIRECTION_ANSWERS", "DIRECTIONS", "MOTION_QUESTIONS",
           "MOTION_TYPES", "MOVES", "MotionQAConfig", "NUM_OPTIONS", "PLAIN_BACKGROUNDS", "QUADRANTS", "SHAPES", "SIZES",
           "SPLITS", "STILL", "SceneObject", "answer_balance", "background", "blind_accuracy", "content_question",
           "direction_question", "end_quadrant", "generate_motionqa", "majority_answers", "make_scene", "make_track",
           "make_video", "motion_scene", "plain_clip", "render", "shape_mask", "split_of"]
