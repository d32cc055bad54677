"""``random_prune``: keep ``K`` tokens drawn at random."""

from __future__ import annotations

import torch

from ..compact import CompactVideo
from .._tensors import take
from .common import compact, video_tokens


def random_prune(tokens: torch.Tensor, num_tokens: int, seed: int = 0) -> CompactVideo:
    """Keep ``num_tokens`` of the ``N`` tokens of ``[B, T, H, W, D]``, drawn uniformly without replacement
    from ``seed`` (the same positions for every video of the batch, so a video's result does not depend on
    its batch), in video order. -> ``[B, K, D]``."""
    x = video_tokens(tokens, num_tokens)
    b, n = x.shape[0], x.shape[1] * x.shape[2] * x.shape[3]
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=generator)[:num_tokens].sort().values.to(x.device)
    return compact(take(x.reshape(b, n, -1), idx.expand(b, -1)), x)
