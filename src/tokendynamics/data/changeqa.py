"""ChangeQA: a second generated video QA set, of things that change where they stand.

MotionQA's objects move; ChangeQA's stay put and change: in size, in visibility, in colour, over scenes of
another kind (a blue sky, a sunset, grass under a sky, a starry night, a brick wall) with other shapes
(ring, cross, bar, frame). Each video has 1-3 objects and two questions: one about a change, its type
cycling with the video index through :data:`CHANGE_TYPES`, and one about the scene (:data:`SCENE_TYPES`).
As in MotionQA every answer is drawn uniformly from its five choices before the scene is built to match,
the correct option's place is uniform, splits follow the index (``index % 10``: 8 -> val, 9 -> test) and
everything follows from ``(seed, index)``.

- ``size``: "How does the size of the red ring change?" (it grows / shrinks / stays the same size / grows,
  then shrinks / shrinks, then grows).
- ``vanishes``: "How often does the red ring disappear?" (never / once / twice / three times / once, for
  good).
- ``recolour``: "What colour does the red ring turn?" (it turns once, between a quarter and three
  quarters in).

Visibility and colour change on the boundaries of eight equal **beats** (``num_frames`` is a multiple of
8): a disappearance lasts a whole beat, with a beat or more between two, and any 8 or more frames sampled
evenly over the video see every beat.
- ``scene``: "Where is this?" (the five backgrounds).

    generate_changeqa("changeqa/", num_videos=2000, seed=0, size=112, arrays=True, mp4=False)

The layout on disk is MotionQA's (:mod:`tokendynamics.data.motionqa`), so ``tokendynamics train --data``
and ``eval --data`` read it as they read MotionQA.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .motionqa.generate import MotionQAConfig
from .motionqa.questions import options_for
from .motionqa.spec import split_of
from .motionqa.writer import write_video_set
from .qa import QAItem

COLOURS = {"red": (225, 35, 35), "blue": (40, 80, 235), "yellow": (245, 220, 30), "white": (250, 250, 250),
           "black": (15, 15, 15), "green": (30, 190, 60), "magenta": (230, 50, 210)}
SHAPES = ("ring", "cross", "bar", "frame")
SCENES = ("a blue sky", "a sunset", "grass under a sky", "a starry night", "a brick wall")
CLASHES = {"a blue sky": ("blue", "white"), "a sunset": ("magenta", "yellow"), "grass under a sky": ("green", "blue"),
           "a starry night": ("black", "blue"), "a brick wall": ("red", "white")}  # colours a scene would hide
SIZE_CHANGES = ("it grows", "it shrinks", "it stays the same size", "it grows, then shrinks", "it shrinks, then grows")
VANISHES = ("never", "once", "twice", "three times", "once, for good")
BEATS = 8
CHANGE_TYPES = ("size", "vanishes", "recolour")
SCENE_TYPES = ("scene",)
RADIUS = 0.1  # the questioned object's radius as a share of the side (its size changes scale it 0.6-1.4)


class ChangeQAConfig(MotionQAConfig):
    """MotionQA's settings (:class:`~tokendynamics.data.motionqa.MotionQAConfig`: an even size >= 64, fps,
    seed, arrays, mp4), with ``num_frames`` a multiple of 8 (the beats) and at least 16."""

    def __post_init__(self):
        super().__post_init__()
        if self.backgrounds != "muted":
            raise ValueError("ChangeQA draws its own scenes: backgrounds must stay 'muted'")
        if self.num_frames % BEATS:
            raise ValueError(f"num_frames must be a multiple of {BEATS} (the beats), got {self.num_frames}")


@dataclass
class Thing:
    """An object that stands still and changes: per frame its radius in pixels, whether it shows and
    its colour."""

    shape: str
    colour: str
    x: float
    y: float
    radius: list[float] = field(default_factory=list)
    shown: list[bool] = field(default_factory=list)
    colours: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


def _palette(where: str) -> list[str]:
    """The colours an object may take in scene ``where`` (those it would not hide)."""
    return [c for c in COLOURS if c not in CLASHES[where]]


def _things(rng, n: int, frames: int, side: int, palette: list[str]) -> list[Thing]:
    """``n`` objects of distinct shapes and colours of ``palette`` at places that never overlap,
    unchanging so far."""
    shapes, colours = rng.permutation(SHAPES)[:n], rng.permutation(palette)[:n]
    cells = rng.permutation(4)[:n]  # one quadrant each: the largest object (1.4 x RADIUS) fits in one
    out = []
    for shape, colour, cell in zip(shapes, colours, cells):
        cx, cy = (0.25 + 0.5 * (cell % 2)) * side, (0.25 + 0.5 * (cell // 2)) * side
        jitter = rng.uniform(-0.06, 0.06, size=2) * side
        r = (RADIUS if not out else rng.uniform(0.6, 0.9) * RADIUS) * side
        out.append(Thing(str(shape), str(colour), float(cx + jitter[0]), float(cy + jitter[1]),
                         [r] * frames, [True] * frames, [str(colour)] * frames))
    return out


def _size(rng, frames, side, palette):
    label = SIZE_CHANGES[rng.integers(len(SIZE_CHANGES))]
    things = _things(rng, 1 + rng.integers(3), frames, side, palette)
    t = np.linspace(0, 1, frames)
    scale = {"it grows": 0.6 + 0.8 * t, "it shrinks": 1.4 - 0.8 * t, "it stays the same size": np.ones(frames),
             "it grows, then shrinks": 1.4 - 0.8 * np.abs(2 * t - 1),
             "it shrinks, then grows": 0.6 + 0.8 * np.abs(2 * t - 1)}[label]
    target = things[0]
    target.radius = (target.radius[0] * scale).round(2).tolist()
    return things, (f"How does the size of the {target.name} change?", label, [c for c in SIZE_CHANGES if c != label])


def _hidden_beats(rng, label: str) -> list[int]:
    """The beats in which the object is hidden for ``label`` (one of :data:`VANISHES`): single beats among
    1-6, never two adjacent (beats 0 and 7 show it), or every beat from one of 2-6 on ("once, for good")."""
    if label == "once, for good":
        return list(range(int(rng.integers(2, BEATS - 1)), BEATS))
    count = VANISHES.index(label)
    choices = [c for c in itertools.combinations(range(1, BEATS - 1), count)
               if all(b - a > 1 for a, b in zip(c, c[1:]))]
    return list(choices[rng.integers(len(choices))])


def _vanishes(rng, frames, side, palette):
    label = VANISHES[rng.integers(len(VANISHES))]
    things = _things(rng, 1 + rng.integers(3), frames, side, palette)
    hidden, per_beat = set(_hidden_beats(rng, label)), frames // BEATS
    things[0].shown = [t // per_beat not in hidden for t in range(frames)]
    return things, (f"How often does the {things[0].name} disappear?", label, [v for v in VANISHES if v != label])


def _recolour(rng, frames, side, palette):
    things = _things(rng, 1 + rng.integers(3), frames, side, palette)
    target = things[0]
    used = {t.colour for t in things}
    new = str(rng.choice([c for c in palette if c not in used]))
    turn = int(rng.integers(2, BEATS - 1)) * (frames // BEATS)  # on a beat's boundary, 2-6
    target.colours = [target.colour] * turn + [new] * (frames - turn)
    others = [c for c in COLOURS if c not in (new, target.colour)]
    return things, (f"What colour does the {target.name} turn?", new, others)


CHANGES = {"size": _size, "vanishes": _vanishes, "recolour": _recolour}


def _background(rng, kind: str, side: int) -> np.ndarray:
    """``uint8 [side, side, 3]``: one of :data:`SCENES`, with some variation of its own."""
    y = np.linspace(0, 1, side)[:, None, None] * np.ones((1, side, 1))
    jitter = rng.uniform(-15, 15, size=3)
    if kind == "a blue sky":
        img = (1 - y) * np.array([90, 150, 230]) + y * np.array([180, 215, 245])
    elif kind == "a sunset":
        img = (1 - y) * np.array([120, 60, 140]) + y * np.array([250, 150, 60])
    elif kind == "grass under a sky":
        horizon = rng.uniform(0.4, 0.6)
        img = np.where(y < horizon, np.array([150, 195, 240]), np.array([60, 140, 50]))
    elif kind == "a starry night":
        img = np.ones((side, side, 1)) * np.array([20, 25, 50])
        stars = rng.random((side, side)) < 0.01
        img = np.where(stars[..., None], 235.0, img)
    else:  # a brick wall
        rows = np.arange(side)[:, None] // max(4, side // 12)
        cols = (np.arange(side)[None] + (rows % 2) * max(4, side // 12)) // max(8, side // 6)
        mortar = (np.arange(side)[:, None] % max(4, side // 12) == 0) | \
                 ((np.arange(side)[None] + (rows % 2) * max(4, side // 12)) % max(8, side // 6) == 0)
        shade = (cols * 37 + rows * 11) % 25
        img = np.where(mortar[..., None], np.array([200, 195, 185]), np.array([150, 60, 45]) + shade[..., None])
    return (img + jitter).clip(0, 255).astype(np.uint8)


def _mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Pixels of ``shape`` of radius ``r`` at offsets ``(dx, dy)`` from its centre."""
    if shape == "ring":
        rho = np.hypot(dx, dy)
        return (rho <= r) & (rho >= 0.55 * r)
    if shape == "cross":
        return ((np.abs(dx) <= 0.3 * r) & (np.abs(dy) <= r)) | ((np.abs(dy) <= 0.3 * r) & (np.abs(dx) <= r))
    if shape == "bar":
        return (np.abs(dx) <= r) & (np.abs(dy) <= 0.35 * r)
    if shape == "frame":
        edge = np.maximum(np.abs(dx), np.abs(dy))
        return (edge <= r) & (edge >= 0.6 * r)
    raise ValueError(f"unknown shape {shape!r}")


def render(things: list[Thing], bg: np.ndarray) -> np.ndarray:
    """Frames ``uint8 [T, S, S, 3]``: the objects drawn over ``bg`` as each frame has them."""
    side, frames = bg.shape[0], len(things[0].radius)
    video = np.repeat(bg[None], frames, 0)
    yy, xx = np.mgrid[0:side, 0:side] + 0.5
    for thing in things:
        for t in range(frames):
            if thing.shown[t]:
                video[t][_mask(thing.shape, xx - thing.x, yy - thing.y, thing.radius[t])] = COLOURS[thing.colours[t]]
    return video


def question_types(index: int) -> tuple[str, str]:
    """The change and the scene question type of video ``index``, cycling within every split."""
    decade, place = divmod(index, 10)
    return CHANGE_TYPES[(decade + place) % len(CHANGE_TYPES)], SCENE_TYPES[0]


def make_video(index: int, config: ChangeQAConfig):
    """Video ``index``: ``(frames uint8 [T, S, S, 3], scene dict, [QAItem, QAItem])``; deterministic."""
    rng = np.random.default_rng([config.seed, index])
    split, vid = split_of(index), f"{index:06d}"
    change, scene_type = question_types(index)
    where = SCENES[rng.integers(len(SCENES))]
    things, asked = CHANGES[change](rng, config.num_frames, config.size, _palette(where))
    video = f"videos/{split}/{vid}.mp4"
    items = []
    for qtype, (question, answer, distractors) in (
            (change, asked), (scene_type, ("Where is this?", where, [s for s in SCENES if s != where]))):
        options, position = options_for(rng, answer, distractors)
        items.append(QAItem(video, question, tuple(options), position, qtype, f"{vid}-{qtype}"))
    scene = dict(id=vid, split=split, video=video, size=config.size, background=where,
                 objects=[asdict(t) for t in things])
    return render(things, _background(rng, where, config.size)), scene, items


def generate_changeqa(out_dir: str | Path, num_videos: int, seed: int = 0, num_frames: int = 32,
                      size: int = 112, fps: int = 8, arrays: bool = False, mp4: bool = True,
                      workers: int | None = None, progress: bool = True) -> dict:
    """Generate ``num_videos`` ChangeQA videos into ``out_dir`` (MotionQA's layout), on ``workers``
    processes (default: every core). Returns the statistics also written to ``stats.json``."""
    config = ChangeQAConfig(num_frames, size, fps, seed, arrays, mp4)
    return write_video_set(out_dir, make_video, config, num_videos, "ChangeQA", workers, progress)
