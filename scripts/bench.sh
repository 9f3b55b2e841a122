#!/usr/bin/env bash
# The GPU benchmarks behind BENCHMARKS.md, run on the GPU machine from the repository root after a
# build (scripts/device-test.sh calls it). Records and logs go under OUT; tables are printed last.
# Usage: scripts/bench.sh BUILD_DIR OUT_DIR [speed] [nopdl] [ab] [prefill] [q4stages] [archs] [seeds] [peers] [quality] [kernels]   (default: speed)
set -uo pipefail
BUILD="${1:-build}"; OUT="${2:-results}"; shift 2 || true
PARTS=("$@"); [ ${#PARTS[@]} -eq 0 ] && PARTS=(speed)
QB="$BUILD/quantbench"
export QB_SHARED_DATA="${QB_SHARED_DATA:-$PWD/.device/shared-data}"
mkdir -p "$OUT"
status=0
want() { local p; for p in "${PARTS[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }
run() {  # run NAME ARGS...: one quantbench run, records to OUT/NAME.json
  local name="$1"; shift
  echo "== $name: quantbench run $*" >&2
  local t0=$SECONDS
  timeout "${QB_RUN_TIMEOUT:-240}" "$QB" run "$@" --out "$OUT/$name.json" --format md >> "$OUT/bench.log" \
    2>> "$OUT/bench-progress.log" || { echo "$name: exit $?" >&2; status=1; }
  echo "   $name: $(( SECONDS - t0 )) s" >&2
}

if want kernels; then
  # QB_KERNEL_BENCHES: which (default all: dense_gemv int8 q4); QB_KERNEL_BENCH_ARGS: their flags.
  for name in ${QB_KERNEL_BENCHES:-dense_gemv int8 q4}; do
    b="$BUILD/qb_bench_$name"
    [ -x "$b" ] || { echo "no $b"; continue; }
    echo "== $(basename "$b") ${QB_KERNEL_BENCH_ARGS:-}" | tee -a "$OUT/kernels.log"
    timeout "${QB_KERNEL_BENCH_TIMEOUT:-120}" "$b" ${QB_KERNEL_BENCH_ARGS:-} > "$OUT/kernels-$name.log" 2>&1 \
      || { echo "$name: exit $?"; status=1; }
    cat "$OUT/kernels-$name.log" >> "$OUT/kernels.log"
  done
fi
if want speed; then
  # Decode targets (batch 1 and 16, 128 new tokens after 128 prompt tokens) and prefill of 512.
  run gpt2      --model synthetic:gpt2 --precision fp16,int8,nf4,awq --batch 1 --prompt-len 128 --gen-len 128
  run tinyllama --model synthetic:tinyllama-1.1b --precision fp16,int8,nf4,awq --batch 1 --prompt-len 128 --gen-len 128
  run qwen2-7b  --model synthetic:qwen2-7b --precision bf16,fp16,int8,nf4,awq --batch 1,16 --prompt-len 128 --gen-len 128
  run qwen2-7b-prefill --model synthetic:qwen2-7b --precision fp16,int8,nf4,awq --batch 1 --prompt-len 512 --gen-len 2
  run qwen2-7b-nf4-dq --model synthetic:qwen2-7b --precision nf4 --double-quant on --batch 1 --prompt-len 128 --gen-len 128
  # Where a step goes: every linear layer timed on its own (eager decode; see bench/linear_profile.h).
  run qwen2-7b-profile --model synthetic:qwen2-7b --precision bf16,nf4 --batch 1 --prompt-len 128 --gen-len 32 \
    --profile-linears
  run gpt2-eager --model synthetic:gpt2 --precision fp16 --batch 1 --prompt-len 128 --gen-len 128 --eager
  # Where a step goes inside the CUDA graph: every kernel's exclusive time (CUPTI; bench/kernel_trace.h). Named so that
  # the report below leaves its (shorter) timing rows out.
  run trace-qwen2-7b --model synthetic:qwen2-7b --precision bf16,int8,nf4,awq --batch 1,16 --prompt-len 128 --gen-len 32 \
    --kernel-trace
  "$QB" report "$OUT"/gpt2.json "$OUT"/tinyllama.json "$OUT"/qwen2-7b*.json "$OUT"/gpt2-eager.json --format md \
    | tee "$OUT/speed.md"
fi
if want nopdl; then
  # The same decode runs with programmatic dependent launch off (QB_PDL=0): what the overlap is worth.
  QB_PDL=0 run nopdl-gpt2 --model synthetic:gpt2 --precision fp16,int8,nf4 --batch 1 --prompt-len 128 --gen-len 128
  QB_PDL=0 run nopdl-tinyllama --model synthetic:tinyllama-1.1b --precision fp16,nf4 --batch 1 --prompt-len 128 --gen-len 128
  QB_PDL=0 run nopdl-qwen2-7b --model synthetic:qwen2-7b --precision bf16,nf4 --batch 1 --prompt-len 128 --gen-len 128
  "$QB" report "$OUT"/nopdl-*.json --format md | tee "$OUT/nopdl.md"
fi
if want prefill; then
  # The fused prefill kernels (kernels/{q4,int8}_gemm_sm90a.cu): 4-bit checks and M = 512 timings of every form
  # (register-A with 128 / 256 tokens, shared-B) against dequantize + cuBLAS, the int8 bench's prefill rows (its
  # fused row included), then Qwen2-7B prefill of 512 end to end: default paths (the 256-token register-A kernel
  # where q4_fused_prefill_preferred says it measured faster), QB_Q4_WGMMA=0 (dequantize + cuBLAS everywhere) and
  # every large-M layer forced onto the fused kernels.
  timeout "${QB_KERNEL_BENCH_TIMEOUT:-120}" "$BUILD/qb_bench_q4" --prefill --quick > "$OUT/prefill-q4.log" 2>&1 \
    || { echo "prefill q4: exit $?"; status=1; }
  grep -E "FAIL|correctness" "$OUT/prefill-q4.log"; grep -A60 "^prefill (bf16" "$OUT/prefill-q4.log"
  timeout "${QB_KERNEL_BENCH_TIMEOUT:-120}" "$BUILD/qb_bench_int8" > "$OUT/prefill-int8.log" 2>&1 \
    || { echo "bench_int8: exit $?"; status=1; }
  grep -E "prefill|FAIL" "$OUT/prefill-int8.log"
  run prefill-default-qwen2-7b --model synthetic:qwen2-7b --precision fp16,int8,nf4,awq --batch 1 --prompt-len 512 --gen-len 2
  QB_Q4_WGMMA=0 run prefill-twopass-qwen2-7b --model synthetic:qwen2-7b --precision nf4,awq --batch 1 --prompt-len 512 --gen-len 2
  QB_Q4_WGMMA=1 QB_INT8_WGMMA=1 run prefill-wgmma-qwen2-7b --model synthetic:qwen2-7b --precision int8,nf4,awq --batch 1 --prompt-len 512 --gen-len 2
  "$QB" report "$OUT"/prefill-*.json --format md | tee "$OUT/prefill.md"
fi
if want ab; then
  # Batch-1 decode of the three speed models once per setting in QB_AB_ENVS (space-separated VAR=VALUE, e.g.
  # "QB_PDL=0 QB_ATTENTION_PREFETCH=0"): A/B of a switch against the speed part's default rows.
  for setting in ${QB_AB_ENVS:-QB_ATTENTION_PREFETCH=0}; do
    tag=$(echo "$setting" | tr 'A-Z=' 'a-z-'); var=${setting%%=*}
    export "$setting"
    run ab-$tag-gpt2 --model synthetic:gpt2 --precision fp16,int8,nf4,awq --batch 1 --prompt-len 128 --gen-len 128
    run ab-$tag-tinyllama --model synthetic:tinyllama-1.1b --precision fp16,int8,nf4,awq --batch 1 --prompt-len 128 --gen-len 128
    run ab-$tag-qwen2-7b --model synthetic:qwen2-7b --precision bf16,int8,nf4,awq --batch 1 --prompt-len 128 --gen-len 128
    unset "$var"
  done
  "$QB" report "$OUT"/ab-*.json --format md | tee "$OUT/ab.md"
fi
if want q4stages; then
  # The 4-bit GEMV's ring depth (QB_Q4_GEMV_STAGES, default 2) end to end: deeper rings put more of a warp's
  # loads ahead of the PDL wait.
  for st in 3 4; do
    QB_Q4_GEMV_STAGES=$st run q4stages$st-qwen2-7b --model synthetic:qwen2-7b --precision nf4,awq --batch 1 --prompt-len 128 --gen-len 128
    QB_Q4_GEMV_STAGES=$st run q4stages$st-small --model synthetic:tinyllama-1.1b --precision nf4,awq --batch 1 --prompt-len 128 --gen-len 128
    QB_Q4_GEMV_STAGES=$st run q4stages$st-gpt2 --model synthetic:gpt2 --precision nf4,awq --batch 1 --prompt-len 128 --gen-len 128
  done
  "$QB" report "$OUT"/q4stages*.json --format md | tee "$OUT/q4stages.md"
fi
if want archs; then
  # Every precision on the OPT and Phi-2 presets (issue 11: each architecture runs in each format on the GPU).
  run archs-phi-2 --model synthetic:phi-2 --precision fp16,int8,llm.int8,nf4,fp4,awq --batch 1 --prompt-len 64 --gen-len 64
  run archs-opt-125m --model synthetic:opt-125m --precision fp16,int8,llm.int8,nf4,fp4,awq --batch 1 --prompt-len 64 --gen-len 64
  "$QB" report "$OUT"/archs-*.json --format md | tee "$OUT/archs.md"
fi
if want quality; then
  # Perplexity on WikiText-2 test (window 256, stride 128) of the two real trained models in every
  # precision, with KL divergence and top-1 agreement against fp32.
  TEXT="$QB_SHARED_DATA/wikitext-2/test.txt"
  for model in gpt2-tiny-wikitext llama-tiny-wikitext; do
    # group size 8: llama-tiny's intermediate size 344 is not a multiple of 64 or 128
    timeout "${QB_PPL_TIMEOUT:-120}" "$QB" ppl --model "$QB_SHARED_DATA/models/$model" --precision fp32,fp16,bf16,int8,llm.int8,nf4,fp4,awq \
      --text "$TEXT" --ctx 256 --stride 128 --baseline fp32 --group-size 8 --out "$OUT/ppl-$model.json" \
      > /dev/null 2>> "$OUT/quality.log" || status=1
  done
  grep -E "perplexity" "$OUT/quality.log" | sed 's/^.*info //' | tee "$OUT/quality.md"
fi
SEEDS="$OUT/seeds"
if want peers; then
  # The transformers peer (+ bitsandbytes when it imports; .device/pylib carries it to the GPU machine) on the
  # seed-table runs matching $QB_PEERS_ONLY, into seeds/peers.jsonl.
  mkdir -p "$SEEDS"
  [ -d "$PWD/.device/pylib" ] && export PYTHONPATH="$PWD/.device/pylib${PYTHONPATH:+:$PYTHONPATH}"
  python3 -c 'import bitsandbytes' 2>/dev/null || echo "no bitsandbytes: int8/nf4 peer rows will be errors"
  if python3 -c 'import transformers' 2>/dev/null; then
    timeout "${QB_PEERS_TIMEOUT:-200}" python3 scripts/peers/hf_generate.py --sweep configs/sweeps/seed-tables.json \
      --out "$SEEDS/peers.jsonl" --resume --warmup 1 --repetitions 3 ${QB_PEERS_ONLY:+--only "$QB_PEERS_ONLY"} \
      > "$SEEDS/peers.log" 2>&1 || { echo "peers: exit $?"; status=1; }
    "$QB" report "$SEEDS/peers.jsonl" --format md | tee "$SEEDS/peers.md"
  else
    echo "no transformers on this machine: no peer rows"
  fi
fi
if want seeds; then
  # The seed tables: quantbench sweep (with the peer rows when this OUT has them), tables and plots.
  mkdir -p "$SEEDS"
  timeout "${QB_SWEEP_TIMEOUT:-330}" "$QB" sweep configs/sweeps/seed-tables.json --out "$SEEDS" --resume \
    > "$SEEDS/sweep.log" 2>&1 || echo "sweep: exit $? (failed runs are recorded as error rows; see sweep.log)"
  inputs=("$SEEDS/results.jsonl"); [ -s "$SEEDS/peers.jsonl" ] && inputs+=("$SEEDS/peers.jsonl")
  "$QB" report "${inputs[@]}" --format md --plots "$SEEDS/plots" > "$SEEDS/report.md" || status=1
  "$QB" report "${inputs[@]}" --format html --title "quantbench seed tables" -o "$SEEDS/report.html" || status=1
  "$QB" report "${inputs[@]}" --format csv -o "$SEEDS/report.csv" || status=1
  tail -60 "$SEEDS/report.md"
fi
exit $status
