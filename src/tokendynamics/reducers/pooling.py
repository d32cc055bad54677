"""``uniform_pool``: spatio-temporal average pooling of the token grid to ``K`` cells."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..compact import CompactVideo
from .common import compact, video_tokens


def pool_grid(num_tokens: int, grid: tuple[int, int, int]) -> tuple[int, int, int]:
    """The ``(kt, kh, kw)`` output grid with ``kt * kh * kw = num_tokens`` that fits ``grid`` ``(T, H, W)``.

    Among the factorisations with each factor at most its axis, the one whose spatial aspect is closest to
    the frame's, then whose pooling cells are closest to cubes (least spread of ``log(T/kt)``, ``log(H/kh)``,
    ``log(W/kw)``). 8 tokens of a 32 x 14 x 14 grid: 2 x 2 x 2; 16: 4 x 2 x 2; 4: 4 x 1 x 1.
    """
    t, h, w = grid
    best, best_cost = None, None
    for kt in range(1, min(t, num_tokens) + 1):
        if num_tokens % kt:
            continue
        rest = num_tokens // kt
        for kh in range(1, min(h, rest) + 1):
            if rest % kh or rest // kh > w:
                continue
            kw = rest // kh
            extents = [math.log(t / kt), math.log(h / kh), math.log(w / kw)]
            cost = (round(abs(math.log(kh / kw) - math.log(h / w)), 9), max(extents) - min(extents))
            if best_cost is None or cost < best_cost:
                best, best_cost = (kt, kh, kw), cost
    if best is None:
        raise ValueError(f"num_tokens ({num_tokens}) cannot be laid out as a kt x kh x kw grid within the "
                         f"video's {t} x {h} x {w} grid; choose a product of factors no larger than those axes")
    return best


def uniform_pool(tokens: torch.Tensor, num_tokens: int, grid: tuple[int, int, int] | None = None) -> CompactVideo:
    """Average-pool ``[B, T, H, W, D]`` tokens to a ``kt x kh x kw = num_tokens`` grid (:func:`pool_grid`,
    or ``grid`` given), in raster order (time, row, column). Axes that do not divide evenly get the
    adaptive pooling windows of ``torch.nn.functional.adaptive_avg_pool3d``. -> ``[B, K, D]``.
    """
    x = video_tokens(tokens, num_tokens)
    if grid is None:
        grid = pool_grid(num_tokens, tuple(x.shape[1:4]))
    elif len(grid) != 3 or math.prod(grid) != num_tokens or any(g > s for g, s in zip(grid, x.shape[1:4])):
        raise ValueError(f"grid must be 3 factors of num_tokens ({num_tokens}) within the video's grid "
                         f"{tuple(x.shape[1:4])}, got {grid}")
    b, d = x.shape[0], x.shape[-1]
    if all(s % g == 0 for s, g in zip(x.shape[1:4], grid)):  # even windows: a mean over a view, no copy
        (kt, kh, kw), (t, h, w) = grid, x.shape[1:4]
        windows = x.view(b, kt, t // kt, kh, h // kh, kw, w // kw, d)
        return compact(windows.mean((2, 4, 6), dtype=torch.float32).reshape(b, -1, d), x)
    pooled = F.adaptive_avg_pool3d(x.float().permute(0, 4, 1, 2, 3), tuple(grid))  # [B, D, kt, kh, kw]
    return compact(pooled.flatten(2).transpose(1, 2), x)
