"""``visionzip``: dominant tokens by attention plus contextual tokens merged from the rest (Yang et al.,
"VisionZip: Longer is Better but Not Necessary in Vision Language Models", CVPR 2025).

Dominant: the tokens that draw the most attention (VisionZip: the CLS token's attention, or the mean
attention received where the tower has no CLS, as SigLIP has none), given as ``attention [B, T, H, W]``
from the host's vision tower; without it, :func:`~tokendynamics.reducers.common.frame_saliency` stands in.
Contextual: of the remaining tokens, every ``step``-th (in video order) becomes a target; every other
remaining token joins its most similar target (cosine; VisionZip uses the attention keys, here the tokens)
and each contextual token is, as in VisionZip's code, its target plus the mean of the tokens that joined it
(the target alone where none did). ``contextual="mean"`` (this project's earlier rule, a named variant)
makes it the mean of the target and the joined tokens instead, a token of the same scale as the others.

Budget split as in the paper's settings (54 dominant + 10 contextual of 64): ``contextual = max(1,
round(K * 10 / 64))`` for ``K >= 2``. VisionZip selects per image; a video budget of a few tokens is less
than one per frame, so the selection here is over the whole video.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_choice
from ..compact import CompactVideo
from .._tensors import take
from .common import check_scores, compact, merge_into, video_tokens

CONTEXTUAL_SHARE = 10 / 64
CONTEXTUAL_RULES = ("reference", "mean")


def split_budget(num_tokens: int) -> tuple[int, int]:
    """``(dominant, contextual)`` counts of a budget of ``num_tokens``."""
    contextual = 0 if num_tokens < 2 else max(1, round(num_tokens * CONTEXTUAL_SHARE))
    return num_tokens - contextual, contextual


def visionzip(tokens: torch.Tensor, num_tokens: int, attention: torch.Tensor | None = None,
              contextual: str = "reference") -> CompactVideo:
    """Keep the dominant tokens of ``[B, T, H, W, D]`` and merge the rest into contextual tokens.
    attention: the host's per-token attention ``[B, T, H, W]`` (None: parameter-free saliency).
    contextual: ``"reference"`` (target + mean of the joined tokens) or ``"mean"`` (mean of both).
    -> ``[B, K, D]``: dominant tokens in video order, then contextual tokens in target order."""
    check_choice(contextual, "contextual", CONTEXTUAL_RULES)
    x = video_tokens(tokens, num_tokens)
    scores = check_scores(attention, x)
    b, n = x.shape[0], x.shape[1] * x.shape[2] * x.shape[3]
    flat, scores = x.reshape(b, n, -1).float(), scores.reshape(b, n)
    n_dom, n_ctx = split_budget(num_tokens)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    dominant = take(flat, order[:, :n_dom].sort(dim=1).values)
    if n_ctx == 0:
        return compact(dominant, x)
    rest = order[:, n_dom:].sort(dim=1).values  # [B, R] remaining tokens in video order
    step = rest.shape[1] // n_ctx
    is_target = torch.zeros(rest.shape[1], dtype=torch.bool, device=x.device)
    is_target[torch.arange(n_ctx, device=x.device) * step] = True
    targets, others = take(flat, rest[:, is_target]), take(flat, rest[:, ~is_target])
    join = (F.normalize(others, dim=-1) @ F.normalize(targets, dim=-1).transpose(1, 2)).argmax(-1)
    sums, sizes = merge_into(targets, torch.ones(b, n_ctx, device=x.device), others,
                             torch.ones(join.shape, device=x.device), join)
    if contextual == "mean":
        merged = sums / sizes.unsqueeze(-1)
    else:  # the target, plus the mean of what joined it
        merged = targets + (sums - targets) / (sizes - 1).clamp_min(1).unsqueeze(-1)
    return compact(torch.cat([dominant, merged], 1), x)
