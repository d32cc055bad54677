"""Frames to the flat patches of a Qwen-VL vision tower, as the checkpoint's video processor makes them:
resize each frame to a multiple of ``patch_size * merge_size`` keeping its aspect ratio, with its pixels
within ``[min_pixels, max_pixels]`` (Qwen2-VL's ``smart_resize``, per frame, for Qwen2.5-VL) or the whole
video's (``video_budget``: Qwen3-VL's, over the frames rounded to temporal patches; its processor's
uncapped rule, ``cap_pixels_per_frame=False``), round to 8 bits,
rescale, normalise, repeat the last frame up to a multiple of ``temporal_patch_size``, and cut into patches
ordered ``(t, h / merge, w / merge, merge, merge)`` with ``(channel, temporal, row, column)`` inside each,
so that the tower's 2x2 merge gives tokens in raster order per temporal patch.

The settings come from the checkpoint's ``video_preprocessor_config.json`` (or ``preprocessor_config.json``).
It runs in torch: Hugging Face's Qwen-VL video processor needs torchvision, which this package does not.
The resize equals torchvision's on float frames; the official processor resizes 8-bit frames with
torchvision's 8-bit kernel, which rounds otherwise at a few pixels (on MotionQA frames at most 4 grey
levels, at 0.001% of the values more than one; tested where torchvision is installed).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .frames import CONFIG_NAMES, RESAMPLE, config_file, normalise

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PROCESSORS = {False: "Qwen2VLVideoProcessor", True: "Qwen3VLVideoProcessor"}  # by video_budget


@dataclass
class PatchTransform:
    """uint8 frames ``[T, H, W, 3]`` -> ``(patches [t * h * w, 3 * temporal_patch_size * patch_size ** 2],
    (t, h, w))``, the grid in patches (``t = ceil(T / temporal_patch_size)``)."""

    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    min_pixels: int = 128 * 28 * 28
    max_pixels: int = 768 * 28 * 28
    mean: tuple = OPENAI_CLIP_MEAN
    std: tuple = OPENAI_CLIP_STD
    rescale: float = 1 / 255
    resample: int = 3
    video_budget: bool = False

    def output_size(self, height: int, width: int, frames: int = 1) -> tuple[int, int]:
        """The frame size the tower reads for ``frames`` frames of ``height x width`` (``smart_resize``)."""
        factor = self.patch_size * self.merge_size
        if self.video_budget and min(height, width) < factor:  # Qwen3-VL scales a small frame up first
            scale = max(factor / height, factor / width)
            height, width = int(height * scale), int(width * scale)
        if max(height, width) / min(height, width) > 200:
            raise ValueError(f"frames of {height} x {width}: the aspect ratio must be below 200")
        h, w = round(height / factor) * factor, round(width / factor) * factor
        tp = self.temporal_patch_size
        count, rounded = (frames, max(1, round(frames / tp)) * tp) if self.video_budget else (1, 1)
        if rounded * h * w > self.max_pixels:
            beta = math.sqrt(count * height * width / self.max_pixels)
            h = max(factor, math.floor(height / beta / factor) * factor)
            w = max(factor, math.floor(width / beta / factor) * factor)
        elif rounded * h * w < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (count * height * width))
            h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
        return h, w

    def token_grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """The merged tokens ``(T', h, w)`` the LLM reads for ``frames`` frames of ``height x width``."""
        h, w = self.output_size(height, width, frames)
        unit = self.patch_size * self.merge_size
        return -(-frames // self.temporal_patch_size), h // unit, w // unit

    def __call__(self, frames: torch.Tensor, dtype: torch.dtype = torch.float32):
        if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8 or not len(frames):
            raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} {tuple(frames.shape)}")
        height, width = self.output_size(*frames.shape[1:3], len(frames))
        x = frames.permute(0, 3, 1, 2).float()
        if tuple(x.shape[-2:]) != (height, width):
            x = F.interpolate(x, size=(height, width), mode=RESAMPLE.get(self.resample, "bilinear"),
                              antialias=True, align_corners=False).round().clamp(0, 255)
        x = normalise(x, self.rescale, self.mean, self.std)
        if pad := -len(x) % self.temporal_patch_size:
            x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)])
        p, m, tp = self.patch_size, self.merge_size, self.temporal_patch_size
        grid = (len(x) // tp, height // p, width // p)
        x = x.view(grid[0], tp, 3, grid[1] // m, m, p, grid[2] // m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(math.prod(grid), 3 * tp * p * p).to(dtype), grid

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "PatchTransform":
        """Settings from the checkpoint's processor config (a local directory or a hub name; the video
        processor's defaults where it has none)."""
        for name in CONFIG_NAMES:
            path = config_file(directory, name)
            if path is not None:
                cfg = json.loads(Path(path).read_text())
                size = cfg.get("size") or {}
                budget = cfg.get("video_processor_type") == PROCESSORS[True]
                return cls(patch_size=cfg.get("patch_size", cls.patch_size),
                           temporal_patch_size=cfg.get("temporal_patch_size", cls.temporal_patch_size),
                           merge_size=cfg.get("merge_size", cls.merge_size),
                           min_pixels=size.get("shortest_edge", cfg.get("min_pixels", cls.min_pixels)),
                           max_pixels=size.get("longest_edge", cfg.get("max_pixels", cls.max_pixels)),
                           mean=tuple(cfg.get("image_mean", cls.mean)), std=tuple(cfg.get("image_std", cls.std)),
                           rescale=cfg.get("rescale_factor", cls.rescale), resample=cfg.get("resample", cls.resample),
                           video_budget=budget)
        return cls()

    def save_pretrained(self, directory: str | Path) -> None:
        """Write a processor config that Hugging Face's Qwen2-VL (or, with ``video_budget``, Qwen3-VL)
        video processor reads too."""
        cfg = dict(video_processor_type=PROCESSORS[self.video_budget], do_resize=True, do_rescale=True,
                   do_normalize=True,
                   size=dict(shortest_edge=self.min_pixels, longest_edge=self.max_pixels),
                   patch_size=self.patch_size, temporal_patch_size=self.temporal_patch_size,
                   merge_size=self.merge_size, image_mean=list(self.mean), image_std=list(self.std),
                   rescale_factor=self.rescale, resample=self.resample)
        (Path(directory) / CONFIG_NAMES[0]).write_text(json.dumps(cfg, indent=2))
