"""Pictures: textured backgrounds and the objects drawn over them."""

from __future__ import annotations

import numpy as np

from ..._checks import check_choice
from .spec import BACKGROUNDS, COLOURS

FAR = 120  # a "wide" background's least RGB distance from every object colour of its scene


def background(rng, side, style: str = "muted", avoid=()):
    """A background ``uint8 [side, side, 3]``: smooth noise, stripes or a checkerboard; ``style`` (one of
    :data:`~.spec.BACKGROUNDS`) "muted" keeps its channels within 70-150, "wide" takes any level and may be
    plain, its base colour at least :data:`FAR` from every colour of ``avoid`` (the scene's objects: they
    stay visible), where 16 draws find one."""
    base = _base(rng, style, np.asarray(avoid, dtype=float).reshape(-1, 3))
    kind = rng.integers(4 if style == "wide" else 3)
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
    elif kind == 2:
        cells = rng.integers(4, 9)
        tex = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2) * 2 - 1.0
    else:  # plain
        tex = np.zeros_like(xx)
    img = base + 18 * tex[..., None] * rng.uniform(0.6, 1.0, size=3)
    return img.clip(0, 255).astype(np.uint8)


def _base(rng, style: str, avoid: np.ndarray) -> np.ndarray:
    """A background's base colour ``[3]`` for ``style``, away from the colours ``avoid`` ``[n, 3]``."""
    check_choice(style, "backgrounds", BACKGROUNDS)
    if style == "muted":
        return rng.uniform(70, 150, size=3)
    for _ in range(16):
        base = rng.uniform(0, 255, size=3)
        if not len(avoid) or np.linalg.norm(avoid - base, axis=1).min() >= FAR:
            break
    return base


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
