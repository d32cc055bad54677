#!/usr/bin/env bash
# One GPU call of the MotionQA study: data, frame caches, then a job file side by side, within a time box;
# what finished is packed into $OUT (results.jsonl, the logs, kept stage-2 weights).
#   benchmarks/motionqa_gpu.sh JOB_FILE MODEL PARALLEL SECONDS
set -uo pipefail
jobs=$1 model=$2 parallel=$3 seconds=$4 work=/tmp/motionqa
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
start=$(date +%s)
python benchmarks/motionqa_study.py data "$work" --no-mp4 --workers 16 >/dev/null
python benchmarks/motionqa_study.py cache "$work" --frames 8 >/dev/null
echo "data and caches: $(( $(date +%s) - start )) s"
timeout "$seconds" benchmarks/motionqa_parallel.sh "$jobs" "$work" "$model" "$parallel"
echo "jobs ended after $(( $(date +%s) - start )) s"
cp "$work/results.jsonl" "$OUT/" 2>/dev/null
tar czf "$OUT/logs.tgz" -C "$work" logs
kept=$(cd "$work" && ls -d token_dynamics-* 2>/dev/null)
[ -n "$kept" ] && tar czf "$OUT/kept.tgz" -C "$work" $kept
python - "$work/results.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    t = r["test"]
    print(f'{r["run"]:13s} {r["reducer"]:14s} {r.get("llm", ""):6s} {t["overall"]["accuracy"]:.3f} '
          f'{t["overall"]["ci95"]} {r.get("seconds", "")}')
PY
