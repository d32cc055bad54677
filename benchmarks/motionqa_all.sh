#!/usr/bin/env bash
# The whole stage 2 of the MotionQA study after the first K = 8 runs, as run on one H100:
#   benchmarks/motionqa_all.sh OUT [PARALLEL [JOB_FILE_NAMES...]]
# (data, then the job files in benchmarks/motionqa_jobs/ one after another, each file's jobs side by side).
# grid-300steps holds every job of grid-finish-300steps but its first, which re-trains the
# shipped token_dynamics-8 and keeps its weights: run that file on its own for it.
set -euo pipefail
out=$1 parallel=${2:-4} model=src/tokendynamics/models/builtin/full
shift $(( $# < 2 ? $# : 2 ))
names=("${@:-k8-1000steps adaptive-1000steps grid-300steps k16-k32-1000steps k4-1000steps}")
[ -f "$out/mqa/stats.json" ] || python benchmarks/motionqa_study.py data "$out" --no-mp4 --workers 16 >/dev/null
for jobs in ${names[@]}; do
  echo "== $jobs $(date +%T)"
  benchmarks/motionqa_parallel.sh "benchmarks/motionqa_jobs/$jobs.txt" "$out" "$model" "$parallel"
done
echo "== done $(date +%T)"
