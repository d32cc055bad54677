#!/usr/bin/env bash
# Run the MotionQA study's stage-2 jobs side by side on one GPU: the built-in model is small, so one
# training process leaves the GPU mostly idle (Python and launch bound), and several fill it.
#   benchmarks/motionqa_parallel.sh JOBS OUT MODEL [PARALLEL]
# JOBS: one job per line, the arguments of `motionqa_study.py stage2 OUT --model MODEL` (# comments).
# Every job appends to OUT/results.jsonl and logs to OUT/logs/<line>.log.
set -euo pipefail
jobs=$1 out=$2 model=$3 parallel=${4:-4}
mkdir -p "$out/logs"
export OMP_NUM_THREADS=1 out model
grep -n -v -e '^\s*#' -e '^\s*$' "$jobs" | sed 's/:/ /' |
  xargs -P "$parallel" -L 1 bash -c 'line=$0
    if python benchmarks/motionqa_study.py stage2 "$out" --model "$model" "$@" >"$out/logs/$line.log" 2>&1
    then echo "line $line done: $*"; else echo "line $line FAILED: $*"; tail -5 "$out/logs/$line.log"; fi'
