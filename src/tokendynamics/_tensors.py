"""Tensor helpers shared by every layer: batched row gathers and one-hot codes."""

from __future__ import annotations

import torch


def take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` ``[B, M]`` of ``x`` ``[B, N, D]`` -> ``[B, M, D]`` (one indexed copy of the rows)."""
    b, n, d = x.shape
    flat = idx + torch.arange(b, device=x.device).unsqueeze(1) * n
    return x.reshape(b * n, d).index_select(0, flat.reshape(-1)).view(*idx.shape, d)


def one_hot(labels: torch.Tensor, k: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``labels`` ``[..., N]`` in ``[0, k)`` -> ``[..., N, k]`` in ``dtype``, by a comparison with
    ``0 .. k-1`` (unlike ``F.one_hot``, no check of the labels on the host, so it can run inside a CUDA
    graph)."""
    return (labels.unsqueeze(-1) == torch.arange(k, device=labels.device)).to(dtype)
