"""MotionQA: generated videos of moving objects with multiple-choice questions that need content or motion.

Each video shows 1-5 objects (distinct shapes and colours, three sizes) on a textured background. One motion
question and one content question are asked about each video; the motion question's type cycles through
:data:`MOTION_TYPES` with the video index, and its answer is drawn uniformly from its five choices before
the scene is built to match, so a blind guess scores chance on every motion type. The correct option's
position is uniform over the five. Splits are fixed by the video index (``index % 10``: 8 -> val,
9 -> test, else train); everything follows from ``(seed, index)``.

    generate_motionqa("motionqa/", num_videos=1000, seed=0)   # or: tokendynamics motionqa generate ...
    motionqa/{train,val,test}.jsonl          questions (the QA format of :mod:`tokendynamics.data.qa`)
    motionqa/{train,val,test}_scenes.jsonl   the recorded objects and their tracks, per video
    motionqa/videos/{split}/{id}.mp4         (and .npz frame archives with arrays=True)
    motionqa/stats.json                      question types, answer positions and the blind prior per split
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import Progress

from .._checks import check_positive_int
from .qa import QAItem, write_qa
from .video import write_video

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 90, 230), "yellow": (240, 210, 40),
           "purple": (150, 60, 200), "orange": (245, 140, 30), "cyan": (40, 200, 210), "white": (250, 250, 250)}
SHAPES = ("circle", "square", "triangle", "diamond", "star")
SIZES = {"small": 0.05, "medium": 0.07, "large": 0.09}  # radius as a share of the frame side
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
MOVES = {"it keeps moving": "straight", "it stops and stays still": "stop", "it stops, then moves again": "stop_go",
         "it never moves": "static", "it moves out of the frame": "leave"}
CONTENT_TYPES = ("colour", "shape", "count")
MOTION_TYPES = ("direction", "moved", "entered_first", "faster", "end_quadrant", "stops")
SPLITS = ("train", "val", "test")
NUM_OPTIONS = 5


def split_of(index: int) -> str:
    """The fixed split of video ``index``."""
    return {8: "val", 9: "test"}.get(index % 10, "train")


@dataclass
class SceneObject:
    """One object: ``track`` holds its centre ``(x, y)`` in pixels per frame; it is on screen in frame t
    when any part of it is (its centre within ``radius`` of the frame)."""

    shape: str
    colour: str
    size: str
    radius: float
    kind: str
    track: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    def visible(self, side: int) -> np.ndarray:
        p = np.asarray(self.track)
        return np.all((p > -self.radius) & (p < side + self.radius), axis=1)


# ---------------------------------------------------------------- motion


def _simulate(p0, v, moving, side, r, bounce=True):
    """Centre track ``[T, 2]`` from ``p0`` moving by ``v`` on the frames where ``moving``; with ``bounce``,
    it reflects off the walls once wholly inside."""
    p, v, track = np.array(p0, float), np.array(v, float), []
    for t, step in enumerate(moving):
        if t and step:
            p = p + v
            if bounce:
                for axis in range(2):
                    lo, hi = r, side - r
                    if p[axis] < lo and v[axis] < 0 or p[axis] > hi and v[axis] > 0:
                        if lo <= p[axis] - v[axis] <= hi:  # it was inside: reflect
                            p[axis] = 2 * (lo if p[axis] < lo else hi) - p[axis]
                            v[axis] = -v[axis]
        track.append(p.copy())
    return np.array(track)


def _inside(rng, side, r):
    return rng.uniform(r, side - r, size=2)


def _velocity(rng, speed):
    angle = rng.uniform(0, 2 * np.pi)
    return speed * np.array([np.cos(angle), np.sin(angle)])


def make_track(rng, kind, frames, side, r, speed=None, direction=None, enter_at=None):
    """A centre track ``[T, 2]`` of one motion ``kind``: static, straight (bounces), directed (straight
    along ``direction`` without reaching a wall), stop (moves, then stays), stop_go (moves, pauses, moves),
    enter (comes in over an edge at frame ``enter_at``), leave (goes out over an edge and stays out)."""
    speed = speed if speed is not None else rng.uniform(3, 6) * side / 384
    always = np.ones(frames, bool)
    if kind == "static":
        return np.repeat(_inside(rng, side, r)[None], frames, 0)
    if kind == "straight":
        return _simulate(_inside(rng, side, r), _velocity(rng, speed), always, side, r)
    if kind == "directed":
        v = speed * np.array(DIRECTIONS[direction])
        travel = np.abs(v) * (frames - 1)
        lo = r + np.where(v < 0, travel, 0)
        hi = side - r - np.where(v > 0, travel, 0)
        return _simulate(rng.uniform(lo, hi), v, always, side, r)
    if kind in ("stop", "stop_go"):
        moving = always.copy()
        if kind == "stop":
            moving[rng.integers(frames // 4, frames // 2 + 1):] = False
        else:
            start = rng.integers(frames // 4, frames // 2)
            moving[start:start + max(4, frames // 4)] = False
        return _simulate(_inside(rng, side, r), _velocity(rng, speed), moving, side, r)
    if kind in ("enter", "leave"):
        axis, sign = rng.integers(2), rng.choice([-1.0, 1.0])  # sign: direction of travel on that axis
        v = np.zeros(2)
        v[axis] = sign * speed
        v[1 - axis] = rng.uniform(-0.3, 0.3) * speed
        cross = enter_at if kind == "enter" else rng.integers(frames // 3, frames - 4)
        edge = np.zeros(2)  # enter: the first pixel shows at frame `cross`; leave: the last pixel goes
        outside_low = (sign > 0) == (kind == "enter")
        edge[axis] = -r if outside_low else side + r
        edge[1 - axis] = rng.uniform(side * 0.25, side * 0.75)
        # an entering object bounces once wholly inside (the walls reflect only what was inside)
        return _simulate(edge - v * cross, v, always, side, r, bounce=kind == "enter")
    raise ValueError(f"unknown motion kind {kind!r}")


# ---------------------------------------------------------------- scenes and questions


def _objects(rng, n, side):
    """``n`` objects with distinct shapes and colours and random sizes (tracks filled in later)."""
    shapes = rng.permutation(SHAPES)[:n]
    colours = rng.permutation(list(COLOURS))[:n]
    sizes = rng.choice(list(SIZES), size=n)
    return [SceneObject(str(s), str(c), str(z), SIZES[z] * side, "") for s, c, z in zip(shapes, colours, sizes)]


def _set(obj, rng, kind, frames, side, **kw):
    obj.kind = str(kind)
    obj.track = make_track(rng, kind, frames, side, obj.radius, **kw).round(2).tolist()


def _absent_names(rng, objects, count):
    """``count`` object names (colour + shape) of objects that are not in the scene."""
    present_c, present_s = {o.colour for o in objects}, {o.shape for o in objects}
    names = set()
    while len(names) < count:
        c, s = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        if c not in present_c or s not in present_s:
            names.add(f"{c} {s}")
    return sorted(names)


def _name_options(rng, objects, answer):
    names = [o.name for o in objects if o.name != answer][: NUM_OPTIONS - 1]
    return names + _absent_names(rng, objects, NUM_OPTIONS - 1 - len(names))


def motion_scene(rng, qtype, frames, side):
    """Objects and ``(question, answer, distractors)`` for a motion question of ``qtype``; the answer is
    drawn first, uniformly over its choices, and the scene is built to match it."""
    if qtype == "direction":
        label = rng.choice(list(DIRECTIONS) + ["it does not move"])
        objs = _objects(rng, 1 + rng.integers(0, 3), side)
        for o in objs[1:]:
            _set(o, rng, rng.choice(["static", "straight"]), frames, side)
        if label in DIRECTIONS:
            _set(objs[0], rng, "directed", frames, side, direction=str(label))
        else:
            _set(objs[0], rng, "static", frames, side)
        others = [d for d in list(DIRECTIONS) + ["it does not move"] if d != label]
        return objs, (f"In which direction does the {objs[0].name} move?", str(label), others)
    if qtype == "moved":
        objs = _objects(rng, 4, side)
        for i, o in enumerate(objs):
            _set(o, rng, "straight" if i == 0 else "static", frames, side)
        return objs, ("Which object moves?", objs[0].name, _name_options(rng, objs, objs[0].name))
    if qtype == "entered_first":
        objs = _objects(rng, 3 + rng.integers(0, 2), side)
        first = int(rng.integers(1, max(2, frames // 4)))
        second = int(rng.integers(first + max(4, frames // 6), first + max(5, frames // 3)))
        _set(objs[0], rng, "enter", frames, side, enter_at=first)
        _set(objs[1], rng, "enter", frames, side, enter_at=second)
        for o in objs[2:]:
            _set(o, rng, "static", frames, side)
        return objs, ("Which object enters the frame first?", objs[0].name, _name_options(rng, objs, objs[0].name))
    if qtype == "faster":
        objs = _objects(rng, 3 + rng.integers(0, 2), side)
        scale = side / 384
        _set(objs[0], rng, "straight", frames, side, speed=rng.uniform(5, 7) * scale)
        _set(objs[1], rng, "straight", frames, side, speed=rng.uniform(1.5, 2.5) * scale)
        for o in objs[2:]:
            _set(o, rng, "static", frames, side)
        return objs, ("Which object moves faster?", objs[0].name, _name_options(rng, objs, objs[0].name))
    if qtype == "end_quadrant":
        label = str(rng.choice(list(QUADRANTS) + ["it has left the frame"]))
        objs = _objects(rng, 1 + rng.integers(0, 3), side)
        for o in objs[1:]:
            _set(o, rng, rng.choice(["static", "straight"]), frames, side)
        if label in QUADRANTS:
            while True:  # rejection: a bouncing track that ends clearly inside the chosen quadrant
                _set(objs[0], rng, "straight", frames, side)
                if end_quadrant(objs[0], side) == label:
                    break
        else:
            _set(objs[0], rng, "leave", frames, side)
        others = [q for q in list(QUADRANTS) + ["it has left the frame"] if q != label]
        return objs, (f"Where is the {objs[0].name} at the end of the video?", label, others)
    if qtype == "stops":
        label = str(rng.choice(list(MOVES)))
        objs = _objects(rng, 1 + rng.integers(0, 3), side)
        for o in objs[1:]:
            _set(o, rng, rng.choice(["static", "straight"]), frames, side)
        _set(objs[0], rng, MOVES[label], frames, side)
        return objs, (f"How does the {objs[0].name} move?", label, [m for m in MOVES if m != label])
    raise ValueError(f"unknown motion question type {qtype!r}")


def end_quadrant(obj: SceneObject, side: int) -> str | None:
    """Where the object is in the last frame: the quadrant of its centre, ``"it has left the frame"``, or
    None where the centre is within 5% of a midline (ambiguous)."""
    if not obj.visible(side)[-1]:
        return "it has left the frame"
    x, y = obj.track[-1]
    if min(abs(x - side / 2), abs(y - side / 2)) < 0.05 * side:
        return None
    return f"{'top' if y < side / 2 else 'bottom'} {'left' if x < side / 2 else 'right'}"


def content_question(rng, qtype, objs):
    """``(question, answer, distractors)`` about what is in the video."""
    target = objs[int(rng.integers(len(objs)))]
    if qtype == "colour":
        others = [c for c in rng.permutation(list(COLOURS)) if c != target.colour][: NUM_OPTIONS - 1]
        return f"What colour is the {target.shape}?", target.colour, [str(c) for c in others]
    if qtype == "shape":
        return (f"What shape is the {target.colour} object?", target.shape,
                [s for s in SHAPES if s != target.shape])
    count = str(len(objs))
    return "How many objects appear in the video?", count, [str(n) for n in range(1, 6) if str(n) != count]


def _options(rng, answer, distractors):
    """Five options with the answer at a uniform position; returns ``(options, answer_index)``."""
    others = [str(d) for d in rng.permutation(distractors)[: NUM_OPTIONS - 1]]
    position = int(rng.integers(NUM_OPTIONS))
    return others[:position] + [answer] + others[position:], position


# ---------------------------------------------------------------- pictures


def background(rng, side):
    """A muted texture ``uint8 [side, side, 3]``: smooth noise, stripes or a checkerboard."""
    base = rng.uniform(70, 150, size=3)
    kind = rng.integers(3)
    yy, xx = np.mgrid[0:side, 0:side] / side
    if kind == 0:
        coarse = rng.normal(size=(8, 8))
        idx = np.minimum((yy * 7).astype(int), 6), np.minimum((xx * 7).astype(int), 6)
        fy, fx = yy * 7 - idx[0], xx * 7 - idx[1]
        c = coarse
        tex = (c[idx[0], idx[1]] * (1 - fy) * (1 - fx) + c[idx[0] + 1, idx[1]] * fy * (1 - fx)
               + c[idx[0], idx[1] + 1] * (1 - fy) * fx + c[idx[0] + 1, idx[1] + 1] * fy * fx)
    elif kind == 1:
        angle, freq = rng.uniform(0, np.pi), rng.uniform(6, 14)
        tex = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    else:
        cells = rng.integers(4, 9)
        tex = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2) * 2 - 1.0
    img = base + 18 * tex[..., None] * rng.uniform(0.6, 1.0, size=3)
    return img.clip(0, 255).astype(np.uint8)


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Pixels of ``shape`` of radius ``r`` at offsets ``(dx, dy)`` from its centre."""
    if shape == "circle":
        return dx ** 2 + dy ** 2 <= r ** 2
    if shape == "square":
        return (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    if shape == "triangle":
        return (dy <= 0.75 * r) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if shape == "star":
        rho, theta = np.hypot(dx, dy), np.arctan2(dy, dx) - np.pi / 2
        return rho <= r * (0.62 + 0.38 * np.cos(5 * theta))
    raise ValueError(f"unknown shape {shape!r}")


def render(objects, bg: np.ndarray) -> np.ndarray:
    """Frames ``uint8 [T, S, S, 3]``: the objects drawn over ``bg`` in list order."""
    side, frames = bg.shape[0], len(objects[0].track)
    video = np.repeat(bg[None], frames, 0)
    for o in objects:
        r = o.radius
        for t, (x, y) in enumerate(o.track):
            x0, x1 = max(0, int(x - r) - 1), min(side, int(x + r) + 2)
            y0, y1 = max(0, int(y - r) - 1), min(side, int(y + r) + 2)
            if x0 >= x1 or y0 >= y1:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1]
            mask = shape_mask(o.shape, xx + 0.5 - x, yy + 0.5 - y, r)
            video[t, y0:y1, x0:x1][mask] = COLOURS[o.colour]
    return video


# ---------------------------------------------------------------- generation


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


def make_scene(index: int, config: MotionQAConfig):
    """Scene ``index`` without its pictures: ``(rng, objects, scene dict, [QAItem, QAItem])``; the rng,
    advanced past the questions, then draws the pictures (:func:`make_video`)."""
    rng = np.random.default_rng([config.seed, index])
    split, vid = split_of(index), f"{index:06d}"
    decade, place = divmod(index, 10)  # types cycle within every split (a split is a place in the decade)
    mtype = MOTION_TYPES[(decade + place) % len(MOTION_TYPES)]
    ctype = CONTENT_TYPES[(decade // len(MOTION_TYPES) + place) % len(CONTENT_TYPES)]
    objs, motion = motion_scene(rng, mtype, config.num_frames, config.size)
    content = content_question(rng, ctype, objs)
    video = f"videos/{split}/{vid}.mp4"
    items = []
    for qtype, (question, answer, distractors) in ((mtype, motion), (ctype, content)):
        options, position = _options(rng, answer, distractors)
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


def answer_balance(positions) -> dict:
    """Tally of the correct options' positions; ``chi2`` against uniform (df = 4; above 18.47 is
    p < 0.001, reported as unbalanced)."""
    counts = Counter(positions)
    n = sum(counts.values())
    expected = n / NUM_OPTIONS
    chi2 = sum((counts.get(i, 0) - expected) ** 2 / expected for i in range(NUM_OPTIONS)) if n else 0.0
    return dict(positions=[counts.get(i, 0) for i in range(NUM_OPTIONS)], chi2=round(chi2, 3),
                balanced=bool(chi2 < 18.47))


def majority_answers(items) -> dict[str, str]:
    """The most common correct option text per question type (a blind guesser's best rule)."""
    counts: dict[str, Counter] = {}
    for item in items:
        counts.setdefault(item.type, Counter())[item.options[item.answer]] += 1
    return {t: c.most_common(1)[0][0] for t, c in counts.items()}


def blind_accuracy(items, prior: dict[str, str]) -> dict[str, float]:
    """Accuracy per type of answering every question with the train split's most common answer for its
    type (where it is among the options; else a wrong guess): the prior a model could learn without
    looking. Chance is 0.2."""
    hits: dict[str, list[bool]] = {}
    for item in items:
        hits.setdefault(item.type, []).append(item.options[item.answer] == prior.get(item.type))
    return {t: round(sum(h) / len(h), 3) for t, h in sorted(hits.items())}


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
