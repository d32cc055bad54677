"""Scenes built to answer a question: a motion question per type (its answer drawn first, uniformly, and
the scene made to match), a content question, and five options with the answer at a uniform place."""

from __future__ import annotations

from .motion import SceneObject, make_track
from .spec import (COLOURS, DIRECTION_ANSWERS, DIRECTIONS, MOVES, NUM_OPTIONS, QUADRANTS, SHAPES, SIZES,
                   direction_question)


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


def _direction(rng, frames, side):
    label = rng.choice(list(DIRECTION_ANSWERS))
    objs = _objects(rng, 1 + rng.integers(0, 3), side)
    for o in objs[1:]:
        _set(o, rng, rng.choice(["static", "straight"]), frames, side)
    if label in DIRECTIONS:
        _set(objs[0], rng, "directed", frames, side, direction=str(label))
    else:
        _set(objs[0], rng, "static", frames, side)
    others = [d for d in DIRECTION_ANSWERS if d != label]
    return objs, (direction_question(objs[0].name), str(label), others)


def _moved(rng, frames, side):
    objs = _objects(rng, 4, side)
    for i, o in enumerate(objs):
        _set(o, rng, "straight" if i == 0 else "static", frames, side)
    return objs, ("Which object moves?", objs[0].name, _name_options(rng, objs, objs[0].name))


def _entered_first(rng, frames, side):
    objs = _objects(rng, 3 + rng.integers(0, 2), side)
    first = int(rng.integers(1, max(2, frames // 4)))
    second = int(rng.integers(first + max(4, frames // 6), first + max(5, frames // 3)))
    _set(objs[0], rng, "enter", frames, side, enter_at=first)
    _set(objs[1], rng, "enter", frames, side, enter_at=second)
    for o in objs[2:]:
        _set(o, rng, "static", frames, side)
    return objs, ("Which object enters the frame first?", objs[0].name, _name_options(rng, objs, objs[0].name))


def _faster(rng, frames, side):
    objs = _objects(rng, 3 + rng.integers(0, 2), side)
    scale = side / 384
    _set(objs[0], rng, "straight", frames, side, speed=rng.uniform(5, 7) * scale)
    _set(objs[1], rng, "straight", frames, side, speed=rng.uniform(1.5, 2.5) * scale)
    for o in objs[2:]:
        _set(o, rng, "static", frames, side)
    return objs, ("Which object moves faster?", objs[0].name, _name_options(rng, objs, objs[0].name))


def _end_quadrant(rng, frames, side):
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


def _stops(rng, frames, side):
    label = str(rng.choice(list(MOVES)))
    objs = _objects(rng, 1 + rng.integers(0, 3), side)
    for o in objs[1:]:
        _set(o, rng, rng.choice(["static", "straight"]), frames, side)
    _set(objs[0], rng, MOVES[label], frames, side)
    return objs, (f"How does the {objs[0].name} move?", label, [m for m in MOVES if m != label])


MOTION_QUESTIONS = {"direction": _direction, "moved": _moved, "entered_first": _entered_first, "faster": _faster, "end_quadrant": _end_quadrant, "stops": _stops}
MOTION_TYPES = tuple(MOTION_QUESTIONS)  # the order the types cycle in


def motion_scene(rng, qtype, frames, side):
    """Objects and ``(question, answer, distractors)`` for a motion question of ``qtype``; the answer is
    drawn first, uniformly over its choices, and the scene is built to match it."""
    if qtype not in MOTION_QUESTIONS:
        raise ValueError(f"unknown motion question type {qtype!r}")
    return MOTION_QUESTIONS[qtype](rng, frames, side)


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


def options_for(rng, answer, distractors):
    """Five options with the answer at a uniform position; returns ``(options, answer_index)``."""
    others = [str(d) for d in rng.permutation(distractors)[: NUM_OPTIONS - 1]]
    position = int(rng.integers(NUM_OPTIONS))
    return others[:position] + [answer] + others[position:], position
