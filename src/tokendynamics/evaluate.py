"""Evaluating a host video LLM with a reducer on multiple-choice QA: accuracy overall and per question
type, the visual tokens the LLM read against the full count, throughput; one process or many
(``accelerate launch``), each taking every n-th question, with the results gathered on the first.

    tokendynamics eval --model DIR --data test.jsonl --video-root DIR --compressor token_dynamics \\
        --num-tokens 8 --output report.json
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from rich.progress import Progress

from ._accelerate import make_accelerator
from ._checks import check_choice, check_positive_fields
from .data.qa import QADataset, collate_qa, load_qa
from .models import load_model
from .models.prompts import SCORING_MODES
from .models.recipe import answer_mode, recipe_frames



@dataclass
class EvalConfig:
    """Settings of an evaluation run. ``compressor=None`` uses the reducer saved with the model (or full
    tokens where none was saved); ``num_tokens=None`` its own K (8 for a reducer named here); ``frames=None``
    and ``mode=None`` use what the model was trained with (its recipe), else 32 frames and letter scoring."""

    model: str
    data: str
    video_root: str
    compressor: str | None = None
    num_tokens: int | None = None
    compressor_options: dict = field(default_factory=dict)
    frames: int | None = None
    batch_size: int = 8
    mode: str | None = None
    output: str | None = None
    workers: int = 2
    prefer_arrays: bool = True
    skip_bad: bool = False
    limit: int | None = None
    frame_cache: str | None = None  # a directory for the sampled frames of every video (data.framecache)

    def __post_init__(self):
        if self.mode is not None:  # None: what the model was trained for
            check_choice(self.mode, "mode", SCORING_MODES)
        check_positive_fields(self, ("batch_size", "frames"))  # frames None: the recipe's


def wilson(correct: int, total: int, z: float = 1.96) -> list[float]:
    """95% Wilson score interval of an accuracy."""
    if total == 0:
        return [0.0, 0.0]
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return [round(centre - half, 4), round(centre + half, 4)]


def summarise(records: list[dict]) -> dict:
    """Accuracy (with a 95% interval) overall and per type, and visual token counts, from per-question
    records."""
    def block(rows):
        right = sum(r["correct"] for r in rows)
        return dict(n=len(rows), accuracy=round(right / len(rows), 4) if rows else None, ci95=wilson(right, len(rows)))

    by_type = defaultdict(list)
    for r in records:
        by_type[r["type"]].append(r)
    tokens = [r["visual_tokens"] for r in records]
    full = [r["full_tokens"] for r in records]
    return dict(overall=block(records), per_type={t: block(rows) for t, rows in sorted(by_type.items())},
                visual_tokens=dict(mean=sum(tokens) / len(tokens) if tokens else None,
                                   min=min(tokens, default=None), max=max(tokens, default=None),
                                   full_mean=sum(full) / len(full) if full else None,
                                   percent_of_full=round(100 * sum(tokens) / sum(full), 4) if full else None))


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation; returns the report (also written to ``cfg.output`` when given)."""
    from accelerate.utils import gather_object

    accelerator = make_accelerator()
    dtype = torch.bfloat16 if accelerator.device.type == "cuda" else torch.float32
    model = load_model(cfg.model, cfg.compressor, cfg.num_tokens, dtype=dtype,
                       **cfg.compressor_options).to(accelerator.device).eval()
    frames = recipe_frames(model.recipe, cfg.frames)
    mode = cfg.mode or answer_mode(model.recipe)
    items = load_qa(cfg.data)[: cfg.limit]
    data = QADataset(items, cfg.video_root, frames, prefer_arrays=cfg.prefer_arrays, skip_bad=cfg.skip_bad,
                     cache_dir=cfg.frame_cache)
    shard = torch.utils.data.Subset(data, range(accelerator.process_index, len(data), accelerator.num_processes))
    loader = torch.utils.data.DataLoader(shard, batch_size=cfg.batch_size, collate_fn=collate_qa,
                                         num_workers=cfg.workers)
    records, skipped, start = [], 0, time.perf_counter()
    with Progress(disable=not accelerator.is_main_process) as bar:
        task = bar.add_task(f"eval {model.reducer.name}", total=len(loader))
        for batch in loader:
            skipped += batch["skipped"]
            if batch["question"]:
                result = model.choose(batch["frames"], batch["question"], batch["options"], mode=mode)
                records += _records(model, batch, result)
            bar.advance(task)
    elapsed = time.perf_counter() - start
    records = gather_object(records)
    skipped = sum(gather_object([skipped]))
    seconds = max(gather_object([elapsed]))
    report = dict(config=asdict(cfg) | dict(frames=frames, mode=mode), reducer=model.reducer.config,
                  recipe=model.recipe, processes=accelerator.num_processes,
                  **summarise(sorted(records, key=lambda r: r["index"])), skipped_videos=skipped,
                  seconds=round(seconds, 3), questions_per_second=round(len(records) / seconds, 3) if seconds else None,
                  records=sorted(records, key=lambda r: r["index"]))
    if accelerator.is_main_process and cfg.output:
        Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.output).write_text(json.dumps(report, indent=1))
    if skipped:
        accelerator.print(f"skipped {skipped} unreadable videos")
    accelerator.wait_for_everyone()
    accelerator.end_training()  # tears the process group down on every process together
    return report


def _records(model, batch, result) -> list[dict]:
    frames = [f.shape[:3] for f in batch["frames"]]
    texts = {} if result.texts is None else {"text": result.texts}  # what was generated, where it was
    return [dict(index=batch["index"][i], id=batch["id"][i], type=batch["type"][i], pick=result.picks[i],
                 answer=batch["answer"][i], correct=result.picks[i] == batch["answer"][i],
                 visual_tokens=result.visual_tokens[i], full_tokens=model.full_tokens(*frames[i]),
                 **{k: v[i] for k, v in texts.items()})
            for i in range(len(batch["question"]))]
