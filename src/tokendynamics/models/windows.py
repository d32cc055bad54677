"""The Qwen vision towers' attention, batched by window length when flash-attention is not in use.

Qwen2.5-VL's tower attends within windows (and, in a few layers, within each temporal patch), Qwen3-VL's
within each temporal patch. With flash-attention, transformers hands every window to one variable-length
kernel. Without it (PyTorch's SDPA or eager attention), it splits the queries, keys and values at each window
and calls attention once per window: over 64 frames at 448 px that is 512 windows a layer, some 14,000 calls
for Qwen2.5-VL-7B's tower, which then takes most of the time to the first token.

:func:`batch_windows` gives each block's attention a forward that attends all windows of one length in one
batched SDPA call (a few calls a layer: windows differ in length only at the frame's edges): the same
projections, rotary embedding and softmax over the same keys, so the same outputs up to the rounding of
batched against single matmuls (tested against the host's own loop).
"""

from __future__ import annotations

import sys
import types

import torch
import torch.nn.functional as F
from torch import nn


def batch_windows(tower: nn.Module) -> None:
    """Give every block of a Qwen vision ``tower`` (``.blocks[i].attn``) the batched attention, unless its
    config asks for flash-attention (whose kernel already takes every window in one call)."""
    if "flash" in (getattr(tower.config, "_attn_implementation", None) or ""):
        return
    for block in tower.blocks:
        block.attn.forward = types.MethodType(_attend_by_length, block.attn)


def _attend_by_length(self, hidden_states: torch.Tensor, cu_seqlens: torch.Tensor,
                      position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                      **kwargs) -> torch.Tensor:
    """A Qwen vision attention over ``hidden_states`` ``[N, C]`` whose windows start at ``cu_seqlens``
    ``[W + 1]``: queries, keys and values as the host's forward makes them (its ``qkv``, its module's rotary
    embedding), then the windows of each length gathered into ``[n, heads, length, head_dim]`` and attended
    in one call; its ``proj`` on the result."""
    rotary = sys.modules[type(self).__module__].apply_rotary_pos_emb_vision
    n = hidden_states.shape[0]
    q, k, v = self.qkv(hidden_states).reshape(n, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    q, k = rotary(q, k, *position_embeddings)  # [N, heads, head_dim] each
    out = torch.empty_like(v)
    starts, lengths = cu_seqlens[:-1], cu_seqlens.diff()
    for length in lengths.unique().tolist():  # one host sync a layer, as the host's split has
        if length == 0:
            continue
        cells = starts[lengths == length, None] + torch.arange(length, device=q.device)  # [n, length]
        window = [t[cells].transpose(1, 2) for t in (q, k, v)]  # [n, heads, length, head_dim]
        out[cells] = F.scaled_dot_product_attention(*window, scale=self.scaling).transpose(1, 2)
    return self.proj(out.reshape(n, -1))
