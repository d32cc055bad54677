#!/usr/bin/env bash
# The cost benchmarks still to measure on a GPU, in one call, one after another (timings never share the
# GPU), each within its own time box; every result file and log packed into $OUT/costs.tgz (a call brings
# back a few files only), the tables printed.
#   benchmarks/costs_gpu.sh GROUP ...     GROUP: stream | qwen25 | qwen3
#     stream: the per-frame update compiled, at the default settings and at 1 step / 1 spawn and 2 / 1
#     qwen25: Qwen2.5-VL-7B at 64 frames, its tower's windows batched (the host's) and one at a time
#     qwen3:  Qwen3-VL-8B at 64 frames, the prefill compiled with its weights frozen and without
set -uo pipefail
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
out=/tmp/costs && rm -rf "$out" && mkdir -p "$out"
prefill="benchmarks/bench_prefill.py --frames 64 --ks 8 --reducers token_dynamics --compile --repeats 3"
stream="benchmarks/bench_stream.py --frames 64 --k 8 --layers 2 --repeats 2 --batches --compile-update"
run() {  # SECONDS LABEL COMMAND...: results in $out/LABEL/
  local seconds=$1 label=$2; shift 2
  local start=$(date +%s)
  mkdir -p "$out/$label"
  timeout "$seconds" python "$@" --out "$out/$label" >"$out/$label/log.txt" 2>&1
  echo "$label: rc $?, $(( $(date +%s) - start )) s"
}
for group in "$@"; do
  case $group in
    stream) run 150 stream-default $stream
            run 120 stream-steps1-spawns1 $stream --steps 1 --spawns 1
            run 120 stream-steps2-spawns1 $stream --steps 2 --spawns 1 ;;
    qwen25) run 240 qwen25-batched $prefill --hosts qwen2.5-vl-7b
            run 300 qwen25-host-windows $prefill --hosts qwen2.5-vl-7b --host-windows ;;
    qwen3)  run 200 qwen3 $prefill --hosts qwen3-vl-8b
            run 240 qwen3-frozen $prefill --hosts qwen3-vl-8b --freeze ;;
    *) echo "unknown group $group (stream, qwen25, qwen3)"; exit 2 ;;
  esac
done
tar czf "$OUT/costs.tgz" -C "$out" .
for f in "$out"/*/*.md; do echo "== ${f#"$out"/}"; grep -v '^$' "$f" | grep -v "^Machine" | head -14; done
