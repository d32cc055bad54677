"""Plot the MotionQA study's results: accuracy overall, on content and on motion questions, per reducer,
with 95% intervals and the full-token model beside them.

    python benchmarks/plot_motionqa.py [RESULTS.jsonl ...] [--out benchmarks/results/motionqa/k8.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent / "results" / "motionqa"
DEFAULT = [HERE / "stage1-pretrained-tower-8frames.jsonl", HERE / "stage2-k8.jsonl", HERE / "stage2-k8-1000steps.jsonl"]


def load(paths) -> list[tuple[str, dict]]:
    """(label, test block) per run with a test result, in file order (a run seen twice is kept once)."""
    runs, seen = [], set()
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            if "test" not in r:
                continue
            if r["run"] == "stage1":
                label = "full tokens"
            else:
                steps = r.get("steps") or r.get("config", {}).get("steps")
                label = f"{r['reducer']} K={r['k']}" + (" (free)" if r["run"] == "training-free" else f" ({steps} st.)")
            if label not in seen:
                seen.add(label)
                runs.append((label, r["test"]))
    return runs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="*", type=Path, default=DEFAULT)
    p.add_argument("--out", type=Path, default=HERE / "k8.png")
    a = p.parse_args()
    runs = load(a.results)
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.35 * len(runs) + 1.5), sharey=True)
    for ax, part in zip(axes, ("overall", "content", "motion")):
        acc = [100 * t[part]["accuracy"] for _, t in runs]
        low = [a_ - 100 * t[part]["ci95"][0] for a_, (_, t) in zip(acc, runs)]
        high = [100 * t[part]["ci95"][1] - a_ for a_, (_, t) in zip(acc, runs)]
        colours = ["black" if label == "full tokens" else "tab:red" if label.startswith("token_dynamics")
                   else "tab:gray" for label, _ in runs]
        ax.barh(range(len(runs)), acc, xerr=[low, high], color=colours, capsize=2)
        ax.axvline(20, color="tab:blue", linestyle="--", linewidth=1)
        ax.set_title(f"{part} accuracy (%)")
        ax.set_xlim(0, 100)
    axes[0].set_yticks(range(len(runs)), [label for label, _ in runs])
    axes[0].invert_yaxis()
    fig.suptitle("MotionQA test (2,000 questions), built-in model; dashed: chance")
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(a.out)


if __name__ == "__main__":
    main()
