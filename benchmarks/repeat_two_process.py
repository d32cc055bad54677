"""Two-process CPU training and evaluation (torchrun, gloo), run again and again, counting how often a
process ends abnormally (a non-zero exit, or ``terminate called ...`` on its stderr at exit).

    python benchmarks/repeat_two_process.py --runs 100 [--out benchmarks/results]

A tiny LLaVA-OneVision and 20 MotionQA videos are built once; each run is ``tokendynamics train`` (4
steps) and ``tokendynamics eval`` on two processes, as the test ``test_two_processes_match_one`` runs them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.progress import track

from tokendynamics.bench import machine, write_results
from tokendynamics.data import load_qa
from tokendynamics.data.motionqa import generate_motionqa
from tokendynamics.models import build_llava_onevision, multiple_choice


def torchrun(args, cwd) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tokendynamics.cli", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="two-process-"))
    generate_motionqa(root / "mqa", num_videos=20, seed=0, num_frames=16, size=64, arrays=True, workers=1,
                      progress=False)
    host = build_llava_onevision(root / "host", [multiple_choice(i.question, i.options)
                                                 for i in load_qa(root / "mqa" / "train.jsonl")])
    common = ["--model", str(host), "--video-root", str(root / "mqa"), "--frames", "8", "--workers", "0",
              "--data", str(root / "mqa/train.jsonl")]
    failures, start = [], time.perf_counter()
    for run in track(range(a.runs), description="two-process runs"):
        out = root / f"run{run}"
        for name, args in (("train", ["train", *common, "--reducer", "token_dynamics", "--num-tokens", "4",
                                      "--output", str(out), "--steps", "4", "--batch-size", "4", "--lr", "1e-2",
                                      "--warmup", "0"]),
                           ("eval", ["eval", *common[:1], str(out / "model"), *common[2:], "--batch-size", "3",
                                     "--output", str(out / "report.json")])):
            done = torchrun(args, root)
            if done.returncode or "terminate called" in done.stderr:
                failures.append(dict(run=run, step=name, returncode=done.returncode, stderr=done.stderr[-600:]))
    result = dict(machine=machine(torch.device("cpu")), runs=a.runs, processes_started=4 * a.runs, failures=failures,
                  seconds=round(time.perf_counter() - start, 1))
    print(f"{len(failures)} abnormal ends in {a.runs} runs ({4 * a.runs} processes)")
    write_results(a.out, f"two-process-exit-cpu-{time.strftime('%Y-%m-%d')}", result,
                  f"{len(failures)} abnormal ends in {a.runs} runs of train + eval on two processes\n")


if __name__ == "__main__":
    main()
