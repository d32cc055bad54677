"""Pieces every reducer shares: input checks, keeping the top-scored tokens in video order, size-weighted
merges, and a parameter-free saliency for hosts whose attention maps are not at hand.

Shapes: ``B`` videos of ``T`` frames of ``P = H * W`` grid cells, ``N = T * P`` tokens of width ``D``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_positive_int, check_video_tokens
from ..compact import CompactVideo
from .._tensors import take


def video_tokens(tokens: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Check a reducer's input and return it as ``[B, T, H, W, D]``; ``num_tokens`` must be at most the
    video's token count ``N``."""
    x = check_video_tokens(tokens)
    check_positive_int(num_tokens, "num_tokens")
    n = x.shape[1] * x.shape[2] * x.shape[3]
    if num_tokens > n:
        raise ValueError(f"num_tokens ({num_tokens}) must be at most the video's token count T*H*W = {n}")
    return x


def compact(kept: torch.Tensor, like: torch.Tensor) -> CompactVideo:
    """Wrap ``kept`` ``[B, K, D]`` as a ``CompactVideo`` (every row valid) in ``like``'s dtype."""
    mask = torch.ones(kept.shape[:2], dtype=torch.bool, device=kept.device)
    return CompactVideo(kept.to(like.dtype), mask)


def top_in_order(scores: torch.Tensor, k: int, first: torch.Tensor | None = None) -> torch.Tensor:
    """Indices ``[B, k]`` of the ``k`` highest ``scores`` ``[B, N]``, in increasing index (video) order.
    first: ``[B, N]`` bool, tokens ranked above all others whatever their score. Ties go to the earlier
    index."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    if first is not None:
        order = order.gather(1, torch.sort(first.gather(1, order).byte(), dim=1, descending=True,
                                           stable=True).indices)
    return order[:, :k].sort(dim=1).values


def keep_top(x: torch.Tensor, scores: torch.Tensor, k: int, first: torch.Tensor | None = None) -> torch.Tensor:
    """The ``k`` tokens of ``x`` ``[B, N, D]`` with the highest ``scores`` ``[B, N]`` (``first`` ranked
    above the rest, see :func:`top_in_order`), in video order."""
    return take(x, top_in_order(scores, k, first))


def merge_into(dst_sum: torch.Tensor, dst_size: torch.Tensor, src_sum: torch.Tensor, src_size: torch.Tensor,
               target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted merge: add sources to their targets. A merged token's value is ``sum / size``.

    dst_sum ``[B, M, D]`` and dst_size ``[B, M]`` (sums of the tokens each destination stands for and how
    many), src_sum ``[B, S, D]``, src_size ``[B, S]``, target ``[B, S]`` in ``[0, M)`` -> new sums and sizes.
    """
    d = dst_sum.shape[-1]
    sums = dst_sum.scatter_add(1, target.unsqueeze(-1).expand(-1, -1, d), src_sum)
    return sums, dst_size.scatter_add(1, target, src_size)


def frame_saliency(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free stand-in for the attention a token receives: ``[B, T, H, W, D]`` -> ``[B, T, H, W]``.

    Within each frame, one softmax self-attention with queries = keys = the layer-normed tokens (no learned
    projection), averaged over queries: the share of its frame's attention a token draws (each frame sums
    to 1). Used by reducers whose paper scores tokens by the host's attention when that is not given.
    """
    b, t, h, w, d = x.shape
    z = F.layer_norm(x.reshape(b * t, h * w, d).float(), (d,))
    att = torch.softmax(z @ z.transpose(1, 2) * d ** -0.5, dim=-1)  # [B*T, P, P]
    return att.mean(1).view(b, t, h, w)


def check_scores(attention: torch.Tensor | None, x: torch.Tensor, name: str = "attention") -> torch.Tensor:
    """A host-given per-token score ``[B, T, H, W]`` (or ``[T, H, W]``) checked against tokens ``x``
    ``[B, T, H, W, D]``; None falls back to :func:`frame_saliency`."""
    if attention is None:
        return frame_saliency(x)
    if not isinstance(attention, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [B, T, H, W] or None, got {type(attention).__name__}")
    scores = attention if attention.dim() == 4 else attention.unsqueeze(0)
    if tuple(scores.shape) != tuple(x.shape[:4]):
        raise ValueError(f"{name} must have shape {tuple(x.shape[:4])} (the tokens' [B, T, H, W]), "
                         f"got {tuple(attention.shape)}")
    return scores.float()
