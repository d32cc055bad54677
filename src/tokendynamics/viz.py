"""Pictures of what a token hash table captured: the key map laid over the video's frames, as a PNG strip
or an animated GIF (Pillow).

    frames uint8 [T, H, W, 3], key_map [T, h, w] (the table row of each grid cell of each frame)
    save_keymap_png("keymap.png", frames, key_map)   # frames on top, key map overlaid below
    save_keymap_gif("keymap.gif", frames, key_map)   # the video beside its key map
    save_weights_png("rows.png", frames, key_map, weights)  # cells lit by their row's weight [K]
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import torch


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


def _cells(shape, key_map: np.ndarray) -> np.ndarray:
    """The table row under each pixel ``[T, H, W]``: cell (i, j) of an ``h x w`` key map covers the matching
    block of pixels of a ``[T, H, W, 3]`` video."""
    _, height, width, _ = shape
    rows = (np.arange(height) * key_map.shape[1]) // height
    cols = (np.arange(width) * key_map.shape[2]) // width
    return key_map[:, rows][:, :, cols]


def keymap_overlay(frames, key_map, alpha: float = 0.55) -> np.ndarray:
    """Each frame with its cells tinted by their table row: ``uint8 [T, H, W, 3]``."""
    frames, key_map = _check(frames, key_map)
    colours = palette(int(key_map.max()) + 1)[_cells(frames.shape, key_map)]
    return (frames * (1 - alpha) + colours * alpha).round().astype(np.uint8)


def weight_overlay(frames, key_map, weights) -> np.ndarray:
    """Each frame with its cells lit by their row's weight (e.g. what an answer leaned on,
    ``CompressedLlavaOnevision.answer_attention``): the heaviest row at full brightness with a red tint,
    rows of no weight dimmed. weights: ``[K]`` per table row. -> ``uint8 [T, H, W, 3]``."""
    frames, key_map = _check(frames, key_map)
    weights = torch.as_tensor(weights, dtype=torch.float32).numpy()
    if weights.ndim != 1 or len(weights) <= key_map.max():
        raise ValueError(f"weights must be [K] with a weight for each of the key map's {key_map.max() + 1} rows, "
                         f"got shape {weights.shape}")
    heat = (weights / max(float(weights.max()), 1e-12))[_cells(frames.shape, key_map)][..., None]
    red = np.array([255, 40, 40], np.float32)
    return (frames * (0.25 + 0.45 * heat) + red * 0.3 * heat).clip(0, 255).round().astype(np.uint8)


def _strip(frames: np.ndarray, below: np.ndarray, num_frames: int) -> np.ndarray:
    """``num_frames`` evenly spaced frames in a row, ``frames`` above ``below``."""
    pick = np.linspace(0, len(frames) - 1, min(num_frames, len(frames))).round().astype(int)
    return np.concatenate([np.concatenate(frames[pick], 1), np.concatenate(below[pick], 1)], 0)


def save_keymap_png(path: str | Path, frames, key_map, num_frames: int = 8) -> Path:
    """A strip of ``num_frames`` evenly spaced frames, the video above and its key map overlaid below."""
    from PIL import Image

    frames_np, _ = _check(frames, key_map)
    Image.fromarray(_strip(frames_np, keymap_overlay(frames, key_map), num_frames)).save(path)
    return Path(path)


def save_weights_png(path: str | Path, frames, key_map, weights, num_frames: int = 8) -> Path:
    """A strip of ``num_frames`` evenly spaced frames, the video above and the rows' weights below
    (:func:`weight_overlay`)."""
    from PIL import Image

    frames_np, _ = _check(frames, key_map)
    Image.fromarray(_strip(frames_np, weight_overlay(frames, key_map, weights), num_frames)).save(path)
    return Path(path)


def save_keymap_gif(path: str | Path, frames, key_map, fps: int = 8) -> Path:
    """An animated GIF: each frame beside its key-map overlay."""
    from PIL import Image

    frames_np, _ = _check(frames, key_map)
    pairs = np.concatenate([frames_np, keymap_overlay(frames, key_map)], 2)
    images = [Image.fromarray(p) for p in pairs]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return Path(path)
