"""``tome``: Token Merging by bipartite soft matching (Bolya et al., "Token Merging: Your ViT But Faster",
ICLR 2023), applied to all tokens of a video until ``K`` remain.

One round, as ToMe's ``bipartite_soft_matching``: the tokens alternate into sets A and B; each A token
finds its most similar B token (cosine); the ``r`` A tokens with the most similar matches are merged into
them by size-weighted averages (a merged token's size is how many input tokens it stands for), and the
round's output is the unmerged A tokens (in descending order of their match) followed by B: the order the
next round splits into A and B. ToMe runs one round per transformer block with a fixed ``r``; with no host
blocks here, rounds repeat with the largest ``r`` ToMe allows, ``floor(m / 2)`` of ``m`` tokens (and at most
``m - K``), until ``K`` tokens remain: about ``log2(N / K)`` rounds. ToMe matches on the attention keys;
without the host's keys the tokens themselves are matched.

Adapted to a video and a fixed K, and said here because ToMe has neither: the K tokens that come out are
put in video order, by the earliest cell each stands for. ``order="video"`` (this project's earlier rule, a
named variant) also puts the tokens back in video order after every round, so that A and B alternate over
neighbouring cells in every round, not only the first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_choice
from ..compact import CompactVideo
from .._tensors import take
from .common import compact, merge_into, video_tokens


ORDERS = ("reference", "video")


def bipartite_round(sums: torch.Tensor, sizes: torch.Tensor, pos: torch.Tensor, r: int, order: str = "reference"):
    """One ToMe round merging ``r`` tokens. sums ``[B, M, D]`` (size-weighted sums), sizes ``[B, M]``,
    pos ``[B, M]`` (each token's earliest input position) -> the same for ``M - r`` tokens: the unmerged A
    tokens then B (``order="reference"``), or sorted by ``pos`` (``"video"``)."""
    means = F.normalize(sums / sizes.unsqueeze(-1), dim=-1)
    a, b = means[:, ::2], means[:, 1::2]
    best, match = (a @ b.transpose(1, 2)).max(dim=-1)  # [B, |A|]
    ranked = torch.sort(best, dim=1, descending=True, stable=True).indices
    merged, kept = ranked[:, :r], ranked[:, r:]
    a_sums, a_sizes, a_pos = sums[:, ::2], sizes[:, ::2], pos[:, ::2]
    b_sums, b_sizes = merge_into(sums[:, 1::2], sizes[:, 1::2], take(a_sums, merged),
                                 a_sizes.gather(1, merged), match.gather(1, merged))
    b_pos = pos[:, 1::2].scatter_reduce(1, match.gather(1, merged), a_pos.gather(1, merged), "amin")
    sums = torch.cat([take(a_sums, kept), b_sums], 1)
    sizes = torch.cat([a_sizes.gather(1, kept), b_sizes], 1)
    pos = torch.cat([a_pos.gather(1, kept), b_pos], 1)
    return _by_position(sums, sizes, pos) if order == "video" else (sums, sizes, pos)


def _by_position(sums: torch.Tensor, sizes: torch.Tensor, pos: torch.Tensor):
    """The tokens sorted by their earliest input position."""
    pos, index = pos.sort(dim=1)
    return take(sums, index), sizes.gather(1, index), pos


def tome(tokens: torch.Tensor, num_tokens: int, order: str = "reference") -> CompactVideo:
    """Merge the tokens of ``[B, T, H, W, D]`` by repeated bipartite soft matching down to ``num_tokens``
    size-weighted averages, returned in video order; ``order``: the token order between rounds
    (``"reference"``: ToMe's; ``"video"``: back in video order). -> ``[B, K, D]``."""
    check_choice(order, "order", ORDERS)
    x = video_tokens(tokens, num_tokens)
    b, n = x.shape[0], x.shape[1] * x.shape[2] * x.shape[3]
    sums = x.reshape(b, n, -1).float()
    sizes = torch.ones(b, n, device=x.device)
    pos = torch.arange(n, device=x.device).expand(b, n)
    while sums.shape[1] > num_tokens:
        m = sums.shape[1]
        sums, sizes, pos = bipartite_round(sums, sizes, pos, min(m // 2, m - num_tokens), order)
    sums, sizes, _ = _by_position(sums, sizes, pos)
    return compact(sums / sizes.unsqueeze(-1), x)
