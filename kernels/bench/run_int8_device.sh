#!/usr/bin/env bash
# GPU-machine driver for the dense/int8 GEMV work (one device call): the two kernel benchmarks are
# built with nvcc while the project builds in the background (CPU only), the benchmarks run on an
# otherwise idle GPU, then the dense/int8/llm.int8 GPU tests. Logs and tables go to $OUT.
# Usage (device tool, carry [".device"] after scripts/device-prep.sh):
#   bash kernels/bench/run_int8_device.sh [bench|tests|all]
set -uo pipefail
MODE="${1:-all}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/.device/out}"; mkdir -p "$OUT"
export PATH="/usr/local/cuda/bin:$PATH"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv 2>&1 | tail -1

build_pid=""
if [ "$MODE" != bench ]; then
  ( [ -f build-device/build.ninja ] || cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')" \
      -DONIG_ROOT="$ROOT/.device/onig" -DCMAKE_CUDA_ARCHITECTURES=90-real -DTORCH_CUDA_ARCH_LIST=9.0 \
      > "$OUT/build.log" 2>&1
    ninja -C build-device quantbench_tests >> "$OUT/build.log" 2>&1; echo "build exit $?" >> "$OUT/build.log" ) &
  build_pid=$!
fi

status=0
if [ "$MODE" != tests ]; then
  NV="nvcc -O3 -arch=sm_90 -lineinfo -Iinclude -DFMT_HEADER_ONLY -Xptxas=-warn-spills"
  $NV kernels/bench/bench_dense_gemv.cu kernels/dense_gemv.cu -lcublas -o /tmp/bench_dense_gemv \
    > "$OUT/nvcc.log" 2>&1 & p1=$!
  $NV kernels/bench/bench_int8.cu kernels/int8_gemv.cu kernels/int8_dequant.cu kernels/llm_int8_gemv.cu \
    kernels/llm_int8_prep.cu kernels/dense_gemv.cu -lcublas -o /tmp/bench_int8 > /tmp/nvcc_int8.log 2>&1 & p2=$!
  wait $p1 || { echo "nvcc dense failed"; status=1; }
  wait $p2 || { echo "nvcc int8 failed"; status=1; }
  cat /tmp/nvcc_int8.log >> "$OUT/nvcc.log"; grep -E "error|spill" "$OUT/nvcc.log" | grep -v " 0 bytes spill" | head -20
  [ -x /tmp/bench_dense_gemv ] && { /tmp/bench_dense_gemv > "$OUT/bench_dense.txt" 2>&1 || status=1; }
  [ -x /tmp/bench_int8 ] && { /tmp/bench_int8 > "$OUT/bench_int8.txt" 2>&1 || status=1; }
  # Instruction census per kernel: 16-byte loads, tensor-core ops, local memory.
  command -v cuobjdump > /dev/null && cuobjdump -sass /tmp/bench_int8 2>/dev/null | awk '
    /Function :/ {name=$3} /LDG.E.128/ {ldg[name]++} /HMMA/ {hmma[name]++} /IMMA/ {imma[name]++}
    /LDL|STL/ {local[name]++} END {for (n in ldg) printf "%s ldg128=%d hmma=%d imma=%d local=%d\n", n, ldg[n], hmma[n], imma[n], local[n]}' \
    > "$OUT/sass.txt"
fi

if [ -n "$build_pid" ]; then
  wait "$build_pid"
  if ! grep -q "build exit 0" "$OUT/build.log"; then
    echo "project build failed:"; grep -E "error|FAILED" -A3 "$OUT/build.log" | head -40; status=1
  else
    build-device/quantbench_tests --gtest_brief=1 \
      --gtest_filter='Int8*:LlmInt8*:Dense*' > "$OUT/tests.log" 2>&1 || status=1
    grep -E "FAILED|PASSED|Failure|rel" "$OUT/tests.log" | head -40
  fi
fi
[ -f "$OUT/bench_dense.txt" ] && grep -E "FAILED|dispatch|cuBLAS|device" "$OUT/bench_dense.txt" | head -60
[ -f "$OUT/bench_int8.txt" ] && grep -E "FAILED|done|ratio" "$OUT/bench_int8.txt"
exit $status
