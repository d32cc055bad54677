"""Decoding real video files with PyAV: a fixed number of frames sampled uniformly (or at given times),
as ``uint8 [T, H, W, 3]``, streaming, so that a long video never sits in memory whole.

Every failure (missing, empty, corrupt or unsupported file, no video stream) raises :class:`VideoError`,
which names the file.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_positive_int

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")


class VideoError(ValueError):
    """A video file that cannot be read; the message names the file and the reason."""


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a dependency; the message helps stripped installs
        raise ImportError("decoding videos needs PyAV: pip install av") from e
    return av


def _open(path: Path):
    if not path.is_file():
        raise VideoError(f"video file {str(path)!r} does not exist")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"video file {str(path)!r} has an unsupported extension {path.suffix!r}; "
                         f"expected one of {', '.join(VIDEO_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise VideoError(f"video file {str(path)!r} is empty")
    av = _av()
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise VideoError(f"video file {str(path)!r} cannot be opened: {e}") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"video file {str(path)!r} has no video stream")
    return container


def _frames(container, path: Path) -> Iterator:
    """Decoded frames of the first video stream; decoding errors name the file."""
    av = _av()
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    try:
        yield from container.decode(stream)
    except av.FFmpegError as e:
        raise VideoError(f"video file {str(path)!r} is corrupt: {e}") from e


def count_frames(path: str | Path) -> int:
    """Number of frames of the file's first video stream (from its header where it says, else by decoding)."""
    path = Path(path)
    with _open(path) as container:
        n = container.streams.video[0].frames
        if n <= 0:
            n = sum(1 for _ in _frames(container, path))
    if n == 0:
        raise VideoError(f"video file {str(path)!r} has no frames")
    return n


def uniform_indices(total: int, num_frames: int) -> list[int]:
    """``num_frames`` frame indices spread evenly over ``[0, total)``: the centres of equal segments."""
    return [min(total - 1, int((i + 0.5) * total / num_frames)) for i in range(num_frames)]


def read_video(path: str | Path, num_frames: int = 32, *, times: Sequence[float] | None = None,
               size: tuple[int, int] | None = None) -> torch.Tensor:
    """Decode ``num_frames`` frames sampled uniformly (segment centres; a video with fewer frames repeats
    some, with a warning), or the frames shown at ``times`` (seconds; a time past the video's end is a
    ``ValueError``), as ``uint8 [T, H, W, 3]`` RGB; ``size=(height, width)`` resizes (bilinear,
    antialiased). Only the kept frames are held in memory."""
    path = Path(path)
    check_positive_int(num_frames, "num_frames")
    if times is not None:
        times = sorted(float(t) for t in times)
        if not times or times[0] < 0:
            raise ValueError(f"times must be a non-empty list of seconds >= 0, got {times!r}")
        frames = _frames_at_times(path, times)
    else:
        total = count_frames(path)
        if total < num_frames:
            warnings.warn(f"video file {str(path)!r} has {total} frames and {num_frames} were asked for: "
                          f"some are repeated", stacklevel=2)
        frames = _frames_at_indices(path, uniform_indices(total, num_frames))
    video = torch.from_numpy(np.stack(frames))
    return video if size is None else resize(video, size)


def iter_video(path: str | Path, step: int = 1) -> Iterator[torch.Tensor]:
    """Every ``step``-th frame of a video file as it is decoded, ``uint8 [H, W, 3]`` RGB: for live use, a
    frame at a time, the file never read whole."""
    path = Path(path)
    check_positive_int(step, "step")
    with _open(path) as container:
        for i, frame in enumerate(_frames(container, path)):
            if i % step == 0:
                yield torch.from_numpy(frame.to_ndarray(format="rgb24"))


def _frames_at_indices(path: Path, wanted: list[int]) -> list[np.ndarray]:
    out, need = [], 0
    with _open(path) as container:
        for i, frame in enumerate(_frames(container, path)):
            if i < wanted[need]:
                continue
            image = frame.to_ndarray(format="rgb24")
            while need < len(wanted) and wanted[need] == i:
                out.append(image)
                need += 1
            if need == len(wanted):
                break
    if len(out) < len(wanted):  # the header over-counted: repeat the last frame decoded
        if not out:
            raise VideoError(f"video file {str(path)!r} has no decodable frames")
        out += [out[-1]] * (len(wanted) - len(out))
    return out


def _frames_at_times(path: Path, times: list[float]) -> list[np.ndarray]:
    out, last, shown = [], None, [0.0, 0.0]  # shown: the start times of the last two frames decoded
    with _open(path) as container:
        for frame in _frames(container, path):
            t = float(frame.time) if frame.time is not None else 0.0
            while len(out) < len(times) and times[len(out)] < t and last is not None:
                out.append(last)  # the frame on screen at that time
            if len(out) == len(times):
                break
            last, shown = frame.to_ndarray(format="rgb24"), [shown[1], t]
    if last is None:
        raise VideoError(f"video file {str(path)!r} has no decodable frames")
    end = shown[1] + (shown[1] - shown[0])  # the last frame stays on screen one frame interval
    if len(out) < len(times) and times[-1] >= end:
        raise ValueError(f"times go to {times[-1]:g} s, past the end of {str(path)!r} ({end:g} s)")
    return out + [last] * (len(times) - len(out))


def resize(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``uint8 [T, H, W, 3]`` -> ``uint8 [T, height, width, 3]``, bilinear with antialiasing."""
    if len(size) != 2 or any(not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(f"size must be (height, width) of positive ints, got {size!r}")
    x = F.interpolate(video.permute(0, 3, 1, 2).float(), size=tuple(size), mode="bilinear",
                      antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def write_video(path: str | Path, frames, fps: float = 8.0, crf: int = 18) -> None:
    """Write ``uint8 [T, H, W, 3]`` frames (even H and W) to an H.264 mp4 with PyAV."""
    av = _av()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
