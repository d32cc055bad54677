"""Two models' answers to the same questions, compared question by question: the paired difference of their
accuracies, overall and per question type, with a 95% bootstrap interval (questions resampled together).

    python benchmarks/paired_answers.py A B [--types-from C] [--resamples 10000] [--seed 0]

A and B: ``tokendynamics eval --output`` reports (their ``records``), or one line of a JSON Lines file of
answers (``FILE:LINE``, 1-based; a row with ``correct``, and ``types`` where it has them, as the MotionQA
result files keep them). Both must answer the same questions in the same order; a row without types takes
them from the other side or from ``--types-from``. Prints a table; the difference is B minus A, in points.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def read_answers(spec: str) -> tuple[list[bool], list[str] | None]:
    """Per-question correctness (and types, where known) of an eval report or of ``FILE:LINE``."""
    path, _, line = spec.rpartition(":") if not Path(spec).is_file() else (spec, "", "")
    if not Path(path).is_file():
        raise SystemExit(f"error: no such file: {path or spec}")
    if line:
        rows = Path(path).read_text().splitlines()
        if not line.isdigit() or not 1 <= int(line) <= len(rows):
            raise SystemExit(f"error: {path} has lines 1 to {len(rows)}, not {line!r}")
        row = json.loads(rows[int(line) - 1])
        return [bool(c) for c in row["correct"]], row.get("types")
    report = json.loads(Path(path).read_text())
    if not isinstance(report.get("records"), list):
        raise SystemExit(f"error: {path} holds no records (written by tokendynamics eval --output?)")
    records = sorted(report["records"], key=lambda r: r["index"])
    return [bool(r["correct"]) for r in records], [r["type"] for r in records]


def paired(a: torch.Tensor, b: torch.Tensor, resamples: int, seed: int) -> tuple[float, float, float]:
    """B's accuracy minus A's in points, with the 2.5 and 97.5 percentiles over bootstrap resamples of the
    questions (``a``, ``b``: ``[N]`` float, 1 where right)."""
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(a), (resamples, len(a)), generator=g)
    diffs = (b[picks] - a[picks]).mean(1) * 100
    low, high = torch.quantile(diffs, torch.tensor([0.025, 0.975], dtype=diffs.dtype)).tolist()
    return float((b - a).mean() * 100), low, high


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--types-from", help="an eval report or FILE:LINE whose question types both sides share")
    p.add_argument("--resamples", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    (a, types_a), (b, types_b) = read_answers(args.a), read_answers(args.b)
    if len(a) != len(b):
        raise SystemExit(f"error: {args.a} answers {len(a)} questions, {args.b} {len(b)}")
    types = types_a or types_b or (read_answers(args.types_from)[1] if args.types_from else None)
    a_t, b_t = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    groups = {"overall": torch.ones(len(a), dtype=torch.bool)}
    for name in sorted(set(types or [])):
        groups[name] = torch.tensor([t == name for t in types])
    print("| questions | n | A % | B % | B - A (points) [95% CI] |\n|---|---|---|---|---|")
    for name, mask in groups.items():
        diff, low, high = paired(a_t[mask], b_t[mask], args.resamples, args.seed)
        print(f"| {name} | {int(mask.sum())} | {100 * a_t[mask].mean():.1f} | {100 * b_t[mask].mean():.1f} | "
              f"{diff:+.1f} [{low:+.1f}, {high:+.1f}] |")


if __name__ == "__main__":
    main()
