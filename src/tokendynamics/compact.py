"""``CompactVideo``: what every reducer gives the LLM."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .hashing import TokenHashTable


@dataclass
class CompactVideo:
    """What the LLM receives. tokens: ``[B, K_max, D]``; mask: ``[B, K_max]`` bool, valid rows;
    hash: the ``TokenHashTable`` the tokens were built from (None for reducers that build none)."""

    tokens: torch.Tensor
    mask: torch.Tensor
    hash: TokenHashTable | None = None
