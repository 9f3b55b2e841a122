#!/usr/bin/env bash
# Run ON the GPU machine after a build: the device time of every kernel of a short eager run, read by
# Nsight Compute (gpu__time_duration, clocks left alone), summed per kernel name and divided by the
# decode steps. Shows where a decode step goes outside the linear layers (norms, attention, activation)
# and how long each launch really takes; the sum against the graph step time is the launch-gap cost.
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
import csv, sys, collections
path, name = sys.argv[1], sys.argv[2]
rows = [r for r in csv.reader(open(path)) if len(r) > 10]
head = rows[0]; rows = rows[1:]
k_name, k_val = head.index("Kernel Name"), head.index("Metric Value")
total = collections.defaultdict(float); count = collections.Counter()
for r in rows:
    # "(anonymous namespace)::" would cut every kernel of an unnamed namespace to its namespace's name
    short = r[k_name].replace("(anonymous namespace)::", "").split("(")[0].split("<")[0].strip()[:60]
    total[short] += float(r[k_val].replace(",", "")) / 1000.0; count[short] += 1
print(f"## {name}: {len(rows)} kernels, {sum(total.values()):.1f} us in all")
print("| kernel | launches | total us | mean us |\n|---|---:|---:|---:|")
for k, v in sorted(total.items(), key=lambda kv: -kv[1]):
    print(f"| {k} | {count[k]} | {v:.1f} | {v / count[k]:.2f} |")
PY
