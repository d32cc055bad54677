#!/usr/bin/env bash
# Stage-1 variants of the built-in model side by side in one GPU call (data per video size, frame caches,
# then every line of the job file at once, within a time box of SECONDS from the start); results and logs
# packed into $OUT.
#   [EXPORT="LABEL ..."] benchmarks/motionqa_stage1_gpu.sh JOB_FILE SECONDS
set -uo pipefail
jobs=$1 seconds=$2 work=/tmp/stage1
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
start=$(date +%s)
lines=$(grep -v -e '^\s*#' -e '^\s*$' "$jobs")
for size in $(echo "$lines" | awk '{print $1}' | sort -u); do
  python benchmarks/motionqa_study.py data "$work/data$size" --no-mp4 --workers 16 --size "$size" >/dev/null &
done
wait
for size in $(echo "$lines" | awk '{print $1}' | sort -u); do
  python benchmarks/motionqa_study.py cache "$work/data$size" --frames 8 >/dev/null &
done
wait
echo "data and caches: $(( $(date +%s) - start )) s"
mkdir -p "$work/logs"
# A line is "SIZE LABEL [stage0|stage1] ARGS": stage-0 lines run first, then the stage-1 ones, whose
# "--host LABEL" names the host a stage-0 line made, or a model directory (a path with a "/": a run
# brought back, to train further). Every job ends by the time box.
for wave in stage0 stage1; do
  while read -r size label rest; do
    stage=stage1
    case $rest in stage0*|stage1*) stage=${rest%% *}; rest=${rest#"$stage"} ;; esac
    [ "$stage" = "$wave" ] || continue
    mkdir -p "$work/$label"
    ln -sfn "$work/data$size/mqa" "$work/$label/mqa"
    ln -sfn "$work/data$size/frame-cache" "$work/$label/frame-cache"
    eval "set -- $rest"
    args=() ; while [ $# -gt 0 ]; do
      if [ "$1" = --host ]; then
        case $2 in */*) args+=(--host "$(realpath "$2")") ;; *) args+=(--host "$work/$2/host") ;; esac; shift 2
      else args+=("$1"); shift; fi
    done
    left=$(( seconds - ($(date +%s) - start) ))
    timeout "$left" python benchmarks/motionqa_study.py "$stage" "$work/$label" "${args[@]}" \
      >"$work/logs/$label.log" 2>&1 &
  done < <(echo "$lines")
  wait
  echo "$wave ended after $(( $(date +%s) - start )) s"
done
while read -r size label rest; do  # what the tokens hold after stage 0 (host) and stage 1, on unseen videos
  for stage in host stage1/model; do
    [ -d "$work/$label/$stage" ] && timeout "${PROBE_SECONDS:-90}" python benchmarks/probe_tokens.py \
      --model "$work/$label/$stage" --data "$work/$label/mqa" --splits test --max-rows 8000 \
      >"$work/logs/$label-${stage%%/*}-probe.log" 2>&1 &
  done
done < <(echo "$lines")
wait
for f in "$work"/logs/*-probe.log; do echo "$(basename "$f" .log): $(tail -1 "$f")"; done
for d in "$work"/*/results.jsonl; do
  label=$(basename "$(dirname "$d")")
  sed "s/^{/{\"label\": \"$label\", /" "$d"
done >"$OUT/results.jsonl"
tar czf "$OUT/logs.tgz" -C "$work" logs
for label in ${EXPORT:-}; do  # EXPORT="LABEL ...": those runs' stage-1 models as the built-in's files (bf16),
  [ -d "$work/$label/stage1/model" ] && python benchmarks/export_builtin.py "$work/$label/stage1/model" \
    "$work/export/$label" >/dev/null 2>&1 && tar czf "$OUT/export-$label.tgz" -C "$work/export" "$label"
done  # one archive each (a call brings back a few files only)
python - "$OUT/results.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["run"] == "stage1":
        t = r["test"]
        print(r["label"], t["overall"]["accuracy"], {k: round(v, 2) for k, v in t["per_type"].items()}, r["seconds"])
    else:
        print(r["label"], r["run"], r.get("seconds"), r["log"][-1])
PY
