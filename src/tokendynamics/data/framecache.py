"""A frame cache: every video of a QA file sampled once to a fixed frame count and kept in one ``uint8``
array file (``.npy``, ``[videos, T, H, W, 3]``) that training and evaluation processes map from disk, so
that an epoch reads memory instead of decoding videos or inflating frame archives. Several runs side by
side on one machine share the file (and the page cache). The file's name is a digest of what it holds (the
videos, their root, the frame count, the size), so a changed setting gets a new file; it is written beside
its final name and renamed, so runs that build it at once never see a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from rich.progress import Progress

from .video import VideoError

log = logging.getLogger(__name__)
MISSING = -1  # the row of a video that could not be read (skip_bad)


def cache_path(directory: str | Path, videos: list[str], video_root: str | Path, num_frames: int,
               size: tuple[int, int] | None) -> Path:
    """Where the cache of these videos lives in ``directory``."""
    key = json.dumps([str(Path(video_root).resolve()), num_frames, size, videos])
    return Path(directory) / f"frames-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"


def build_frame_cache(paths: list[Path], target: Path, read, skip_bad: bool = False,
                      progress: bool = True, threads: int | None = None) -> np.ndarray:
    """Read every file of ``paths`` with ``read(path) -> uint8 [T, H, W, 3]`` (on ``threads`` threads:
    decoding and inflating release the GIL) into ``target`` (``.npy``); returns the row of each path
    (:data:`MISSING` for an unreadable one where ``skip_bad``), also saved as ``target.rows.npy``. Videos
    must share one shape."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    rows, array, first = np.full(len(paths), MISSING, dtype=np.int64), None, None

    def attempt(path):
        try:
            return read(path).numpy()
        except VideoError as e:
            if not skip_bad:
                raise
            log.warning("frame cache: skipping %s", e)
            return None

    with Progress(disable=not progress) as bar, ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
        task = bar.add_task(f"frame cache: {len(paths)} videos", total=len(paths))
        for i, (path, frames) in enumerate(zip(paths, pool.map(attempt, paths))):
            if frames is None:
                bar.advance(task)
                continue
            if array is None:
                first = frames.shape
                array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), *first))
            if frames.shape != first:
                raise ValueError(f"frame cache: {str(path)!r} gives frames of shape {frames.shape}, the first "
                                 f"video {first}; a cache needs videos of one size (pass size=)")
            array[i], rows[i] = frames, i
            bar.advance(task)
    if array is None:
        raise VideoError("frame cache: no video could be read")
    array.flush()
    del array
    np.save(target.with_suffix(".rows.npy"), rows)
    tmp.rename(target)
    return rows


def open_frame_cache(target: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(frames [videos, T, H, W, 3] mapped read-only, rows [videos])`` of a built cache."""
    return np.load(target, mmap_mode="r"), np.load(target.with_suffix(".rows.npy"))
