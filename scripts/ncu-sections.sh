#!/usr/bin/env bash
# Run ON the GPU machine after a build: Nsight Compute's throughput, pipe, scheduler and stall sections for a
# few launches of one kernel inside a short eager quantbench run (why a kernel is slow, not how long it takes:
# scripts/ncu-decode.sh times every kernel). Clocks are left alone.
# Usage: scripts/ncu-sections.sh BUILD OUT NAME KERNEL_REGEX SKIP COUNT [quantbench run args...]
#   SKIP launches of the matching kernel are passed over (e.g. the prefill's), then COUNT are profiled.
#   NCU_NAME_BASE=mangled: KERNEL_REGEX matches the mangled name, so that one template instance can be picked (e.g.
#   'q4_gemv_kernel.*Q4ScaleModeE3ELi1ELb1ELb1ELb0E': the gated M = 1 4-bit GEMV with 16-bit absmax; NOTES-q4.md).
set -uo pipefail
BUILD="$1" OUT="$2" NAME="$3" REGEX="$4" SKIP="$5" COUNT="$6"; shift 6
NCU="$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
[ -n "$NCU" ] || { echo "ncu-sections: no ncu on this machine" >&2; exit 1; }
mkdir -p "$OUT"
"$NCU" --clock-control none --kernel-name-base "${NCU_NAME_BASE:-function}" -k "regex:$REGEX" \
  --launch-skip "$SKIP" --launch-count "$COUNT" \
  --section SpeedOfLight --section ComputeWorkloadAnalysis --section SchedulerStats --section WarpStateStats \
  --section LaunchStats --section Occupancy \
  --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
  "$BUILD/quantbench" run --eager --warmup 0 --repetitions 1 --no-probe --format json "$@" \
  > "$OUT/ncu-sections-$NAME.txt" 2> "$OUT/ncu-sections-$NAME.err" \
  || { echo "ncu-sections $NAME: exit $?" >&2; tail -5 "$OUT/ncu-sections-$NAME.err" >&2; }
grep -E "^  [a-z_]+.*\(|Duration|Memory Throughput|DRAM Throughput|Issue Slots Busy|Issued Ipc|No Eligible|Registers Per|Achieved Occupancy|Stall|Warp Cycles Per Issued|One or More Eligible|Executed Ipc|issue_stalled" \
  "$OUT/ncu-sections-$NAME.txt" | head -400 > "$OUT/ncu-sections-$NAME.md"
