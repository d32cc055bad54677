"""``dycoke``: temporal merging of tokens that repeat across frames, then pruning to ``K`` (Tao et al.,
"DyCoke: Dynamic Compression of Tokens for Fast Video Large Language Models", CVPR 2025).

Stage 1, temporal token merging (TTM): frames in windows of 4. Frame 1 of a window is compared with frame 0,
frame 2 with frame 0 and frame 3 with frame 2, cell by cell (cosine); in each compared frame only the
``(1 - merging_ratio)`` share of its cells least similar to the reference survive (the others repeat the
reference and are dropped). Frame 0 of each window keeps every cell.
Stage 2: DyCoke prunes the kept visual tokens in the LLM's KV cache by the attention the last text token
pays them, which needs the host LLM; for a fixed budget the survivors are pruned to the ``K`` most salient
by the host's ``attention [B, T, H, W]`` where given, else by the parameter-free
:func:`~tokendynamics.reducers.common.frame_saliency`. Should TTM leave fewer than ``K`` tokens, the dropped
ones least similar to their reference fill the budget.

Where this departs from the reference code, on purpose: it applies the windows of 4 to every frame, the
last window included, whatever its length. The reference's loop slips by one at the end of a video: the
third frame of the last full window is never pruned, and an odd frame count loses its last frame
altogether (so at T = 31 and T = 32 it keeps or drops a frame the paper's rule would not; at T = 30 both
agree). ``merging_ratio`` defaults to the paper's and the README's 0.7; the reference code's default is
0.3, for which pass ``merging_ratio=0.3``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..compact import CompactVideo
from .common import check_scores, compact, keep_top, video_tokens


def reference_frames(num_frames: int) -> torch.Tensor:
    """``[T]`` index of the frame each frame is compared with in TTM (-1: keeps every cell)."""
    t = torch.arange(num_frames)
    phase = t % 4
    ref = torch.where(phase == 2, t - 2, t - 1)
    return torch.where(phase == 0, -1, ref)


def temporal_redundancy(x: torch.Tensor, merging_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """TTM on ``[B, T, H, W, D]``: survives ``[B, T, H, W]`` bool and the cosine similarity of each cell to
    its reference cell (``-1`` where the frame has no reference)."""
    b, t, h, w, _ = x.shape
    ref = reference_frames(t).to(x.device)
    z = F.normalize(x.float(), dim=-1)
    sim = (z * z[:, ref.clamp_min(0)]).sum(-1).masked_fill((ref < 0).view(1, t, 1, 1), -1.0)
    keep_n = int((1 - merging_ratio) * h * w)
    rank = torch.sort(sim.flatten(2), dim=-1, stable=True).indices.argsort(dim=-1)  # 0 = least similar
    survives = (rank < keep_n).view(b, t, h, w) | (ref < 0).view(1, t, 1, 1)
    return survives, sim


def dycoke(tokens: torch.Tensor, num_tokens: int, attention: torch.Tensor | None = None,
           merging_ratio: float = 0.7) -> CompactVideo:
    """TTM then saliency pruning of ``[B, T, H, W, D]`` to ``num_tokens``, in video order. -> ``[B, K, D]``.
    merging_ratio: the share of each compared frame's cells TTM drops (DyCoke's default 0.7)."""
    x = video_tokens(tokens, num_tokens)
    if not (isinstance(merging_ratio, (int, float)) and 0 <= merging_ratio < 1):
        raise ValueError(f"merging_ratio must be a number in [0, 1), got {merging_ratio!r}")
    saliency = check_scores(attention, x)
    survives, sim = temporal_redundancy(x, merging_ratio)
    # survivors first, by saliency; then the dropped ones, least redundant first
    b = x.shape[0]
    score = torch.where(survives, saliency, -sim).reshape(b, -1)
    return compact(keep_top(x.reshape(b, -1, x.shape[-1]), score, num_tokens, survives.reshape(b, -1)), x)
