"""The QA dataset format: JSON Lines, one multiple-choice question a line (NextQA-MC style)::

    {"video": "relative/path.mp4", "question": "...", "options": ["...", ...], "answer": 2, "type": "...",
     "id": "optional"}

:func:`load_qa` validates every line and names the line of any error; :class:`QADataset` yields decoded
frames with the question, and can skip unreadable videos (``skip_bad=True``), counting what it skipped.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .._checks import check_positive_int
from .framecache import MISSING, build_frame_cache, cache_path, open_frame_cache
from .video import VideoError, read_video, resize, uniform_indices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QAItem:
    """One question about one video; ``answer`` indexes ``options``."""

    video: str
    question: str
    options: tuple[str, ...]
    answer: int
    type: str = ""
    id: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"options": list(self.options)})


def parse_qa_line(text: str, where: str = "line") -> QAItem:
    """One JSONL line -> :class:`QAItem`; a ``ValueError`` starting with ``where`` says what is wrong."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [k for k in ("video", "question", "options", "answer") if k not in row]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    unknown = set(row) - {"video", "question", "options", "answer", "type", "id"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
    for key in ("video", "question"):
        if not isinstance(row[key], str) or not row[key].strip():
            raise ValueError(f"{where}: {key!r} must be a non-empty string")
    options = row["options"]
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) and o for o in options):
        raise ValueError(f"{where}: 'options' must be a list of at least 2 non-empty strings")
    answer = row["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(options):
        raise ValueError(f"{where}: 'answer' must be an index into options (0 to {len(options) - 1}), "
                         f"got {answer!r}")
    for key in ("type", "id"):
        if not isinstance(row.get(key, ""), (str, int)):
            raise ValueError(f"{where}: {key!r} must be a string")
    return QAItem(row["video"], row["question"], tuple(options), answer, str(row.get("type", "")),
                  str(row.get("id", "")))


def load_qa(path: str | Path) -> list[QAItem]:
    """Read and validate a QA JSONL file (blank lines are skipped). Errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"QA file {str(path)!r} does not exist")
    items = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path}:{number}: not UTF-8 text") from None
            if text.strip():
                items.append(parse_qa_line(text, f"{path}:{number}"))
    if not items:
        raise ValueError(f"QA file {str(path)!r} holds no questions")
    return items


def write_qa(path: str | Path, items) -> None:
    """Write :class:`QAItem` s as JSON Lines."""
    Path(path).write_text("".join(item.to_json() + "\n" for item in items), encoding="utf-8")


def read_frames(path: Path, num_frames: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Frames of a video file, or of its ``.npz`` frame archive (key ``frames``, ``uint8 [T, H, W, 3]``,
    sampled like :func:`read_video`) where the path names one. -> ``uint8 [num_frames, H, W, 3]``."""
    if path.suffix != ".npz":
        return read_video(path, num_frames, size=size)
    try:
        with np.load(path) as archive:
            frames = archive["frames"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise VideoError(f"frame archive {str(path)!r} cannot be read: {e}") from e
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise VideoError(f"frame archive {str(path)!r} must hold uint8 frames [T, H, W, 3] with T >= 1, "
                         f"got {frames.dtype} {frames.shape}")
    video = torch.from_numpy(frames[uniform_indices(len(frames), num_frames)])
    return video if size is None else resize(video, size)


class QADataset(Dataset):
    """Questions with their decoded videos: item ``i`` is a dict with ``frames`` (``uint8 [T, H, W, 3]``),
    ``question``, ``options``, ``answer``, ``type``, ``id``, ``index``.

    video_root: directory the items' relative video paths start from. prefer_arrays: read
    ``<video>.npz`` frame archives where they exist (MotionQA writes them with ``--arrays``).
    skip_bad: an unreadable video gives ``None`` (logged, counted in ``self.skipped`` of the process that
    read it) instead of raising; :func:`collate_qa` drops such items and counts them.
    cache_dir: keep the sampled frames of every video in a frame cache there (:mod:`.framecache`: built
    on first use, then mapped from disk; videos of one size).
    augment: a callable ``(frames, question, options) -> (frames, question, options)`` applied to every
    item (training: :class:`.augment.Mirror`).
    """

    def __init__(self, items, video_root: str | Path = ".", num_frames: int = 32,
                 size: tuple[int, int] | None = None, prefer_arrays: bool = False, skip_bad: bool = False,
                 cache_dir: str | Path | None = None, augment=None):
        self.items = load_qa(items) if isinstance(items, (str, Path)) else list(items)
        self.video_root = Path(video_root)
        if not self.video_root.is_dir():
            raise FileNotFoundError(f"video_root {str(self.video_root)!r} is not a directory")
        self.num_frames = check_positive_int(num_frames, "num_frames")
        self.size, self.prefer_arrays, self.skip_bad, self.augment = size, prefer_arrays, skip_bad, augment
        self.skipped: list[str] = []
        self.cache, self._mapped = None, None
        if cache_dir is not None:
            self.cache = self._build_cache(Path(cache_dir))

    def _build_cache(self, directory: Path) -> tuple[Path, dict[str, int]]:
        """The cache file (built where missing) and the row of each video."""
        videos = sorted({item.video for item in self.items})
        target = cache_path(directory, videos, self.video_root, self.num_frames, self.size)
        if not target.is_file():
            paths = [self._file(v) for v in videos]
            build_frame_cache(paths, target, lambda p: read_frames(p, self.num_frames, self.size), self.skip_bad)
        rows = open_frame_cache(target)[1]
        return target, dict(zip(videos, rows.tolist()))

    def _cached(self, item: QAItem) -> torch.Tensor:
        if self._mapped is None:  # opened in the process that reads (a mapping does not pickle as one)
            self._mapped = open_frame_cache(self.cache[0])[0]
        row = self.cache[1][item.video]
        if row == MISSING:
            raise VideoError(f"video {item.video!r} could not be read when the frame cache was built")
        return torch.from_numpy(np.array(self._mapped[row]))

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_mapped": None}

    def __len__(self) -> int:
        return len(self.items)

    def video_path(self, item: QAItem) -> Path:
        """The file to read: the video, or its ``.npz`` archive where preferred (or where the video is
        missing and the archive exists)."""
        return self._file(item.video)

    def _file(self, video: str) -> Path:
        """:meth:`video_path` of a video's relative path."""
        path = self.video_root / video
        archive = path.with_suffix(".npz")
        use_archive = archive.is_file() and (self.prefer_arrays or not path.exists())
        return archive if use_archive else path

    def __getitem__(self, index: int) -> dict | None:
        item = self.items[index]
        try:
            frames = self._cached(item) if self.cache else read_frames(self.video_path(item), self.num_frames,
                                                                       self.size)
        except VideoError as e:
            if not self.skip_bad:
                raise
            log.warning("skipping question %s: %s", item.id or index, e)
            self.skipped.append(str(e))
            return None
        question, options = item.question, list(item.options)
        if self.augment is not None:
            frames, question, options = self.augment(frames, question, options)
        return dict(frames=frames, question=question, options=options, answer=item.answer,
                    type=item.type, id=item.id or str(index), index=index)


def collate_qa(batch: list[dict | None]) -> dict:
    """Batch dataset items: ``frames`` stacked to ``[B, T, H, W, 3]`` (equal sizes) or kept as a list,
    the other fields as lists; ``skipped`` counts the ``None`` items dropped."""
    kept = [b for b in batch if b is not None]
    out = {key: [b[key] for b in kept] for key in ("question", "options", "answer", "type", "id", "index")}
    frames = [b["frames"] for b in kept]
    same = frames and all(f.shape == frames[0].shape for f in frames)
    out["frames"] = torch.stack(frames) if same else frames
    out["skipped"] = len(batch) - len(kept)
    return out
