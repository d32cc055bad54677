"""Objects and their tracks: the motion kinds MotionQA simulates (bouncing, directed, stopping,
entering and leaving the frame)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .spec import DIRECTIONS


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
