"""Where the Token Dynamics reducer's time goes at a host's width: input check, hashing, table rows, the
cross-dynamics attention (``fuse``), against the whole ``reducers["token_dynamics"]`` call.

    python benchmarks/profile_reducer.py [--device cuda] [--frames 64] [--dim 3584] [--k 8] [--data gaussian]

Defaults are issue 8's headline: LLaVA-OneVision-7B's pooled video grid (64 x 14 x 14 x 3584, bf16),
8 tokens, an untrained module (the same compute as a trained one).
"""

import argparse
import sys
from pathlib import Path

import torch

import tokendynamics as td
from tokendynamics._checks import check_video_tokens
from tokendynamics.bench import median_time
from tokendynamics.token_dynamics import table_rows

sys.path.insert(0, str(Path(__file__).parent))
from bench_hashing import token_video  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--dim", type=int, default=3584)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--data", choices=("planted", "gaussian"), default="gaussian")
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    dev = torch.device(a.device)
    x = token_video(a.data, a.frames, a.dim).to(dev, torch.bfloat16)
    model = td.TokenDynamics(dim=a.dim, num_tokens=a.k).to(dev, torch.bfloat16).eval()

    def ms(fn):
        seconds, out = median_time(fn, dev, a.repeats)
        return seconds * 1e3, out

    with torch.no_grad():
        t_all, _ = ms(lambda: td.reducers["token_dynamics"](x, num_tokens=a.k))
        t_model, _ = ms(lambda: model(x))
        t_check, _ = ms(lambda: check_video_tokens(x))
        t_hash, h = ms(lambda: td.hash_video(x, **model.config.hash_kwargs))
        t_rows, table = ms(lambda: table_rows(x, h, torch.bfloat16))
        t_fuse, _ = ms(lambda: model.fuse(table, h.key_map, h.mask))
    print(f"{dev} {a.frames}x14x14x{a.dim} bf16 {a.data} K={a.k}: reducers call {t_all:.2f} ms; module "
          f"{t_model:.2f} = check {t_check:.2f} + hash_video {t_hash:.2f} + table rows {t_rows:.2f} + fuse "
          f"{t_fuse:.2f}")
    if dev.type == "cuda":
        from torch.profiler import ProfilerActivity, profile
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model(x)
            torch.cuda.synchronize()
        events = prof.key_averages()
        gpu_us = sum(e.self_device_time_total for e in events)
        launches = sum(e.count for e in events if e.key.startswith(("cudaLaunchKernel", "cudaGraphLaunch")))
        syncs = sum(e.count for e in events if e.key.startswith(("cudaStreamSynchronize", "cudaDeviceSynchronize")))
        print(f"module: GPU busy {gpu_us / 1e3:.2f} ms, launches {launches}, syncs {syncs}")
        print(events.table(sort_by="self_device_time_total", row_limit=15))
        print(events.table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
