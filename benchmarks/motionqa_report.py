"""The MotionQA study's tables from its raw results: every run beside the equal-steps control of its own
results file (full tokens trained the same further steps with the same recipe in the same GPU call),
overall, content and motion with 95% Wilson intervals, per question type, and the relative drop against
that control and against the stage-1 model.

    python benchmarks/motionqa_report.py results/motionqa/recipe-k8-h200-2026-12-01-a.jsonl ... \\
        [--stage1 0.517] [--per-type]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tokendynamics.data.motionqa import CONTENT_TYPES, MOTION_TYPES
from tokendynamics.evaluate import wilson


def share(test: dict, types) -> tuple[float, list[float]]:
    """Accuracy and 95% interval over the question types ``types`` of one run's test block."""
    n = sum(test["per_type_n"][t] for t in types if t in test["per_type_n"])
    right = round(sum(test["per_type"][t] * test["per_type_n"][t] for t in types if t in test["per_type_n"]))
    return right / n, wilson(right, n)


def fmt(value: float, interval: list[float]) -> str:
    return f"{100 * value:.1f} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def reducer(run: dict) -> str:
    """The reducer's name with the options it ran with, e.g. ``tome (order=video)``."""
    options = run.get("options") or {}
    return run["reducer"] + (f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else "")


def rows(paths: list[Path]) -> list[dict]:
    """Every run, with its file's control of the same ``llm`` setting (None where the file has none, and
    for training-free runs)."""
    out = []
    for path in paths:
        runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        controls = {r["llm"]: r for r in runs if r["reducer"] == "full" and r["run"] == "fine-tuned"}
        for r in runs:
            # a training-free result's equal-steps control is the stage-1 model itself (no further steps)
            out.append(dict(r, file=path.name, control=controls.get(r["llm"]) if r["run"] == "fine-tuned" else None))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--stage1", type=float, default=0.517, help="the stage-1 model's test accuracy")
    p.add_argument("--per-type", action="store_true", help="also print the per-type table")
    a = p.parse_args()
    table = rows(a.results)
    print("| reducer | K | LLM in stage 2 | visual tokens | overall % [95% CI] | content % | motion % "
          "| drop vs control | drop vs stage 1 | file |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        t = r["test"]
        overall = t["overall"]["accuracy"]
        training = r["llm"] if r["run"] == "fine-tuned" else "training-free"
        control = r["control"]["test"]["overall"]["accuracy"] if r["control"] else None
        drop = "-" if control is None or r["reducer"] == "full" else f"{100 * (1 - overall / control):.1f}%"
        tokens = t["visual_tokens"]["mean"]
        print(f"| {reducer(r)} | {r['k'] or '-'} | {training} | {tokens:.0f} | "
              f"{fmt(overall, t['overall']['ci95'])} | {fmt(*share(t, CONTENT_TYPES))} | "
              f"{fmt(*share(t, MOTION_TYPES))} | {drop} | {100 * (1 - overall / a.stage1):.1f}% | {r['file']} |")
    if a.per_type:
        types = CONTENT_TYPES + MOTION_TYPES
        print("\n| reducer | LLM | " + " | ".join(types) + " |")
        print("|---|---|" + "---|" * len(types))
        for r in table:
            t = r["test"]
            training = r["llm"] if r["run"] == "fine-tuned" else "training-free"
            cells = [fmt(t["per_type"][k], wilson(round(t["per_type"][k] * t["per_type_n"][k]), t["per_type_n"][k]))
                     for k in types]
            print(f"| {reducer(r)} | {training} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
