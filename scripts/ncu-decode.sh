#!/usr/bin/env bash
# Run ON the GPU machine after a build: the device time of every kernel of a short eager run, read by
# Nsight Compute (gpu__time_duration, clocks left alone), summed per kernel name over the decode steps only
# (the model's load and the prefill left out) and divided by their count; then the last step in order. Shows
# where a decode step goes outside the linear layers (norms, attention, activation) and how long each launch really
# takes; the sum against the graph step time is the launch-gap cost.
# Usage: scripts/ncu-decode.sh BUILD OUT NAME [quantbench run args...]   (add --gen-len N; default 8)
set -uo pipefail
BUILD="$1" OUT="$2" NAME="$3"; shift 3
NCU="$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
[ -n "$NCU" ] || { echo "ncu-decode: no ncu on this machine" >&2; exit 1; }
mkdir -p "$OUT"
"$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
  --log-file "$OUT/ncu-$NAME.csv" \
  "$BUILD/quantbench" run --eager --warmup 0 --repetitions 1 --no-probe --format json "$@" \
  > /dev/null 2> "$OUT/ncu-$NAME.err" || { echo "ncu-decode $NAME: exit $?" >&2; tail -5 "$OUT/ncu-$NAME.err" >&2; }
python3 - "$OUT/ncu-$NAME.csv" "$NAME" <<'PY' | tee "$OUT/ncu-$NAME.md"
import csv, sys, collections, re
path, name = sys.argv[1], sys.argv[2]
rows = [r for r in csv.reader(open(path)) if len(r) > 10]
head = rows[0]; rows = rows[1:]
k_name, k_val, k_grid = head.index("Kernel Name"), head.index("Metric Value"), head.index("Grid Size")

def short(kernel):
    # ncu spells an unnamed namespace "<unnamed>" (older versions "(anonymous namespace)"): drop it before cutting
    # the name at its template or parameter list, or every such kernel would read as its namespace.
    kernel = kernel.replace("<unnamed>::", "").replace("(anonymous namespace)::", "")
    return re.sub(r"^void ", "", kernel).split("(")[0].split("<")[0].strip()[:60]

kernels = [(short(r[k_name]), float(r[k_val].replace(",", "")) / 1000.0, r[k_grid]) for r in rows]
# The run also loads (and quantizes) the model and runs the prefill: only whole decode steps count. A step ends
# with the same kernel every time (the run's last kernel); the first such segment holds the load and the prefill.
last = kernels[-1][0]
ends = [i for i, k in enumerate(kernels) if k[0] == last]
steps = len(ends) - 1
if steps < 1:
    print(f"## {name}: fewer than two decode steps ({len(kernels)} kernels); run with --gen-len 3 or more")
    sys.exit(0)
step_kernels = kernels[ends[0] + 1:]
total = collections.defaultdict(float); count = collections.Counter()
for k, us, _ in step_kernels:
    total[k] += us; count[k] += 1
print(f"## {name}: {steps} decode steps, {len(step_kernels) / steps:.0f} kernels and "
      f"{sum(total.values()) / steps:.1f} us a step (kernel times in isolation, no overlap)")
print("| kernel | launches a step | us a step | mean us |\n|---|---:|---:|---:|")
for k, v in sorted(total.items(), key=lambda kv: -kv[1]):
    print(f"| {k} | {count[k] / steps:.0f} | {v / steps:.1f} | {v / count[k]:.2f} |")
print(f"\nLast step, in order (us, grid):")
for k, us, grid in kernels[ends[-2] + 1:]:
    print(f"- {k} {us:.2f} {grid}")
PY
