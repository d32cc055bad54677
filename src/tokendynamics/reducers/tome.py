"""``tome``: Token Merging by bipartite soft matching (Bolya et al., "Token Merging: Your ViT But Faster",
ICLR 2023), applied to all tokens of a video until ``K`` remain.

One round: the tokens, in video order, alternate into sets A and B; each A token finds its most similar B
token (cosine); the ``r`` A tokens with the most similar matches are merged into them by size-weighted
averages (a merged token's size is how many input tokens it stands for). ToMe runs one round per
transformer block with a fixed ``r``; with no host blocks here, rounds repeat with the largest ``r`` the
method allows (every A token, at most ``N - K``) until ``K`` tokens remain: ``log2(N / K)`` rounds. ToMe
matches on the attention keys; without the host's keys the tokens themselves are matched. A merged token
sits at the earliest position it covers, so the output is in video order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..compact import CompactVideo
from .._tensors import take
from .common import compact, merge_into, video_tokens


def bipartite_round(sums: torch.Tensor, sizes: torch.Tensor, pos: torch.Tensor, r: int):
    """One ToMe round merging ``r`` tokens. sums ``[B, M, D]`` (size-weighted sums), sizes ``[B, M]``,
    pos ``[B, M]`` (earliest input position, increasing) -> the same for ``M - r`` tokens, in video order."""
    means = F.normalize(sums / sizes.unsqueeze(-1), dim=-1)
    a, b = means[:, ::2], means[:, 1::2]
    best, match = (a @ b.transpose(1, 2)).max(dim=-1)  # [B, |A|]
    order = torch.sort(best, dim=1, descending=True, stable=True).indices
    merged, kept = order[:, :r], order[:, r:]
    a_sums, a_sizes, a_pos = sums[:, ::2], sizes[:, ::2], pos[:, ::2]
    b_sums, b_sizes = merge_into(sums[:, 1::2], sizes[:, 1::2], take(a_sums, merged),
                                 a_sizes.gather(1, merged), match.gather(1, merged))
    b_pos = pos[:, 1::2].scatter_reduce(1, match.gather(1, merged), a_pos.gather(1, merged), "amin")
    sums = torch.cat([take(a_sums, kept), b_sums], 1)
    sizes = torch.cat([a_sizes.gather(1, kept), b_sizes], 1)
    pos = torch.cat([a_pos.gather(1, kept), b_pos], 1)
    pos, order = pos.sort(dim=1)
    return take(sums, order), sizes.gather(1, order), pos


def tome(tokens: torch.Tensor, num_tokens: int) -> CompactVideo:
    """Merge the tokens of ``[B, T, H, W, D]`` by repeated bipartite soft matching down to ``num_tokens``
    size-weighted averages, in video order. -> ``[B, K, D]``."""
    x = video_tokens(tokens, num_tokens)
    b, n = x.shape[0], x.shape[1] * x.shape[2] * x.shape[3]
    sums = x.reshape(b, n, -1).float()
    sizes = torch.ones(b, n, device=x.device)
    pos = torch.arange(n, device=x.device).expand(b, n)
    while sums.shape[1] > num_tokens:
        m = sums.shape[1]
        sums, sizes, pos = bipartite_round(sums, sizes, pos, min((m + 1) // 2, m - num_tokens))
    return compact(sums / sizes.unsqueeze(-1), x)
