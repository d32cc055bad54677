#!/usr/bin/env bash
# Whether `tokendynamics train` adapts the built-in model to ChangeQA, a QA set it never saw, in a few GPU
# minutes: ChangeQA generated (seed 0, 112 px, 32 frames), the built-in `full` model scored on its test
# split, trained STEPS steps on its train split (every weight, the tower at a tenth of the rate, answers
# as option text, as the built-in model was trained), scored again; the two reports and the training
# summary in $OUT.
#   benchmarks/changeqa_adapt_gpu.sh [VIDEOS] [STEPS]
set -euo pipefail
videos=${1:-5000} steps=${2:-600} work=/tmp/changeqa
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
python -m tokendynamics.cli changeqa generate "$work/data" --num-videos "$videos" --no-mp4 --workers 16 >/dev/null
common=(--data "$work/data/test.jsonl" --video-root "$work/data" --frame-cache "$work/cache" --batch-size 64)
python -m tokendynamics.cli eval --model builtin "${common[@]}" --output "$OUT/before.json" | tail -1
start=$(date +%s)
python -m tokendynamics.cli train --model builtin --reducer full --data "$work/data/train.jsonl" \
  --video-root "$work/data" --frame-cache "$work/cache" --frames 8 --batch-size 64 --steps "$steps" --lr 5e-4 \
  --warmup 20 --full-finetune --vision-lr-scale 0.1 --target text --workers 3 --log-every 50 \
  --output "$work/run" | tail -1
echo "training: $(( $(date +%s) - start )) s"
cp "$work/run/train_summary.json" "$OUT/"
python -m tokendynamics.cli eval --model "$work/run/model" "${common[@]}" --output "$OUT/after.json" | tail -1
