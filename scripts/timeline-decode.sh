#!/usr/bin/env bash
# Run ON the GPU machine after a build: the timeline of one replayed decode step, read by Nsight Systems with
# CUDA graph node tracing (each kernel of the graph with its own start and end), so that the overlap PDL buys
# and the gaps between dependent kernels can be seen, which neither ncu (it serialises kernels) nor skipping
# kernels shows. Prints every kernel of the last full step: start and end offsets, duration (with PDL a kernel
# starts early and waits, so this includes its wait), and "adds": its end minus the latest earlier end, the
# time the step's critical path grew by it; then sums per kernel name.
# Usage: scripts/timeline-decode.sh BUILD OUT NAME [quantbench run args...]   (e.g. --model synthetic:gpt2)
set -uo pipefail
BUILD="$1" OUT="$2" NAME="$3"; shift 3
NSYS="$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)"
[ -n "$NSYS" ] || { echo "timeline-decode: no nsys on this machine" >&2; exit 1; }
mkdir -p "$OUT"
"$NSYS" profile --cuda-graph-trace=node --trace=cuda --sample=none --cpuctxsw=none -f true -o "$OUT/nsys-$NAME" \
  "$BUILD/quantbench" run --warmup 0 --repetitions 1 --no-probe --format json --gen-len 16 "$@" \
  > /dev/null 2> "$OUT/nsys-$NAME.err" || { echo "timeline-decode $NAME: exit $?" >&2; tail -5 "$OUT/nsys-$NAME.err" >&2; }
"$NSYS" stats --report cuda_gpu_trace --format csv -o "$OUT/nsys-$NAME" "$OUT/nsys-$NAME.nsys-rep" > /dev/null 2>&1
python3 - "$OUT/nsys-${NAME}_cuda_gpu_trace.csv" "$NAME" <<'PY' | tee "$OUT/timeline-$NAME.md"
import csv, sys, collections
path, name = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(path)))
kern = [r for r in rows if r.get("Name") and "[CUDA mem" not in r["Name"]]
def short(n): return n.split("(")[0].split("<")[0].replace("void ", "").strip()[:48]
# A decode step ends with advance_step's kernel; take the last complete step (between the last two).
ends = [i for i, r in enumerate(kern) if "advance_step" in r["Name"]]
if len(ends) < 2:
    print(f"## {name}: fewer than two decode steps in the trace"); sys.exit(0)
step = kern[ends[-2] + 1: ends[-1] + 1]
t0 = int(step[0]["Start (ns)"]); prev_end = t0
total = collections.defaultdict(float); count = collections.Counter(); adds = collections.defaultdict(float)
print(f"## {name}: one decode step, {len(step)} kernels, "
      f"{(int(step[-1]['Start (ns)']) + int(step[-1]['Duration (ns)']) - t0) / 1000:.1f} us first start to last end")
print("| # | kernel | start us | end us | dur us | adds us |\n|---:|---|---:|---:|---:|---:|")
for i, r in enumerate(step):
    s, d = int(r["Start (ns)"]), int(r["Duration (ns)"])
    k = short(r["Name"]); add = max(0, s + d - prev_end) / 1000
    total[k] += d / 1000; count[k] += 1; adds[k] += add
    if i < 40 or i >= len(step) - 6:
        print(f"| {i} | {k} | {(s - t0) / 1000:.2f} | {(s + d - t0) / 1000:.2f} | {d / 1000:.2f} | {add:.2f} |")
    prev_end = max(prev_end, s + d)
print("\n| kernel | count | sum dur us | sum adds us | mean adds us |\n|---|---:|---:|---:|---:|")
for k, v in sorted(adds.items(), key=lambda kv: -kv[1]):
    print(f"| {k} | {count[k]} | {total[k]:.1f} | {v:.1f} | {v / count[k]:.2f} |")
PY
