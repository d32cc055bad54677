"""The project's own method as reducers: ``hash_table`` (the table without motion, the ablation) and
``token_dynamics`` (table plus cross-dynamics attention)."""

from __future__ import annotations

from dataclasses import asdict
from functools import lru_cache

import torch

from .._checks import video_tokens
from ..compact import CompactVideo
from ..token_dynamics import TokenDynamics, TokenDynamicsConfig, table_rows
from ..hashing import hash_video


def hash_table(tokens: torch.Tensor, num_tokens: int | None = None, **hash_kwargs) -> CompactVideo:
    """The token hash table's rows as the compact video: ``hash_video(tokens, num_tokens, **hash_kwargs)``
    (fixed length, or adaptive with ``max_distortion=...``). -> ``[B, K_max, D]`` and its mask. The rows
    are differentiable means of the tokens when these need a gradient."""
    x = video_tokens(tokens)  # hash_video checks the values
    with torch.no_grad():
        h = hash_video(x.detach(), num_tokens, **hash_kwargs)
    return CompactVideo(table_rows(x, h, x.dtype), h.mask, h)


@lru_cache(maxsize=2)
def _untrained(settings: tuple, device: torch.device, dtype: torch.dtype) -> TokenDynamics:
    """An untrained module per (settings, device, dtype), built once."""
    return TokenDynamics(TokenDynamicsConfig(**dict(settings))).to(device, dtype).eval()


def token_dynamics(tokens: torch.Tensor, num_tokens: int | None = None, model: TokenDynamics | None = None,
                   **config) -> CompactVideo:
    """Token Dynamics: ``model(tokens)``. Without a trained ``model``, an untrained one built from
    ``TokenDynamicsConfig(dim=D, num_tokens=num_tokens, **config)``: its attention starts as the identity
    (zero-initialised residual branches), so before training it returns the hash table's rows. With a
    model, ``num_tokens`` and ``config`` must be left out or agree with its config."""
    x = video_tokens(tokens)  # the model's hashing checks the values
    if model is None:
        settings = asdict(TokenDynamicsConfig(dim=x.shape[-1], num_tokens=num_tokens, **config))
        model = _untrained(tuple(settings.items()), x.device, x.dtype if x.dtype != torch.float64 else torch.float32)
    elif num_tokens is not None and num_tokens != model.config.num_tokens or config:
        raise ValueError(f"num_tokens and settings come from the model's config "
                         f"(num_tokens={model.config.num_tokens}); got num_tokens={num_tokens}, {config}")
    return model(x)
