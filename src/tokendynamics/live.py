"""``tokendynamics live``: a video read a frame at a time, each frame's tokens added to the model's
:class:`~tokendynamics.stream.HashStream` as it comes, and the question answered after every few frames from
the table so far (only the learned half of Token Dynamics and the prefill run then)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._checks import check_positive_int
from .data.motionqa import MotionQAConfig, make_video
from .data.video import count_frames, iter_video
from .models import load_model
from .models.builtin import DATA
from .models.recipe import recipe_frames


@dataclass
class LiveConfig:
    """model: a Token Dynamics model (``load_model``'s names); video: a file, or None for a generated
    MotionQA video (its motion question); question/options: what to ask of a file; every: answer after
    this many frames pushed; stride: push every ``stride``-th decoded frame (None: the video's frames over
    the model's recipe frames, so the whole video gives as many frames as the model was trained on);
    refine: keep the last this many frames' tokens and refine the table with them after each answer,
    before the next frames come (0: never)."""

    model: str = "builtin:token_dynamics-8"
    video: str | None = None
    question: str | None = None
    options: list[str] | None = None
    every: int = 2
    stride: int | None = None
    seed: int = 0
    refine: int = 0

    def __post_init__(self):
        check_positive_int(self.every, "every")
        if not isinstance(self.refine, int) or self.refine < 0:
            raise ValueError(f"refine must be an int >= 0 (frames kept), got {self.refine!r}")
        if self.stride is not None:
            check_positive_int(self.stride, "stride")
        if self.video is not None and not Path(self.video).is_file():
            raise FileNotFoundError(f"video {self.video!r} is not a file")
        if self.video is not None and not (self.question and self.options and len(self.options) >= 2):
            raise ValueError("a video file needs --question and at least two --options")


def _source(cfg: LiveConfig, frames: int) -> tuple[Iterator[torch.Tensor], str, list[str], int | None, str]:
    """``(frames as they come, question, options, the answer's index or None, what the video is)``."""
    if cfg.video is not None:
        stride = cfg.stride or max(1, count_frames(cfg.video) // frames)
        return iter_video(cfg.video, stride), cfg.question, list(cfg.options), None, cfg.video
    raw, _, items = make_video(10 * cfg.seed + 9, MotionQAConfig(**DATA))  # a test-split video
    stride = cfg.stride or max(1, len(raw) // frames)
    item = items[0]  # its motion question
    return (torch.from_numpy(f) for f in raw[::stride]), item.question, list(item.options), item.answer, \
        "a generated MotionQA video (test split)"


def run_live(cfg: LiveConfig, console: Console) -> list[dict]:
    """Stream the video into the model's table, answering every ``cfg.every`` frames; prints a table and
    returns its rows (frames so far, table rows in use, the answer, milliseconds to push and to answer)."""
    with console.status("loading the model"):
        model = load_model(cfg.model).eval()
    stream = model.new_stream(window=cfg.refine)
    frames, question, options, truth, about = _source(cfg, recipe_frames(model.recipe))
    console.print(f"[bold]Live[/bold]: {about}; {escape(question)} ({', '.join(map(escape, options))})")
    table = Table(title="answers as the video plays")
    for column in ("frames so far", "table rows", "answer", "push (ms/frame)", "answer (ms)"):
        table.add_column(column, justify="right")
    rows, pushed, push_seconds = [], 0, 0.0
    for frame in frames:
        start = time.perf_counter()
        model.push(stream, frame[None])
        push_seconds += time.perf_counter() - start
        pushed += 1
        if pushed % cfg.every:
            continue
        start = time.perf_counter()
        with torch.no_grad():
            visual = model.stream_tokens(stream)
            pick = model.choose(None, [question], [options], visual=[visual]).picks[0]
        row = dict(frames=pushed, rows=len(visual) - model.added_rows, answer=options[pick],
                   push_ms=1e3 * push_seconds / pushed, answer_ms=1e3 * (time.perf_counter() - start))
        rows.append(row)
        if cfg.refine:  # the table refined while the next frames are awaited
            stream.refine()
        table.add_row(str(pushed), str(row["rows"]), escape(row["answer"]), f"{row['push_ms']:.1f}",
                      f"{row['answer_ms']:.1f}")
    if not rows:
        raise ValueError(f"the video gave {pushed} frames, fewer than --every {cfg.every}")
    console.print(table)
    if truth is not None:
        console.print(f"the right answer: {escape(options[truth])}")
    return rows
