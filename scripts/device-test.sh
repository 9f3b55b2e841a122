#!/usr/bin/env bash
# Run ON the GPU machine (through the device tool, carry [".device"], after scripts/device-prep.sh):
# configure with ninja against python3's torch 2.11+cu130, build, run every test including the GPU
# ones, then the benchmarks; logs go to $OUT when set. One call, well under 10 minutes.
# Usage: scripts/device-test.sh [tests|bench|all] [extra ctest args...]
#   tests: every test: the CPU ones in parallel (QB_DEVICE_CPU_TESTS=0 skips them when a call is for
#          GPU work only: CI runs them on every commit), then the GPU ones (*Gpu*/*Cuda*) one at a time
#   bench: scripts/bench.sh with the parts in $QB_BENCH_PARTS (default: speed seeds quality)
#   all = tests, then bench.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -f "$ROOT/.device/snapshot.tar" ] && [ -z "${QB_IN_SNAPSHOT:-}" ]; then
  # Build the committed snapshot, not the (possibly mid-edit) working tree that travelled.
  if [ -d /tmp/qb-snapshot/build-device ]; then
    # A warm machine keeps the previous call's tree and build: only files whose content changed are copied
    # over (with a fresh time, so ninja rebuilds just what depends on them; git archive stamps every file
    # with the commit time).
    rm -rf /tmp/qb-next && mkdir -p /tmp/qb-next && tar -xf "$ROOT/.device/snapshot.tar" -C /tmp/qb-next
    (cd /tmp/qb-next && find . -type f) | while read -r f; do
      cmp -s "/tmp/qb-next/$f" "/tmp/qb-snapshot/$f" || { mkdir -p "$(dirname "/tmp/qb-snapshot/$f")"; cp "/tmp/qb-next/$f" "/tmp/qb-snapshot/$f"; }
    done
    (cd /tmp/qb-snapshot && find . -type f -not -path './build-device/*' -not -path './.device/*') | while read -r f; do
      [ -e "/tmp/qb-next/$f" ] || rm -f "/tmp/qb-snapshot/$f"
    done
  else
    rm -rf /tmp/qb-snapshot && mkdir -p /tmp/qb-snapshot && tar -xf "$ROOT/.device/snapshot.tar" -C /tmp/qb-snapshot
  fi
  ln -sfn "$ROOT/.device" /tmp/qb-snapshot/.device
  OUT="${OUT:-$ROOT/.device/out}" QB_IN_SNAPSHOT=1 exec bash /tmp/qb-snapshot/scripts/device-test.sh "$@"
fi
cd "$ROOT"
MODE="${1:-all}"; shift || true
OUT="${OUT:-$ROOT/.device/out}"; mkdir -p "$OUT"
BUILD=build-device
export PATH="/usr/local/cuda/bin:$PATH"
export QB_SHARED_DATA="$ROOT/.device/shared-data"
[ -f "$ROOT/.device/git-commit" ] && export QB_GIT_COMMIT="$(cat "$ROOT/.device/git-commit")"

{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv;
  nvcc --version | tail -1; python3 -c 'import torch; print("torch", torch.__version__)'; } 2>&1 | tee "$OUT/env.log"

start=$(date +%s)
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')" \
    -DONIG_ROOT="$ROOT/.device/onig" -DCMAKE_CUDA_ARCHITECTURES="90-real" -DTORCH_CUDA_ARCH_LIST="9.0" \
    > "$OUT/configure.log" 2>&1 || { tail -40 "$OUT/configure.log"; exit 1; }
fi
ninja -C "$BUILD" > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$OUT/build.log" | head -60; exit 1; }
# The commit built (from .device/git-commit, written with the snapshot by device-prep.sh): a call that carried a stale
# snapshot shows it here.
echo "build: $(( $(date +%s) - start )) s (commit ${QB_GIT_COMMIT:-unknown})"

status=0
if [ "$MODE" = tests ] || [ "$MODE" = all ]; then
  if [ "${QB_DEVICE_CPU_TESTS:-1}" = 1 ]; then
    # CPU tests in parallel; GPU tests one at a time (they time kernels and fill the device).
    ctest --test-dir "$BUILD" --output-on-failure -j 8 -E 'Gpu|Cuda' "$@" > "$OUT/ctest.log" 2>&1 || status=1
    grep -E "tests passed|tests failed|\*\*\*Failed|Not Run|Exception" "$OUT/ctest.log" | tail -30
  fi
  timeout "${QB_GPU_TEST_TIMEOUT:-240}" "$BUILD/quantbench_tests" --gtest_filter='*Gpu*:*Cuda*' \
    > "$OUT/gpu-tests.log" 2>&1 || { rc=$?; status=1; echo "gpu tests: exit $rc"; }
  # The 4-bit and int8 layers once more with the opt-in fused prefill kernels behind them.
  QB_Q4_WGMMA=1 QB_INT8_WGMMA=1 timeout 120 "$BUILD/quantbench_tests" --gtest_filter='Q4Gpu.*:Int8*Gpu*:*Int8*Cuda*' \
    > "$OUT/gpu-tests-wgmma.log" 2>&1 \
    || { rc=$?; status=1; echo "gpu tests with QB_Q4_WGMMA=1 QB_INT8_WGMMA=1: exit $rc"; grep -E "^\[  FAILED" "$OUT/gpu-tests-wgmma.log"; }
  grep -E "^\[  FAILED|Failure|error" -A4 "$OUT/gpu-tests.log" | head -60
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests? ran|golden \]" "$OUT/gpu-tests.log" | tail -40
fi
if [ "$MODE" = bench ] || [ "$MODE" = all ]; then
  bash scripts/bench.sh "$BUILD" "$OUT" ${QB_BENCH_PARTS:-speed seeds quality} || status=1
fi
exit $status
