"""Frames to pixel values the way the host checkpoint's processor says: resize to its size, rescale,
normalise with its mean and standard deviation.

The settings come from the checkpoint's ``video_preprocessor_config.json`` (or ``preprocessor_config.json``).
The transform itself runs in torch: Hugging Face's video processors need torchvision, which this package
does not require.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

CONFIG_NAMES = ("video_preprocessor_config.json", "preprocessor_config.json")
RESAMPLE = {2: "bilinear", 3: "bicubic"}


@dataclass
class FrameTransform:
    """uint8 frames ``[T, H, W, 3]`` (or videos ``[B, T, H, W, 3]``) -> float pixel values ``[T, 3, height,
    width]`` (``[B, T, 3, height, width]``)."""

    height: int = 384
    width: int = 384
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)
    rescale: float = 1 / 255
    resample: int = 3

    def __call__(self, frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if frames.dim() not in (4, 5) or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 [T, H, W, 3] or [B, T, H, W, 3], got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).float()
        if tuple(x.shape[-2:]) != (self.height, self.width):
            x = F.interpolate(x, size=(self.height, self.width), mode=RESAMPLE.get(self.resample, "bilinear"),
                              antialias=True, align_corners=False).clamp(0, 255)
        return normalise(x, self.rescale, self.mean, self.std).to(dtype).reshape(*lead, *x.shape[1:])

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "FrameTransform":
        """Settings from the checkpoint's processor config, a local directory or a hub name (defaults:
        LLaVA-OneVision's 384 x 384, mean and std 0.5, where it has none)."""
        for name in CONFIG_NAMES:
            path = config_file(directory, name)
            if path is not None:
                cfg = json.loads(Path(path).read_text())
                size = cfg.get("size", {})
                side = size.get("shortest_edge", 384)
                return cls(height=size.get("height", side), width=size.get("width", side),
                           mean=tuple(cfg.get("image_mean", cls.mean)), std=tuple(cfg.get("image_std", cls.std)),
                           rescale=cfg.get("rescale_factor", cls.rescale), resample=cfg.get("resample", 3))
        return cls()

    def save_pretrained(self, directory: str | Path) -> None:
        """Write a processor config that Hugging Face's LLaVA-OneVision processors read too."""
        cfg = dict(image_processor_type="LlavaOnevisionImageProcessor", do_resize=True, do_rescale=True,
                   do_normalize=True, size=dict(height=self.height, width=self.width), image_mean=list(self.mean),
                   image_std=list(self.std), rescale_factor=self.rescale, resample=self.resample)
        for name in CONFIG_NAMES:
            (Path(directory) / name).write_text(json.dumps(cfg, indent=2))

    def to_dict(self) -> dict:
        return asdict(self)


def normalise(x: torch.Tensor, rescale: float, mean, std) -> torch.Tensor:
    """Pixels ``[N, 3, H, W]`` rescaled, then normalised per channel with ``mean`` and ``std``."""
    mean = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x * rescale - mean) / std


def config_file(name_or_path: str | Path, filename: str) -> str | None:
    """The path of ``filename`` in a local checkpoint directory, or in the hub cache (downloaded if
    needed) for a hub name; None where the checkpoint has no such file."""
    local = Path(name_or_path) / filename
    if Path(name_or_path).is_dir():
        return str(local) if local.is_file() else None
    from transformers.utils import cached_file

    try:
        return cached_file(str(name_or_path), filename, _raise_exceptions_for_missing_entries=False)
    except OSError:
        return None

