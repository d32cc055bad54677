"""Cost of the learned half: ``TokenDynamics`` forward beside ``hash_video`` alone, same process.

    python benchmarks/bench_dynamics.py [--device cpu|cuda] [--out DIR]

64 frames x 14 x 14 tokens x 1152 dims (planted structure), K in {8, 32}, one layer, 8 heads, no gradient.
Multiply-adds (MACs) are counted by formula; "attention adds" is (forward - hash) / hash.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import tokendynamics as td
from tokendynamics.bench import machine, median_time, write_results

sys.path.insert(0, str(Path(__file__).parent))
from bench_hashing import headline_setup  # noqa: E402


def macs(cfg, t, h, w, k):
    """Multiply-adds of the learned half for one video (hashing excluded), by formula."""
    d, n, axes, layers = cfg.dim, t * h * w, t + h + w, cfg.layers
    total = n * k * d  # table rows as masked means (one-hot product; a no-gradient forward reuses the hash table)
    total += k * d * d + (axes * 32 * d if cfg.position == "sincos" else 0)  # motion parts
    per_layer = k * d * d + 2 * k * d * d + 2 * k * d * d * cfg.mlp_ratio + k * d * d  # q, kv rows, mlp, out
    if cfg.impl == "dense":
        per_layer += 2 * n * d * d + 2 * k * n * d  # kv on every cell, attention
    else:
        per_layer += k * k * d + cfg.heads * k * n * k + k * k * d  # row scores, per-key sums, row values
        if cfg.position == "sincos":
            per_layer += 2 * axes * d * d + 2 * k * axes * d  # axis kv, axis scores and values
    return total + layers * per_layer


def main():
    a, dev, tokens = headline_setup(__doc__)
    rows = []
    for k in (8, 32):
        t_hash, _ = median_time(lambda: td.hash_video(tokens, num_tokens=k), dev, a.repeats)
        for impl in ("factorized", "dense"):
            torch.manual_seed(0)
            model = td.TokenDynamics(dim=1152, num_tokens=k, impl=impl).to(dev).eval()
            with torch.no_grad():
                t_all, _ = median_time(lambda: model(tokens), dev, a.repeats)
            params = sum(p.numel() for p in model.parameters())
            rows.append(dict(k=k, impl=impl, params=params, gmacs=macs(model.config, 64, 14, 14, k) / 1e9,
                             hash_ms=t_hash * 1e3, forward_ms=t_all * 1e3,
                             attention_adds=(t_all - t_hash) / t_hash))
            print(rows[-1], flush=True)
    result = dict(machine=machine(dev), torch=torch.__version__, rows=rows)
    lines = [f"Machine: {result['machine']}; torch {result['torch']}.", "",
             "| K | impl | params | GMACs (learned half, with the N·K·D table means of a training step) | hash_video (ms) | TokenDynamics forward (ms) | attention adds |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['k']} | {r['impl']} | {r['params'] / 1e6:.2f} M | {r['gmacs']:.3f} | {r['hash_ms']:.1f} | "
              f"{r['forward_ms']:.1f} | {100 * r['attention_adds']:.0f}% |" for r in rows]
    write_results(a.out, f"dynamics-{dev.type}", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
