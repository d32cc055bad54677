"""Plot the MotionQA study's results: accuracy overall, on content and on motion questions, per reducer,
with 95% intervals and the full-token model beside them.

    python benchmarks/plot_motionqa.py [RESULTS.jsonl ...] [--budgets 8 d0.1] [--out benchmarks/results/motionqa/k8.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent / "results" / "motionqa"
DEFAULT = [HERE / "stage1-pretrained-tower-8frames.jsonl", HERE / "stage2-k8-1000steps.jsonl", HERE / "stage2-k8.jsonl",
           HERE / "stage2-adaptive-1000steps.jsonl"]


def _label(r: dict) -> str:
    """reducer [variant] budget (steps): ``K=8`` fixed, ``D<=0.1 ~8.4`` adaptive (target, mean tokens)."""
    steps = r.get("steps") or r.get("config", {}).get("steps")
    variant = f" [{r['variant']}]" if r.get("variant") else ""
    budget = f"K={r['k']}" if r.get("k") else f"D<={r['options']['max_distortion']} ~{r['test']['visual_tokens']['mean'] - 1:.1f}"
    return f"{r['reducer']}{variant} {budget}" + (" (free)" if r["run"] == "training-free" else f" ({steps} st.)")


def load(paths, budgets=None) -> list[tuple[str, dict]]:
    """(label, test block) per run with a test result, in file order (a run seen twice is kept once)."""
    runs, seen = [], set()
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            if "test" not in r or budgets and r["run"] != "stage1" and r.get("budget", str(r.get("k"))) not in budgets:
                continue
            if r["run"] == "stage1":
                label = "full tokens"
            else:
                label = _label(r)
            if label not in seen:
                seen.add(label)
                runs.append((label, r["test"]))
    return runs


def markdown(runs) -> str:
    """The runs as a Markdown table: tokens (% of full), accuracy with its interval, relative drop."""
    full = next((t["overall"]["accuracy"] for label, t in runs if label == "full tokens"), None)
    lines = ["| run | visual tokens (% of full) | overall % [95% CI] | content % | motion % | relative drop |",
             "|---|---|---|---|---|---|"]
    for label, t in runs:
        o, v = t["overall"], t["visual_tokens"]
        drop = f"{100 * (1 - o['accuracy'] / full):.0f}%" if full else "-"
        lines.append(f"| {label} | {v['mean']:.1f} ({v['percent_of_full']:.1f}%) | {100 * o['accuracy']:.1f} "
                     f"[{100 * o['ci95'][0]:.1f}, {100 * o['ci95'][1]:.1f}] | {100 * t['content']['accuracy']:.1f} | "
                     f"{100 * t['motion']['accuracy']:.1f} | {drop} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="*", type=Path, default=DEFAULT)
    p.add_argument("--budgets", nargs="*", help="keep these budgets only (e.g. 8 d0.1)")
    p.add_argument("--out", type=Path, default=HERE / "k8.png")
    p.add_argument("--markdown", action="store_true", help="print the runs as a Markdown table instead")
    a = p.parse_args()
    runs = load(a.results, a.budgets)
    if a.markdown:
        print(markdown(runs))
        return
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
