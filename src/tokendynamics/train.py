"""Fine-tuning a host video LLM with a reducer on multiple-choice QA, one process or many (``accelerate``).

The recipe is the paper's: the reducer trains together with the host, the LLM included. ``llm`` says how
the LLM trains: ``"lora"`` (the default: LoRA adapters on every attention and MLP projection of the LLM,
through ``peft``, with the reducer's weights and the projector; the vision tower stays frozen),
``"full"`` (every weight: tower, projector, reducer and LLM) or ``"frozen"`` (the reducer and the projector
alone: an ablation, and what older releases did). The loss is that of answering with the option's letter
(or, ``target="text"``, the option's text after the question alone). Read top to bottom: set up, resume,
loop, save.

    tokendynamics train --model PATH --data train.jsonl --video-root DIR --reducer token_dynamics \\
        --num-tokens 8 --output runs/td8            # or: accelerate launch -m tokendynamics.cli train ...

The batch size is global: with ``n`` processes each takes ``batch_size / n`` of every batch, so runs on
different process counts see the same batches. A checkpoint (trained weights, optimiser, scheduler, RNG and
loop state) is written every ``save_every`` steps, the one before kept as ``checkpoint.previous``, and a run
restarted with the same ``--output`` and settings resumes from it, from the previous one where the newest
cannot be read (``--stop-after N`` runs N steps and exits, for time-boxed jobs; ``existing``: what to do with
a run of other settings). The final model (LoRA adapters merged
in) goes to ``output/model`` with its recipe (:mod:`.models.recipe`); a LoRA run also keeps its adapters
alone in ``output/adapter`` (peft's format).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ._accelerate import make_accelerator
from ._checks import check_choice, check_positive_fields
from .data.augment import AUGMENTATIONS, Mirror
from .data.motionqa.rendered import RenderedMotionQA
from .data.motionqa.spec import BACKGROUNDS
from .data.qa import QADataset, collate_qa, load_qa
from .models import VideoLLM, load_model
from .models.prompts import training_pairs
from .models.recipe import ANSWER_MODES, recipe_frames, recipe_target

CHECKPOINT = "checkpoint"
PREVIOUS = CHECKPOINT + ".previous"
LOOP_STATE = "loop_state.json"
ADAPTER = "adapter"
LLM_MODES = ("lora", "full", "frozen")
EXISTING = ("check", "resume", "overwrite")
CONFIG_FILE = "train_config.json"
# settings that may change between invocations of one run (how it is run, not what it learns)
RUN_ONLY = ("output", "workers", "save_every", "log_every", "frame_cache", "skip_bad", "stop_after", "existing")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TrainConfig:
    """Settings of a training run (the CLI's flags). ``batch_size`` is global; ``steps`` counts optimiser
    steps (each of ``grad_accum`` batches)."""

    model: str
    data: str | None  # QA JSON Lines (None with rendered_seed)
    video_root: str | None
    output: str
    compressor: str = "token_dynamics"
    num_tokens: int | None = 8
    compressor_options: dict = field(default_factory=dict)
    frames: int | None = None  # None: the starting model's recipe, else 32
    batch_size: int = 8
    grad_accum: int = 1
    steps: int = 1000
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup: int = 50
    max_grad_norm: float = 1.0
    llm: str = "lora"  # how the LLM trains: "lora" adapters, "full" (every weight of the host), "frozen"
    lora_rank: int = 16
    vision_lr_scale: float = 1.0  # with llm="full": the vision tower's lr as a share of lr (0 freezes it;
    # LLaVA-OneVision trains its tower at 0.2 of the LLM's rate)
    train_projector: bool = True
    augment: str | None = None  # "hflip" / "flip": mirror videos, rewriting their questions (data.augment)
    target: str | None = None  # "letter": answer the options prompt with a letter; "text": the question
    # alone with the correct option's text (what ``eval --mode likelihood`` scores); None: the starting
    # model's recipe, else "letter"
    save_every: int = 100
    log_every: int = 10
    seed: int = 0
    workers: int = 2
    prefer_arrays: bool = True
    skip_bad: bool = False
    frame_cache: str | None = None  # a directory for the sampled frames of every video (data.framecache)
    mixed_precision: str | None = None  # None: bf16 on GPU, none on CPU
    stop_after: int | None = None  # optimiser steps to run in this invocation (then checkpoint and exit)
    existing: str = "check"  # an output that holds a run: "check" (resume it only if its settings are
    # these), "resume" (resume it with these settings), "overwrite" (delete it and start over)
    rendered_seed: int | None = None  # instead of data: MotionQA's train split of this seed, every video
    # rendered as it is read (data.motionqa.rendered: no question repeats within 10 million)
    rendered_size: int = 112  # the rendered videos' side in pixels
    rendered_backgrounds: str = "muted"  # their backgrounds (MotionQAConfig.backgrounds: "muted" or "wide")
    types: list[str] | None = None  # train on questions of these types only (a curriculum step)
    type_weights: dict | None = None  # with rendered_seed: {type: w}, a type w times as often (RenderedMotionQA)

    def __post_init__(self):
        check_positive_fields(self, ("batch_size", "grad_accum", "steps", "save_every", "log_every", "lora_rank",
                                     "frames"))  # frames None: taken from the recipe
        check_choice(self.llm, "llm", LLM_MODES)
        if self.target is not None:  # None: the starting model's recipe
            check_choice(self.target, "target", ("letter", "text"))
        if not (self.lr > 0 and self.weight_decay >= 0 and self.warmup >= 0):
            raise ValueError("lr must be > 0, weight_decay and warmup >= 0")
        if not 0 <= self.vision_lr_scale:
            raise ValueError(f"vision_lr_scale must be >= 0, got {self.vision_lr_scale!r}")
        check_choice(self.existing, "existing", EXISTING)
        if self.augment is not None:
            check_choice(self.augment, "augment", AUGMENTATIONS)
        if (self.data is None) == (self.rendered_seed is None):
            raise ValueError("give data (--data: a QA file) or rendered_seed (--rendered-seed: MotionQA rendered "
                             "as it is read), not both")
        check_choice(self.rendered_backgrounds, "rendered_backgrounds", BACKGROUNDS)
        if self.type_weights and self.rendered_seed is None:
            raise ValueError("type_weights (--type-weight) needs rendered_seed (--rendered-seed)")
        if self.data is not None and self.video_root is None:
            raise ValueError("data needs video_root, the directory its videos' paths start from")


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C: where it was, and where it resumes from."""

    def __init__(self, output: Path, step: int, saved: int | None):
        where = (f"the checkpoint in {output / CHECKPOINT} holds step {saved}: run the same command again to "
                 f"resume from it" if saved is not None else "no checkpoint was written yet")
        super().__init__(f"training interrupted at step {step}; {where}")


class LoopState:
    """Where the loop is: optimiser steps done, epoch, batches of the epoch consumed, losses logged. Saved
    as JSON in the checkpoint (:data:`LOOP_STATE`), so that nothing of a checkpoint is unpickled beyond
    what accelerate loads with ``weights_only``."""

    def __init__(self):
        self.step, self.epoch, self.batch, self.skipped, self.log = 0, 0, 0, 0, []

    def state_dict(self) -> dict:
        return dict(step=self.step, epoch=self.epoch, batch=self.batch, skipped=self.skipped, log=self.log)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


def add_lora(model: VideoLLM, rank: int) -> None:
    """LoRA adapters (rank ``rank``, alpha ``2 rank``) on the LLM's attention and MLP projections."""
    from peft import LoraConfig, get_peft_model

    lm = model.language_model
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=LORA_TARGETS)
    model.set_language_model(get_peft_model(lm, config))


def merge_lora(model: VideoLLM, adapter_dir: Path | None = None) -> None:
    """Fold LoRA adapters into the LLM's weights (so the saved model is a plain host checkpoint), saving
    them alone to ``adapter_dir`` first where given."""
    lm = model.language_model
    if hasattr(lm, "merge_and_unload"):
        if adapter_dir is not None:
            lm.save_pretrained(str(adapter_dir))
        model.set_language_model(lm.merge_and_unload())


def recipe(cfg: TrainConfig, base: dict | None = None) -> dict:
    """What the saved model records of its training (:mod:`.models.recipe`): the settings, the data it read
    (a QA file, or rendered MotionQA with its seed, types and weights), and under ``"from"`` the recipe of
    the model it started from (``base``), so that a chain of runs is recorded whole."""
    keys = ("model", "compressor", "num_tokens", "compressor_options", "frames", "target", "llm", "lora_rank",
            "vision_lr_scale", "train_projector", "augment", "steps", "batch_size", "grad_accum", "lr",
            "weight_decay", "warmup", "seed", "data", "rendered_seed", "rendered_backgrounds", "types",
            "type_weights")
    own = dict({k: getattr(cfg, k) for k in keys}, answer_mode=ANSWER_MODES[cfg.target])
    return dict(own, **({"from": base} if base else {}))


# cuDNN's attention backward returns NaN query gradients on H100/H200 under torch 2.11 when a mask is passed and
# the sequence length is 64 mod 128 (pytorch/pytorch#196678): padded batches of varying length (adaptive
# reducers) hit it. Training keeps to the other kernels, which give the same result.
TRAINING_ATTENTION = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def trainable(model: VideoLLM, cfg: TrainConfig) -> list[dict]:
    """Freeze the host, then unfreeze what this run trains; returns the optimiser's parameter groups (the
    vision tower's at ``vision_lr_scale`` of the rate, where it trains)."""
    model.requires_grad_(cfg.llm == "full")
    tower = model.vision_tower
    if cfg.vision_lr_scale == 0:
        tower.requires_grad_(False)
    if cfg.llm == "lora":
        add_lora(model, cfg.lora_rank)  # marks only the adapters trainable
    model.reducer.requires_grad_(True)
    if cfg.train_projector:
        model.projector.requires_grad_(True)
    in_tower = {id(p) for p in tower.parameters()} - {id(p) for p in model.projector.parameters()}  # a tower
    # may hold the projector (Qwen2.5-VL's merger), which trains at the full rate
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"nothing to train: reducer {cfg.compressor!r} has no weights, the projector is frozen "
                         f"and so is the LLM")
    groups = [dict(params=[p for p in params if id(p) not in in_tower], lr=cfg.lr),
              dict(params=[p for p in params if id(p) in in_tower], lr=cfg.lr * cfg.vision_lr_scale)]
    return [g for g in groups if g["params"]]


def schedule(cfg: TrainConfig):
    """Linear warm-up over ``warmup`` steps, then cosine decay to 10% of ``lr``."""
    def factor(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def check_existing(cfg: "TrainConfig", output: Path) -> bool:
    """Whether the run held in ``output`` is to be deleted first (``cfg.existing == "overwrite"``); refuses
    to resume one whose saved settings differ from ``cfg``'s, naming them, unless told to resume anyway.
    Reads only, so every process of a run reaches the same verdict."""
    saved = output / CONFIG_FILE
    if not (output / CHECKPOINT).is_dir() or not saved.is_file():
        return False
    if cfg.existing == "overwrite":
        return True
    new = asdict(cfg)
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    old = defaults | json.loads(saved.read_text())  # a setting newer than the run: its default
    changed = [f"{k} {old.get(k)!r} -> {new[k]!r}" for k in new if k not in RUN_ONLY and old.get(k) != new[k]]
    if changed and cfg.existing == "check":
        raise ValueError(f"{output} holds a run with other settings ({'; '.join(changed)}): pass --resume to "
                         f"continue it with these, or --overwrite to start over")
    return False


def save_checkpoint(accelerator, output: Path, state: LoopState) -> None:
    """Write the checkpoint (accelerate's files and the loop state) beside the old one, then swap, so a kill
    never leaves a half-written one; the one before is kept as ``checkpoint.previous`` (resumed from where
    the newest cannot be read)."""
    tmp, final, previous = output / (CHECKPOINT + ".tmp"), output / CHECKPOINT, output / PREVIOUS
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / LOOP_STATE).write_text(json.dumps(state.state_dict()))
        if final.exists():
            shutil.rmtree(previous, ignore_errors=True)
            final.rename(previous)
        tmp.rename(final)
    accelerator.wait_for_everyone()


def resume(accelerator, output: Path, state: "LoopState") -> None:
    """Load the run's checkpoint; one that cannot be read (truncated, corrupted) is reported and the previous
    one, where it is kept, takes its place; with neither readable the run stops with one line naming them."""
    failures = []
    for path in (output / CHECKPOINT, output / PREVIOUS):
        if not path.is_dir():
            continue
        try:
            accelerator.load_state(str(path), strict=False)
            state.load_state_dict(json.loads((path / LOOP_STATE).read_text()))
        except Exception as e:  # whatever an unreadable file makes torch, safetensors or pickle raise
            failures.append(f"{path} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
            continue
        if failures:
            accelerator.print(f"checkpoint {failures[0]} cannot be read; resumed from {path}")
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:  # the unreadable one goes, the previous takes its place
                shutil.rmtree(output / CHECKPOINT)
                path.rename(output / CHECKPOINT)
            accelerator.wait_for_everyone()
        accelerator.print(f"resumed at step {state.step}")
        return
    raise ValueError(f"checkpoint {'; '.join(failures)} cannot be read; --overwrite starts over")


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns the summary also written to ``output/train_summary.json``."""
    from accelerate.utils import DataLoaderConfiguration, set_seed

    output = Path(cfg.output)
    accelerator = make_accelerator(cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                                   dataloader_config=DataLoaderConfiguration(split_batches=True,
                                                                             use_seedable_sampler=True))
    if cfg.batch_size % accelerator.num_processes:
        raise ValueError(f"batch_size ({cfg.batch_size}) must divide among {accelerator.num_processes} processes")
    set_seed(cfg.seed)
    model = load_model(cfg.model, cfg.compressor, cfg.num_tokens, **cfg.compressor_options)
    cfg = replace(cfg, frames=recipe_frames(model.recipe, cfg.frames), target=recipe_target(model.recipe, cfg.target))
    if check_existing(cfg, output) and accelerator.is_main_process:
        shutil.rmtree(output)
    accelerator.wait_for_everyone()
    groups = trainable(model, cfg)
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(cfg))
    data = training_data(cfg)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         collate_fn=collate_qa, num_workers=cfg.workers,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    if len(loader) == 0:
        raise ValueError(f"batch_size ({cfg.batch_size}) is larger than the dataset ({len(data)} questions)")
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    state = LoopState()
    accelerator.register_save_state_pre_hook(_only_trainable)
    if (output / CHECKPOINT).is_dir():
        resume(accelerator, output, state)
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        (output / CONFIG_FILE).write_text(json.dumps(asdict(cfg), indent=2))

    bar = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                   TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                   disable=not accelerator.is_main_process)
    task = bar.add_task("train", total=cfg.steps, completed=state.step, loss="-")
    start, samples, running = time.perf_counter(), 0, []
    last = cfg.steps if cfg.stop_after is None else min(cfg.steps, state.step + cfg.stop_after)
    saved = state.step if (output / CHECKPOINT).is_dir() else None  # the step the checkpoint holds
    try:
        with bar, sdpa_kernel(TRAINING_ATTENTION):
            while state.step < last:
                loader.set_epoch(state.epoch)
                batches = accelerator.skip_first_batches(loader, state.batch) if state.batch else loader
                for batch in batches:
                    with accelerator.accumulate(model):
                        loss = _loss(model, batch, params, cfg.target)
                        accelerator.backward(loss)
                        if accelerator.sync_gradients:
                            accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                        optimizer.step()
                        scheduler.step()
                        optimizer.zero_grad()
                    state.batch += 1
                    state.skipped += batch["skipped"]
                    samples += len(batch["question"])
                    running.append(accelerator.gather(loss.detach()[None]).mean().item())
                    if not accelerator.sync_gradients:
                        continue
                    state.step += 1
                    if state.step % cfg.log_every == 0 or state.step == cfg.steps:
                        state.log.append(dict(step=state.step, loss=sum(running) / len(running),
                                              lr=scheduler.get_last_lr()[0]))
                        running = []
                    bar.update(task, completed=state.step, loss=f"{state.log[-1]['loss']:.4f}" if state.log else "-")
                    if state.step % cfg.save_every == 0 or state.step == last:
                        save_checkpoint(accelerator, output, state)
                        saved = state.step
                    if state.step >= last:
                        break
                else:
                    state.epoch, state.batch = state.epoch + 1, 0
    except KeyboardInterrupt:
        raise Interrupted(output, state.step, saved) from None
    elapsed = time.perf_counter() - start
    skipped = int(accelerator.gather(torch.tensor([state.skipped], device=accelerator.device)).sum())
    local = torch.tensor([samples], device=accelerator.device)
    total_samples = int(accelerator.gather(local).sum())
    summary = dict(steps=state.step, final_loss=state.log[-1]["loss"] if state.log else None, log=state.log,
                   skipped_videos=skipped, processes=accelerator.num_processes,
                   samples_per_second=total_samples / elapsed if elapsed > 0 else None)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and state.step < cfg.steps:
        (output / "train_summary.json").write_text(json.dumps(summary, indent=2))
        accelerator.print(f"stopped at step {state.step} of {cfg.steps}; run again to resume")
    elif accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        merge_lora(final, output / ADAPTER)
        final.recipe = recipe(cfg, final.recipe)  # the starting model's, until now
        final.save_pretrained(output / "model")
        (output / "train_summary.json").write_text(json.dumps(summary, indent=2))
        if skipped:
            accelerator.print(f"skipped {skipped} unreadable videos")
    accelerator.wait_for_everyone()
    model = optimizer = loader = scheduler = batches = None  # the DDP wrapper and its reducer go first,
    accelerator.free_memory()  # with accelerate's references (and cycles), while the process group exists
    accelerator.end_training()  # tears the process group down on every process together
    return summary


def training_data(cfg: TrainConfig):
    """The questions a run trains on: ``cfg.data``'s (decoded, or from its frame cache) or MotionQA's
    rendered on the fly; only those of ``cfg.types`` where given."""
    augment = cfg.augment and Mirror.named(cfg.augment)
    if cfg.rendered_seed is not None:
        return RenderedMotionQA(cfg.rendered_seed, cfg.frames, cfg.rendered_size, types=cfg.types, augment=augment,
                                weights=cfg.type_weights, backgrounds=cfg.rendered_backgrounds)
    items = load_qa(cfg.data)
    if cfg.types:
        items = [item for item in items if item.type in cfg.types]
        if not items:
            raise ValueError(f"data {cfg.data!r} holds no question of types {cfg.types}")
    return QADataset(items, cfg.video_root, cfg.frames, prefer_arrays=cfg.prefer_arrays, skip_bad=cfg.skip_bad,
                     cache_dir=cfg.frame_cache, augment=augment)


def _only_trainable(models, weights, _directory) -> None:
    """Checkpoints hold the trained weights only (the frozen host is reloaded from its checkpoint)."""
    for model, weights_of in zip(models, weights):
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        for key in [k for k in weights_of if k not in names]:
            del weights_of[key]


def _loss(model, batch, params, target: str) -> torch.Tensor:
    """The batch's loss; a batch whose videos were all skipped contributes zero (and still joins the
    gradient exchange of a multi-process run)."""
    if not batch["question"]:
        return sum(p.sum() * 0 for p in params)
    return model(batch["frames"], *training_pairs(batch["question"], batch["options"], batch["answer"], target)).loss
