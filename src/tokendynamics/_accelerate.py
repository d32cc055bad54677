"""One way to make the ``accelerate.Accelerator`` for training and evaluation alike (they may run in one
process, and accelerate's state is shared)."""

from __future__ import annotations

import torch


def make_accelerator(mixed_precision: str | None = None, **kwargs):
    """An Accelerator on the GPU where there is one (bf16 autocast by default), else on the CPU with gloo
    for multi-process runs (no autocast)."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    return Accelerator(cpu=not cuda, mixed_precision=mixed_precision or ("bf16" if cuda else "no"), **kwargs)
