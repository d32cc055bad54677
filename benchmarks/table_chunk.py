"""The table stage's float64 cluster sums, converting the tokens whole or a chunk at a time
(``kmeans.WIDE_CHUNK``): time of ``hash_video``'s means-and-distortion step and its peak extra memory.

    python benchmarks/table_chunk.py [--device cuda]

Shapes: a batch of 16 videos of 64 x 196 x 1152 at K = 32, and one 64 x 196 x 3584 video at K = 8.
"""

import argparse
import sys
from pathlib import Path

import torch

from tokendynamics import hashing, kmeans
from tokendynamics.bench import machine, median_time

sys.path.insert(0, str(Path(__file__).parent))
from bench_hashing import token_video  # noqa: E402

CHUNKS = {"whole": 1 << 40, "2^24": 1 << 24, "2^22": 1 << 22, "2^20": 1 << 20}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    dev = torch.device(a.device)
    print(f"{machine(dev)}; torch {torch.__version__}\n")
    print("| shape | K | chunk (elements) | means + distortion (ms) | peak extra memory (MiB) |")
    print("|---|---|---|---|---|")
    for b, dim, k in [(16, 1152, 32), (1, 3584, 8)]:
        x = torch.stack([token_video("planted", 64, dim, seed=s).reshape(-1, dim) for s in range(b)]).to(dev)
        labels = kmeans.kmeans(x, k).labels
        reference = None
        for name, chunk in CHUNKS.items():
            kmeans.WIDE_CHUNK = chunk
            if dev.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            seconds, out = median_time(lambda: hashing._clusters(x, labels, k), dev, 20)
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if dev.type == "cuda" else float("nan")
            if reference is None:
                reference = out
            same = all(torch.equal(o, r) for o, r in zip(out, reference))
            print(f"| {b} x 64 x 196 x {dim} | {k} | {name} | {seconds * 1e3:.2f} | {peak:.0f} |"
                  + ("" if same else " (differs from whole)"))


if __name__ == "__main__":
    main()
