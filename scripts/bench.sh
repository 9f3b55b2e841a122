#!/usr/bin/env bash
# The speed benchmarks behind BENCHMARKS.md, run on the GPU machine (scripts/device-test.sh bench
# calls it after building). Writes result records and logs under OUT, prints the tables last.
# Usage: scripts/bench.sh BUILD_DIR OUT_DIR [quick|full|kernels]
set -uo pipefail
BUILD="${1:-build}"; OUT="${2:-results}"; MODE="${3:-${QB_BENCH_MODE:-full}}"
QB="$BUILD/quantbench"
mkdir -p "$OUT"
status=0
run() {  # run NAME ARGS...: one quantbench invocation, records to OUT/NAME.json
  local name="$1"; shift
  echo "== $name: quantbench run $*" >&2
  "$QB" run "$@" --out "$OUT/$name.json" --format md >> "$OUT/bench.log" 2>> "$OUT/bench-progress.log" || status=1
}

if [ "$MODE" = kernels ] || [ "$MODE" = full ]; then
  for b in "$BUILD"/qb_bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")" | tee -a "$OUT/kernels.log"
    "$b" >> "$OUT/kernels.log" 2>&1 || status=1
  done
fi
if [ "$MODE" = quick ] || [ "$MODE" = full ]; then
  Q4="int8,nf4,awq"
  run gpt2        --model synthetic:gpt2 --precision fp16,bf16,$Q4 --batch 1 --prompt-len 128 --gen-len 128
  run tinyllama   --model synthetic:tinyllama-1.1b --precision fp16,$Q4 --batch 1 --prompt-len 128 --gen-len 128
  run qwen2-7b    --model synthetic:qwen2-7b --precision bf16,fp16,$Q4 --batch 1,16 --prompt-len 128 --gen-len 128
fi
if [ "$MODE" = full ]; then
  run qwen2-7b-prefill --model synthetic:qwen2-7b --precision fp16,$Q4 --batch 1 --prompt-len 512 --gen-len 8 --repetitions 5
  run gpt2-eager  --model synthetic:gpt2 --precision fp16 --batch 1 --prompt-len 128 --gen-len 128 --eager
fi
"$QB" report "$OUT"/*.json --format md | tee "$OUT/report.md"
exit $status
