"""One loader for every model a command can name: the built-in models by name (``builtin``,
``builtin:token_dynamics-8``), a local checkpoint directory, or a hub name (``org/name``)."""

from __future__ import annotations

from pathlib import Path

import torch

from .llava import CompressedLlavaOnevision

BUILTIN = "builtin"


def load_model(spec: str | Path, compressor: str | None = None, num_tokens: int | None = 8,
               dtype: torch.dtype | None = None, device: str | torch.device | None = None,
               **options) -> CompressedLlavaOnevision:
    """The model ``spec`` names, with ``compressor`` (None: the one saved with it) at ``num_tokens``.

    ``"builtin"`` or ``"builtin:<variant>"``: :func:`~.builtin.load_builtin`; an existing directory: a
    checkpoint; ``org/name``: a hub name. A path that does not exist raises ``FileNotFoundError`` naming it.
    """
    text = str(spec)
    name, _, variant = text.partition(":")
    if name == BUILTIN and not Path(text).exists():
        from .builtin import load_builtin

        model = load_builtin(variant or "full", compressor, num_tokens, dtype=dtype or torch.float32, **options)
        return model.to(device) if device is not None else model
    if not Path(text).exists() and not _hub_name(text):
        raise FileNotFoundError(f"model {text!r} is not a directory, a hub name (org/name) or a built-in "
                                f"model ('builtin', 'builtin:<variant>')")
    return CompressedLlavaOnevision.from_pretrained(text, compressor, num_tokens, dtype=dtype, device=device,
                                                    **options)


def _hub_name(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~"))
