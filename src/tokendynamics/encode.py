"""Video files to compact tokens in one call: decode, run a host's vision path, reduce.

    import tokendynamics as td
    out = td.encode_videos("clips/", model="builtin", reducer="token_dynamics", num_tokens=8)
    out["clips/a.mp4"].tokens      # [1, 8, D]: what the host's LLM reads of that video
    out["clips/a.mp4"].hash.key_map  # [1, T, h, w]: which row each cell of each frame belongs to
"""

from __future__ import annotations

from pathlib import Path

import torch

from .compact import CompactVideo
from .data.video import VIDEO_SUFFIXES, read_video
from .models import load_model
from .models.recipe import recipe_frames


def video_files(videos) -> list[Path]:
    """``videos`` (a path or a list of them; a folder stands for the video files in it, sorted) as files;
    a path that does not exist is a ``FileNotFoundError`` naming it."""
    paths = [Path(videos)] if isinstance(videos, (str, Path)) else [Path(v) for v in videos]
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"video {str(path)!r} is neither a file nor a folder")
    if not files:
        raise ValueError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) in {[str(p) for p in paths]}")
    return files


@torch.no_grad()
def encode_videos(videos, model: str | Path = "builtin", reducer: str | None = None, num_tokens: int | None = None,
                  frames: int | None = None, device: str | None = None, **options) -> dict[str, CompactVideo]:
    """Per video file (``videos``: see :func:`video_files`), the compact tokens ``model`` would read:
    ``model`` is a host checkpoint, a hub name or a built-in model (``"builtin"``, ``"builtin:token_dynamics-8"``);
    ``reducer`` with ``num_tokens`` and ``options`` (None: the model's own); ``frames`` sampled uniformly
    (None: the model's recipe, else 32). Returns ``{path: CompactVideo}`` with ``tokens [1, K, D]``,
    ``mask [1, K]`` and, for Token Dynamics and its table, ``hash`` (table and key map)."""
    host = load_model(model, reducer, num_tokens, device=device, **options).eval()
    count = recipe_frames(host.recipe, frames)
    out = {}
    for path in video_files(videos):
        features = host.video_features([read_video(path, count)])[0]  # [T, h, w, D]
        out[str(path)] = host.reducer(features[None])
    return out
