"""Where a stage-2 training step of the built-in model goes, per reducer: seconds per step (after warm-up),
the profiler's top operations, and a check that every loss and gradient stays finite.

    python benchmarks/profile_train_step.py DATA_DIR [--reducers uniform_pool hash_table] [--steps 20]

DATA_DIR: a MotionQA folder (``tokendynamics motionqa generate``). ``--adaptive D`` runs the reducers that
have an adaptive length at ``max_distortion=D`` instead of ``num_tokens=8``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from tokendynamics.bench import sync
from tokendynamics.data.qa import QADataset, collate_qa
from tokendynamics.models import CompressedLlavaOnevision
from tokendynamics.models.builtin import BUILTIN_DIR
from tokendynamics.models.prompts import training_pairs
from tokendynamics.train import TRAINING_ATTENTION, TrainConfig, trainable


def batches(data_dir: Path, frames: int, batch_size: int, seed: int = 0):
    data = QADataset(data_dir / "train.jsonl", data_dir, frames, prefer_arrays=True)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=min(8, os.cpu_count() or 1),
                                         collate_fn=collate_qa, generator=torch.Generator().manual_seed(seed))
    while True:
        yield from loader


def first_bad(params: dict[str, torch.nn.Parameter]) -> list[str]:
    """Names of the parameters whose gradient is not finite."""
    return [n for n, p in params.items() if p.grad is not None and not torch.isfinite(p.grad).all()]


def run(name: str, options: dict, num_tokens, a) -> None:
    model = CompressedLlavaOnevision.from_pretrained(BUILTIN_DIR / "full", name, num_tokens, device=a.device,
                                                     **options)
    cfg = TrainConfig(data="", video_root="", output="", model="", compressor=name, num_tokens=num_tokens)
    params = [p for group in trainable(model, cfg) for p in group["params"]]
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(params, lr=a.lr)
    stream = batches(Path(a.data), a.frames, a.batch_size)
    attention = TRAINING_ATTENTION + ([SDPBackend.CUDNN_ATTENTION] if a.any_attention else [])

    def backward(batch) -> torch.Tensor:
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.device == "cuda"), sdpa_kernel(attention):
            loss = model(batch["frames"], *training_pairs(batch["question"], batch["options"], batch["answer"],
                                                          "text")).loss
        loss.backward()
        return loss

    def step(batch) -> float:
        loss = backward(batch)
        bad = first_bad(named)
        if not torch.isfinite(loss) or bad:
            print(f"{name}: loss {loss.item()}, non-finite gradients in {bad[:5]}; again with anomaly detection",
                  flush=True)
            optimizer.zero_grad()
            with torch.autograd.detect_anomaly():
                backward(batch)  # raises at the operation whose backward made the first NaN
            raise RuntimeError("the anomaly did not recur")
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    for _ in range(a.warmup):
        step(next(stream))
    ready = [next(stream) for _ in range(a.steps)]
    sync(torch.device(a.device))
    start = time.perf_counter()
    losses = [step(b) for b in ready]
    sync(torch.device(a.device))
    per_step = (time.perf_counter() - start) / a.steps
    print(f"{name} {options or num_tokens}: {per_step * 1e3:.1f} ms/step, {a.batch_size / per_step:.0f} samples/s, "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)
    if a.profile:
        activities = [torch.profiler.ProfilerActivity.CPU] + (
            [torch.profiler.ProfilerActivity.CUDA] if a.device == "cuda" else [])
        with torch.profiler.profile(activities=activities) as prof:
            step(ready[0])
            sync(torch.device(a.device))
        key = "cuda_time_total" if a.device == "cuda" else "cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=a.profile), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--reducers", nargs="+", default=["uniform_pool", "hash_table", "token_dynamics"])
    p.add_argument("--adaptive", type=float, help="max_distortion for token_dynamics and hash_table")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--any-attention", action="store_true",
                   help="let SDPA pick cuDNN too (training excludes it: see train.TRAINING_ATTENTION)")
    p.add_argument("--profile", type=int, default=0, help="print this many rows of a profile of one step")
    a = p.parse_args()
    for name in a.reducers:
        if a.adaptive is not None and name in ("token_dynamics", "hash_table"):
            run(name, dict(max_distortion=a.adaptive, min_tokens=2, max_tokens=32), None, a)
        else:
            run(name, {}, 8, a)


if __name__ == "__main__":
    main()
