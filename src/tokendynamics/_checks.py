"""Argument checks shared by every user-facing entry point.

Each check raises ``TypeError`` or ``ValueError`` with a message that names the argument and says what was
expected, so that a user never has to read a stack trace to learn what was wrong.
"""

from __future__ import annotations

import math

from pathlib import Path

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def video_tokens(tokens, name: str = "tokens") -> torch.Tensor:
    """A token video's structure checked (not its values: :func:`check_video_tokens` reads those), as
    ``[B, T, H, W, D]`` (a view; a single video gains B=1): ``[T, H, W, D]`` or ``[B, T, H, W, D]``
    floating tensors with no empty dimension. For callers that hand the tokens to one that checks them."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [T, H, W, D] or [B, T, H, W, D], "
                        f"got {type(tokens).__name__}")
    if tokens.dim() not in (4, 5):
        raise ValueError(f"{name} must have shape [T, H, W, D] or [B, T, H, W, D], "
                         f"got {tokens.dim()} dimensions {tuple(tokens.shape)}")
    if tokens.dtype not in FLOAT_DTYPES:
        hint = ("; these look like video frames: td.encode_videos turns video files into compact tokens through "
                "a host's vision tower" if tokens.dtype == torch.uint8 and tokens.shape[-1] == 3 else "")
        raise TypeError(f"{name} must be a floating tensor (float32, float16, bfloat16 or float64), "
                        f"got {tokens.dtype}{hint}")
    if tokens.numel() == 0:
        raise ValueError(f"{name} must not have an empty dimension, got shape {tuple(tokens.shape)}")
    return tokens if tokens.dim() == 5 else tokens.unsqueeze(0)


def check_video_tokens(tokens, name: str = "tokens") -> torch.Tensor:
    """:func:`video_tokens`, and only finite values (a check that reads every value and waits for the GPU)."""
    x = video_tokens(tokens, name)
    check_finite(x, name)
    return x


def check_finite(tensor: torch.Tensor, name: str) -> None:
    """Raise if ``tensor`` holds NaN or infinity."""
    if not bool(torch.isfinite(torch.stack(torch.aminmax(tensor))).all()):  # NaN propagates; no big temporary
        raise ValueError(f"{name} must contain only finite values (found NaN or infinity)")


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int, raising unless it is an integer >= 1 (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def check_positive_fields(config, names) -> None:
    """Raise ``ValueError`` naming the first field of ``config`` in ``names`` that is not an int >= 1; a
    field set to None is skipped (taken from elsewhere, such as a model's recipe)."""
    for name in names:
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def check_choice(value, name: str, choices) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_length_mode(num_tokens, max_distortion) -> None:
    """Fixed length (``num_tokens``) or adaptive length (``max_distortion``): exactly one, each valid."""
    if (num_tokens is None) == (max_distortion is None):
        raise ValueError("give exactly one of num_tokens (fixed length) or max_distortion (adaptive length)")
    if num_tokens is not None:
        check_positive_int(num_tokens, "num_tokens")
    elif not (isinstance(max_distortion, (int, float)) and math.isfinite(max_distortion) and max_distortion >= 0):
        raise ValueError(f"max_distortion must be a finite number >= 0, got {max_distortion!r}")


def read_safetensors(path, device="cpu") -> tuple[dict, dict]:
    """``(tensors, metadata)`` of a safetensors file; one that is missing is a ``FileNotFoundError``, one
    that is not a readable safetensors file (empty, truncated, corrupted, another format) a ``ValueError``,
    each naming the file."""
    from safetensors import SafetensorError, safe_open

    path = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"file {path!r} does not exist")
    try:
        with safe_open(path, framework="pt", device=str(device)) as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise ValueError(f"file {path!r} is not a readable safetensors file ({e})") from None
