"""Plot the MotionQA study's results: accuracy overall, on content and on motion questions, per reducer,
with 95% intervals and the full-token model beside them.

    python benchmarks/plot_motionqa.py [RESULTS.jsonl ...] [--budgets 8 d0.1] [--out benchmarks/results/motionqa/k8.png]
    python benchmarks/plot_motionqa.py --curves [--steps 300]   # accuracy against K, one line per reducer
    python benchmarks/plot_motionqa.py --curves --steps 1000 RESULTS.jsonl ...
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from motionqa_report import reducer as reducer_name  # noqa: E402

HERE = Path(__file__).parent / "results" / "motionqa"
GRID = [HERE / "stage1-pretrained-tower-8frames.jsonl", HERE / "stage2-k8.jsonl", HERE / "stage2-grid-300steps.jsonl",
        HERE / "stage2-grid-finish-300steps.jsonl"]
DEFAULT = [HERE / "stage1-pretrained-tower-8frames.jsonl", HERE / "stage2-k8-1000steps.jsonl", HERE / "stage2-k8.jsonl",
           HERE / "stage2-adaptive-1000steps.jsonl"]


BUDGET_OPTIONS = ("max_distortion", "min_tokens", "max_tokens")  # shown as the budget, not as options


def _name(r: dict) -> str:
    """The reducer with the options it ran with, as the report names it (``token_dynamics (attend=own)``),
    the budget's own options left out."""
    options = {k: v for k, v in (r.get("options") or {}).items() if k not in BUDGET_OPTIONS}
    return reducer_name({**r, "options": options})


def _label(r: dict) -> str:
    """reducer (options) budget (steps): ``K=8`` fixed, ``D<=0.1 ~8.4`` adaptive (target, mean tokens);
    ``full tokens (500 st.)`` for a study's full-token control."""
    steps = r.get("steps") or r.get("config", {}).get("steps")
    if r["reducer"] == "full":
        return f"full tokens ({steps} st.)"
    budget = f"K={r['k']}" if r.get("k") else f"D<={r['options']['max_distortion']} ~{r['test']['visual_tokens']['mean'] - 1:.1f}"
    return f"{_name(r)} {budget}" + (" (free)" if r["run"] == "training-free" else f" ({steps} st.)")


def load(paths, budgets=None) -> list[tuple[str, dict]]:
    """(label, test block) per run with a test result, in file order (a run seen twice is kept once)."""
    runs, seen = [], set()
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            if "test" not in r or budgets and r["run"] != "stage1" and r["reducer"] != "full" \
                    and r.get("budget", str(r.get("k"))) not in budgets:
                continue
            if r["run"] == "stage1":
                label = "full tokens"
            else:
                label = _label(r)
            if label not in seen:
                seen.add(label)
                runs.append((label, r["test"]))
    return runs


def curves(paths, steps: int) -> tuple[dict, dict]:
    """Fixed-K runs: ``{(reducer [variant], run): {K: test}}`` (fine-tuned ones of ``steps`` steps only),
    and the full-token test block."""
    lines, full = {}, None
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            if "test" in r and (r["run"] == "stage1" or r["reducer"] == "full" and r.get("steps") == steps):
                full = r["test"]
            elif r.get("k") and "test" in r and (r["run"] == "training-free" or r.get("steps") == steps):
                lines.setdefault((_name(r), r["run"]), {}).setdefault(r["k"], r["test"])
    return lines, full


def plot_curves(lines: dict, full: dict, steps: int, out: Path) -> None:
    """Overall, content and motion accuracy against K: solid fine-tuned, dashed training-free."""
    reducers = sorted({name for name, _ in lines}, key=lambda n: (not n.startswith("token_dynamics"), n))
    colours = dict(zip(reducers, itertools.cycle(plt.get_cmap("tab20").colors)))  # more reducers than colours
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    for ax, part in zip(axes, ("overall", "content", "motion")):
        for (name, run), by_k in sorted(lines.items()):
            ks = sorted(by_k)
            ax.plot(ks, [100 * by_k[k][part]["accuracy"] for k in ks], marker="o", color=colours[name],
                    linestyle="-" if run == "fine-tuned" else "--", linewidth=2.5 if name.startswith("token_dynamics") else 1.2,
                    label=f"{name} ({'fine-tuned' if run == 'fine-tuned' else 'free'})")
        if full:
            ax.axhline(100 * full[part]["accuracy"], color="black", linewidth=1)
        ax.axhline(20, color="tab:blue", linestyle=":", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks([4, 8, 16, 32], ["4", "8", "16", "32"])
        ax.set_xlabel("K (table rows / tokens kept)")
        ax.set_title(f"{part} accuracy (%)")
    axes[2].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(f"MotionQA test (2,000 questions) against K; fine-tuned {steps} steps; black: full tokens, "
                 "dotted: chance")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def markdown(runs) -> str:
    """The runs as a Markdown table: tokens (% of full), accuracy with its interval, relative drop."""
    full = next((t["overall"]["accuracy"] for label, t in runs if label.startswith("full tokens")), None)
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
    p.add_argument("results", nargs="*", type=Path)
    p.add_argument("--budgets", nargs="*", help="keep these budgets only (e.g. 8 d0.1)")
    p.add_argument("--out", type=Path, default=HERE / "k8.png")
    p.add_argument("--markdown", action="store_true", help="print the runs as a Markdown table instead")
    p.add_argument("--curves", action="store_true", help="accuracy against K per reducer (default results: the grid)")
    p.add_argument("--steps", type=int, default=300, help="--curves: the fine-tuned runs of this many steps")
    a = p.parse_args()
    if a.curves:
        out = a.out if a.out != HERE / "k8.png" else HERE / f"grid-{a.steps}steps.png"
        plot_curves(*curves(a.results or GRID, a.steps), a.steps, out)
        print(out)
        return
    a.results = a.results or DEFAULT
    runs = load(a.results, a.budgets)
    if a.markdown:
        print(markdown(runs))
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.35 * len(runs) + 1.5), sharey=True)
    for ax, part in zip(axes, ("overall", "content", "motion")):
        acc = [100 * t[part]["accuracy"] for _, t in runs]
        low = [a_ - 100 * t[part]["ci95"][0] for a_, (_, t) in zip(acc, runs)]
        high = [100 * t[part]["ci95"][1] - a_ for a_, (_, t) in zip(acc, runs)]
        colours = ["black" if label.startswith("full tokens") else "tab:red" if label.startswith("token_dynamics")
                   else "tab:gray" for label, _ in runs]
        ax.barh(range(len(runs)), acc, xerr=[low, high], color=colours, capsize=2)
        ax.axvline(20, color="tab:blue", linestyle="--", linewidth=1)
        ax.set_title(f"{part} accuracy (%)")
        ax.set_xlim(0, 100)
    axes[0].set_yticks(range(len(runs)), [label for label, _ in runs])
    axes[0].invert_yaxis()
    full = [t["visual_tokens"]["full_mean"] for label, t in runs if label.startswith("full tokens")]
    fig.suptitle("MotionQA test (2,000 questions), built-in architecture" +
                 (f", {full[0]:.0f} visual tokens per video in full" if full else "") + "; dashed: chance")
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(a.out)


if __name__ == "__main__":
    main()
