"""LLaVA-OneVision as a host (:class:`~.host.VideoLLM`): its public ``get_video_features`` (vision tower,
projector, 2x2 pooling) gives ``[T, h, w, D]`` tokens per video; the reducer turns them into K tokens and
the host's ``image_newline`` row follows them, as in the host's own video path. On an even patch grid the
host instance's 2x2 bilinear pooling is swapped for an exact, faster equivalent.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .frames import FrameTransform
from .host import IGNORE, Choices, VideoLLM, _groups

__all__ = ["IGNORE", "Choices", "CompressedLlavaOnevision"]


class CompressedLlavaOnevision(VideoLLM):
    """A ``LlavaOnevisionForConditionalGeneration`` whose video tokens pass through ``reducer``:
    ``CompressedLlavaOnevision.from_pretrained(path, reducer="token_dynamics", num_tokens=8)``."""

    model_types = ("llava_onevision",)
    host_class = "LlavaOnevisionForConditionalGeneration"
    added_rows = 1  # the newline row

    def __init__(self, host, tokenizer, transform: FrameTransform, reducer, recipe: dict | None = None):
        super().__init__(host, tokenizer, transform, reducer, recipe)
        cfg = host.config.vision_config
        patches = cfg.image_size // cfg.patch_size  # per side, before the host's 2x2 bilinear pooling
        self.grid = (math.ceil(patches / 2),) * 2
        if patches % 2 == 0:
            host.model.apply_pooling = _block_mean_pooling(patches)

    @classmethod
    def load_transform(cls, path: str | Path) -> FrameTransform:
        return FrameTransform.from_pretrained(path)

    @property
    def vision_tower(self) -> nn.Module:
        return self.host.model.vision_tower

    @property
    def projector(self) -> nn.Module:
        return self.host.model.multi_modal_projector

    def video_features(self, videos) -> list[torch.Tensor]:
        """Per video ``[T, h, w, D]``: the host's pooled, projected tokens (frames of equal count batched)."""
        out = [None] * len(videos)
        cfg = self.host.config
        for shape, idx in _groups([v.shape for v in videos]).items():
            pixels = self.transform(torch.stack([videos[i] for i in idx]).to(self.device), self.dtype)
            feats = self.host.model.get_video_features(
                pixels, vision_feature_layer=cfg.vision_feature_layer,
                vision_feature_select_strategy=cfg.vision_feature_select_strategy).pooler_output
            cells = shape[0] * self.grid[0] * self.grid[1]
            if feats.shape[1] == cells + 1:  # newer transformers append the newline row themselves
                feats = feats[:, :cells]
            feats = feats.reshape(len(idx), shape[0], *self.grid, -1)
            for i, f in zip(idx, feats.unbind(0)):  # one backward op (indexing each would zero-fill B copies)
                out[i] = f
        return out

    def visual_rows(self, rows: torch.Tensor, tokens=None, key=None) -> torch.Tensor:
        """The reducer's rows ``[n, D]``, then the host's newline row: ``[n + 1, D]``."""
        newline = self.host.model.image_newline
        return torch.cat([rows.to(newline.dtype), newline[None]], 0)


def _block_mean_pooling(side: int):
    """The host's video pooling for an even patch grid of ``side x side``, as a 2x2 block mean: bilinear
    interpolation to exactly half the size (``align_corners=False``) samples each output at the centre of a
    2x2 block with weights 1/4, so ``avg_pool2d`` gives the same tokens (tested), and its backward is a plain
    scatter of 1/4 instead of the atomic adds of ``upsample_bilinear2d``'s backward (slow in bf16 and not
    bit-reproducible on a GPU). ``[frames, side * side, D]`` -> ``[frames, side * side / 4, D]``."""

    def apply_pooling(features: torch.Tensor) -> torch.Tensor:
        frames, _, dim = features.shape
        grid = features.view(frames, side, side, dim).permute(0, 3, 1, 2)
        return F.avg_pool2d(grid, 2).permute(0, 2, 3, 1).reshape(frames, -1, dim)

    return apply_pooling
