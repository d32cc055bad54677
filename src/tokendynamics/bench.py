"""Timing helpers shared by the benchmarks: median wall time with device synchronisation, the machine's
name, and the device's copy bandwidth (the floor a memory-bound step cannot beat)."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable, device: torch.device, repeats: int = 5):
    """``(median seconds of fn(), its last output)`` over ``repeats`` calls after one warm-up call."""
    out = fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def machine(device: torch.device) -> str:
    """The GPU's name, or the CPU and the number of threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def copy_bandwidth(device: torch.device) -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write counted)."""
    src = torch.empty(1 << 28, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds, _ = median_time(lambda: dst.copy_(src), device, 10)
    return 2 * src.numel() / seconds


def write_results(out_dir, name: str, result: dict, markdown: str) -> None:
    """Write ``name.json`` (raw) and ``name.md`` (the table) into ``out_dir`` and print the table."""
    import json
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
