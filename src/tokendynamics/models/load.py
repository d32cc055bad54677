"""One loader for every model a command can name: the built-in models by name (``builtin``,
``builtin:token_dynamics-8``), a local checkpoint directory, or a hub name (``org/name``), with the host
picked from the checkpoint's ``model_type`` (:data:`HOSTS`)."""

from __future__ import annotations

from pathlib import Path

import torch

from .host import VideoLLM, model_type
from .llava import CompressedLlavaOnevision
from .qwen import CompressedQwen2_5_VL
from .qwen3 import CompressedQwen3VL

BUILTIN = "builtin"
HOSTS: dict[str, type[VideoLLM]] = {t: host for host in (CompressedLlavaOnevision, CompressedQwen2_5_VL,
                                                          CompressedQwen3VL) for t in host.model_types}


def host_for(path: str | Path) -> type[VideoLLM]:
    """The host class of a checkpoint, by its ``model_type``; an unsupported one is refused naming those
    that are supported."""
    kind = model_type(path)
    if kind not in HOSTS:
        raise ValueError(f"checkpoint {str(path)!r} is a {kind or 'model without a model_type'!r}; "
                         f"supported hosts: {', '.join(sorted(HOSTS))}")
    return HOSTS[kind]


def from_pretrained(path: str | Path, reducer: str | None = None, num_tokens: int | None = None,
                    compressor: str | None = None, **options) -> VideoLLM:
    """Any supported host checkpoint with a reducer (``reducer``: a name of ``td.reducers`` or ``"full"``;
    ``compressor`` is its old name; None: the one saved with it), picked by its ``model_type``.
    ``options``: the reducer's settings, and ``dtype`` / ``device``."""
    return host_for(path).from_pretrained(path, reducer if reducer is not None else compressor, num_tokens,
                                          **options)


def load_model(spec: str | Path, compressor: str | None = None, num_tokens: int | None = None,
               dtype: torch.dtype | None = None, device: str | torch.device | None = None,
               **options) -> VideoLLM:
    """The model ``spec`` names, with ``compressor`` (None: the one saved with it) at ``num_tokens`` (None:
    the saved reducer's own, or 8 for a reducer named here).

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
    return from_pretrained(text, compressor, num_tokens, dtype=dtype, device=device, **options)


def _hub_name(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~"))
