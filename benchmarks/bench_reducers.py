"""Latency of every reducer in ``td.reducers`` on one video, same process, same data.

    python benchmarks/bench_reducers.py [--device cpu|cuda] [--repeats N] [--out DIR]

64 frames x 14 x 14 tokens x 1152 dims (planted structure, float32), K in {8, 32}, no gradient.
``token_dynamics`` is an untrained module (its compute is the same as a trained one's); ``visionzip`` and
``dycoke`` use the parameter-free saliency (no host attention given). Each time is also given as a ratio
to ``uniform_pool``, the cheapest reducer, measured in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import tokendynamics as td
from tokendynamics.bench import machine, median_time, write_results

sys.path.insert(0, str(Path(__file__).parent))
from bench_hashing import headline_setup  # noqa: E402


def main():
    a, dev, tokens = headline_setup(__doc__)
    rows = []
    with torch.no_grad():
        for k in (8, 32):
            for name, reduce in td.reducers.items():
                seconds, out = median_time(lambda: reduce(tokens, num_tokens=k), dev, a.repeats)
                rows.append(dict(k=k, reducer=name, ms=seconds * 1e3, kept=int(out.mask.sum())))
                print(rows[-1], flush=True)
    base = {r["k"]: r["ms"] for r in rows if r["reducer"] == "uniform_pool"}
    result = dict(machine=machine(dev), torch=torch.__version__, rows=rows)
    lines = [f"Machine: {result['machine']}; torch {result['torch']}. One video, 64 x 196 x 1152 float32.", "",
             "| reducer | K | ms | x uniform_pool |", "|---|---|---|---|"]
    lines += [f"| {r['reducer']} | {r['k']} | {r['ms']:.2f} | {r['ms'] / base[r['k']]:.1f} |" for r in rows]
    write_results(a.out, f"reducers-{dev.type}", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
