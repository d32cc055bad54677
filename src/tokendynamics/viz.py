"""Pictures of what a token hash table captured, readable without the README (Pillow).

    frames uint8 [T, H, W, 3], key_map [T, h, w] (the table row of each grid cell of each frame)
    save_keymap_png("keymap.png", frames, key_map)   # frames above, their cells coloured by row below
    save_keymap_gif("keymap.gif", frames, key_map)   # the video beside its key map
    save_weights_png("rows.png", frames, key_map, weights)  # cells lit by their row's weight [K]

Every picture has numbered, bordered frames, a cell grid, a legend of the rows it colours and a caption.
Rows that move over the video (the moving objects) get their own colour; the others (the background, and
objects that stand still) are drawn grey, so the few rows that carry motion stand out.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import torch

TILE = 160  # pixels per frame side in the pictures
GREY = np.array([150, 150, 150], np.uint8)


def palette(n: int) -> np.ndarray:
    """``n`` distinct colours ``uint8 [n, 3]`` (hues spread by the golden ratio)."""
    hues = (np.arange(n) * 0.6180339887) % 1.0
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb(h, 0.75, 0.95)] for h in hues], np.uint8)


def _check(frames, key_map):
    frames, key_map = torch.as_tensor(frames), torch.as_tensor(key_map)
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    if key_map.dim() != 3 or key_map.shape[0] != frames.shape[0]:
        raise ValueError(f"key_map must be [T, h, w] with T = {frames.shape[0]}, got {tuple(key_map.shape)}")
    return frames.numpy(), key_map.long().numpy()


def moving_rows(key_map, cells: float = 1.0) -> list[int]:
    """The rows of a key map ``[T, h, w]`` that move: whose centre (the mean of their cells, in frames where
    they have any) gets ``cells`` or more grid cells away from where it first was. A background row only
    shifts a little as objects pass over it."""
    key_map = np.asarray(key_map)
    ys, xs = np.mgrid[0:key_map.shape[1], 0:key_map.shape[2]]
    moving = []
    for r in np.unique(key_map):
        centres = [(ys[f == r].mean(), xs[f == r].mean()) for f in key_map if (f == r).any()]
        if max(np.hypot(y - centres[0][0], x - centres[0][1]) for y, x in centres) >= cells:
            moving.append(int(r))
    return moving


def row_colours(key_map) -> np.ndarray:
    """A colour per row ``uint8 [K, 3]``: its own for the rows that move (:func:`moving_rows`), grey for
    the others."""
    key_map = np.asarray(key_map)
    colours = np.repeat(GREY[None], int(key_map.max()) + 1, 0)
    moving = moving_rows(key_map)
    colours[moving] = palette(len(moving))
    return colours


def _cells(shape, key_map: np.ndarray) -> np.ndarray:
    """The table row under each pixel ``[T, H, W]``: cell (i, j) of an ``h x w`` key map covers the matching
    block of pixels of a ``[T, H, W, 3]`` video."""
    _, height, width, _ = shape
    rows = (np.arange(height) * key_map.shape[1]) // height
    cols = (np.arange(width) * key_map.shape[2]) // width
    return key_map[:, rows][:, :, cols]


def keymap_overlay(frames, key_map, alpha: float = 0.6) -> np.ndarray:
    """Each frame with its cells tinted by their row (:func:`row_colours`): ``uint8 [T, H, W, 3]``."""
    frames, key_map = _check(frames, key_map)
    colours = row_colours(key_map)[_cells(frames.shape, key_map)]
    return (frames * (1 - alpha) + colours * alpha).round().astype(np.uint8)


def weight_overlay(frames, key_map, weights) -> np.ndarray:
    """Each frame with its cells lit by their row's weight (e.g. what an answer leaned on,
    ``VideoLLM.answer_attention``): the heaviest row at full brightness with a red tint, rows of no weight
    dimmed. weights: ``[K]`` per table row. -> ``uint8 [T, H, W, 3]``."""
    frames, key_map = _check(frames, key_map)
    weights = _weights(weights, key_map)
    heat = (weights / max(float(weights.max()), 1e-12))[_cells(frames.shape, key_map)][..., None]
    red = np.array([255, 40, 40], np.float32)
    return (frames * (0.25 + 0.45 * heat) + red * 0.3 * heat).clip(0, 255).round().astype(np.uint8)


def _weights(weights, key_map: np.ndarray) -> np.ndarray:
    weights = torch.as_tensor(weights, dtype=torch.float32).numpy()
    if weights.ndim != 1 or len(weights) <= key_map.max():
        raise ValueError(f"weights must be [K] with a weight for each of the key map's {key_map.max() + 1} rows, "
                         f"got shape {weights.shape}")
    return weights


# ---------------------------------------------------------------- figures


def _font(size: int = 14):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _tile(image: np.ndarray, grid: tuple[int, int] | None):
    """One frame ``[H, W, 3]`` scaled to :data:`TILE` wide, with the key map's cell grid drawn on it."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    tile = Image.fromarray(image).resize((TILE, max(1, round(TILE * h / w))), Image.NEAREST)
    if grid is not None:
        draw = ImageDraw.Draw(tile)
        for i in range(1, grid[0]):
            y = round(i * tile.height / grid[0])
            draw.line([(0, y), (tile.width, y)], fill=(255, 255, 255), width=1)
        for j in range(1, grid[1]):
            x = round(j * tile.width / grid[1])
            draw.line([(x, 0), (x, tile.height)], fill=(255, 255, 255), width=1)
    return tile


def _figure(rows: list[tuple[str, list]], numbers: list[int], legend: list[tuple[np.ndarray, str]],
            caption: str):
    """Rows of tiles (each row labelled), the frame numbers above them, a legend of swatches and a caption."""
    from PIL import Image, ImageDraw

    gap, label_w, font = 6, 86, _font(14)
    tile_h = rows[0][1][0].height
    width = label_w + len(numbers) * (TILE + gap) + gap
    legend_lines = max(1, -(-len(legend) // 4))
    height = 24 + len(rows) * (tile_h + gap) + 22 * legend_lines + 46
    page = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    for i, t in enumerate(numbers):
        draw.text((label_w + gap + i * (TILE + gap), 4), f"frame {t}", fill=(0, 0, 0), font=font)
    for r, (label, tiles) in enumerate(rows):
        y = 24 + r * (tile_h + gap)
        draw.text((4, y + tile_h // 2 - 8), label, fill=(0, 0, 0), font=font)
        for i, tile in enumerate(tiles):
            x = label_w + gap + i * (TILE + gap)
            page.paste(tile, (x, y))
            draw.rectangle([x - 1, y - 1, x + tile.width, y + tile.height], outline=(0, 0, 0))
    y = 24 + len(rows) * (tile_h + gap) + 4
    for n, (colour, text) in enumerate(legend):
        x = 4 + (n % 4) * ((width - 8) // 4)
        top = y + (n // 4) * 22
        draw.rectangle([x, top + 2, x + 14, top + 16], fill=tuple(int(c) for c in colour), outline=(0, 0, 0))
        draw.text((x + 20, top + 1), text, fill=(0, 0, 0), font=font)
    draw.multiline_text((4, y + 22 * legend_lines + 4), caption, fill=(60, 60, 60), font=_font(13))
    return page


def _picked(frames: np.ndarray, num_frames: int) -> np.ndarray:
    return np.linspace(0, len(frames) - 1, min(num_frames, len(frames))).round().astype(int)


def keymap_figure(frames, key_map, num_frames: int = 8, caption: str | None = None):
    """A labelled picture (PIL image) of ``num_frames`` evenly spaced frames: the video above, its cells
    coloured by table row below, a legend of the moving rows and a caption."""
    frames_np, keys = _check(frames, key_map)
    pick, grid = _picked(frames_np, num_frames), keys.shape[1:]
    over = keymap_overlay(frames, key_map)
    colours, moving = row_colours(keys), moving_rows(keys)
    share = {r: float((keys == r).mean()) for r in range(int(keys.max()) + 1)}
    legend = [(colours[r], f"row {r}: {100 * share[r]:.0f}% of cells") for r in moving]
    legend.append((GREY, f"{int(keys.max()) + 1 - len(moving)} rows that stay put"))
    text = caption or (f"Key map: which of the table's {int(keys.max()) + 1} rows each of the {grid[0]} x {grid[1]} "
                       f"cells of each frame belongs to.\nColoured: rows that move (a moving object); grey: rows "
                       f"that stay put (the background, still objects).")
    return _figure([("video", [_tile(frames_np[t], None) for t in pick]),
                    ("key map", [_tile(over[t], grid) for t in pick])], [int(t) for t in pick], legend, text)


def weights_figure(frames, key_map, weights, num_frames: int = 8, caption: str | None = None):
    """A labelled picture (PIL image): the video above, its cells lit by their row's weight below
    (:func:`weight_overlay`), the three heaviest rows in the legend and a caption."""
    frames_np, keys = _check(frames, key_map)
    w = _weights(weights, keys)
    pick, grid = _picked(frames_np, num_frames), keys.shape[1:]
    lit = weight_overlay(frames, key_map, weights)
    top = [int(r) for r in np.argsort(-w)[:3]]
    heat = np.array([255, 40, 40], np.float32)
    legend = [((heat * w[r] / max(float(w.max()), 1e-12)).astype(np.uint8),
               f"row {r}: {100 * w[r] / max(float(w.sum()), 1e-12):.0f}%, {100 * float((keys == r).mean()):.0f}% of cells")
              for r in top]
    text = caption or ("Where the answer looked: each cell lit by the attention the LLM paid to its table row "
                       "while reading the answer\n(red and bright: most; dark: none). Legend: the three rows it "
                       "leaned on most, their share of that attention and of the cells.")
    return _figure([("video", [_tile(frames_np[t], None) for t in pick]),
                    ("attention", [_tile(lit[t], grid) for t in pick])], [int(t) for t in pick], legend, text)


def save_keymap_png(path: str | Path, frames, key_map, num_frames: int = 8, caption: str | None = None) -> Path:
    """:func:`keymap_figure` as a PNG."""
    keymap_figure(frames, key_map, num_frames, caption).save(path)
    return Path(path)


def save_weights_png(path: str | Path, frames, key_map, weights, num_frames: int = 8,
                     caption: str | None = None) -> Path:
    """:func:`weights_figure` as a PNG."""
    weights_figure(frames, key_map, weights, num_frames, caption).save(path)
    return Path(path)


def save_keymap_gif(path: str | Path, frames, key_map, fps: int = 8) -> Path:
    """An animated GIF: each frame (numbered) beside its key map, at :data:`TILE` pixels a side."""
    from PIL import Image, ImageDraw

    frames_np, keys = _check(frames, key_map)
    over = keymap_overlay(frames, key_map)
    images = []
    for t in range(len(frames_np)):
        left, right = _tile(frames_np[t], None), _tile(over[t], keys.shape[1:])
        pair = Image.new("RGB", (left.width * 2 + 4, left.height + 20), (255, 255, 255))
        pair.paste(left, (0, 20))
        pair.paste(right, (left.width + 4, 20))
        ImageDraw.Draw(pair).text((4, 2), f"frame {t}   (right: cells coloured by table row)", fill=(0, 0, 0),
                                  font=_font(13))
        images.append(pair)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return Path(path)
