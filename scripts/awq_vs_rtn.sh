#!/usr/bin/env bash
# AWQ against round-to-nearest on a real (tiny, trained) model, on the CPU: quantize both ways at one group size
# (AWQ calibrated on WikiText-2 valid), then sliding-window perplexity on WikiText-2 test for the float model and
# both checkpoints, and one markdown table. The records are kept under $OUT.
#
#   scripts/awq_vs_rtn.sh                                    # llama-tiny-wikitext, group size 8
#   MODEL=../shared/data/models/gpt2-tiny-wikitext GROUP=128 scripts/awq_vs_rtn.sh
#   EXTRA="--modules-to-not-convert down_proj" GROUP=128 scripts/awq_vs_rtn.sh
#
# Environment: BIN (quantbench binary), MODEL, DATA (wikitext-2 dir), GROUP, CTX, STRIDE, MAX_TOKENS (0: the whole
# test split), OUT, EXTRA (more quantize flags, for both methods).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/quantbench}
MODEL=${MODEL:-../shared/data/models/llama-tiny-wikitext}
DATA=${DATA:-../shared/data/wikitext-2}
GROUP=${GROUP:-8}
CTX=${CTX:-256}
STRIDE=${STRIDE:-128}
MAX_TOKENS=${MAX_TOKENS:-0}
EXTRA=${EXTRA:-}
OUT=${OUT:-/tmp/quantbench-awq-vs-rtn/$(basename "$MODEL")-g$GROUP}
mkdir -p "$OUT"

# shellcheck disable=SC2086
for method in rtn awq; do
  calib=()
  [[ $method == awq ]] && calib=(--calib "$DATA/valid.txt")
  /usr/bin/time -f "$method quantize: %e s, %M KB max RSS" "$BIN" quantize -q --model "$MODEL" --method "$method" \
    "${calib[@]}" --group-size "$GROUP" $EXTRA --out "$OUT/$method" --overwrite --report "$OUT/quantize-$method.json" \
    > /dev/null
done

ppl() {  # ppl NAME MODEL PRECISION
  "$BIN" ppl -q --model "$2" --precision "$3" --text "$DATA/test.txt" --ctx "$CTX" --stride "$STRIDE" \
    --max-tokens "$MAX_TOKENS" --device cpu --baseline none --out "$OUT/ppl-$1.json" > /dev/null
}
ppl fp32 "$MODEL" fp32
ppl rtn "$OUT/rtn" awq
ppl awq "$OUT/awq" awq

python3 - "$OUT" "$GROUP" <<'EOF'
import json, sys
out, group = sys.argv[1], sys.argv[2]
rows = []
for name in ("fp32", "rtn", "awq"):
    q = json.load(open(f"{out}/ppl-{name}.json"))[0]["quality"]
    seconds = ""
    if name != "fp32":
        seconds = f'{json.load(open(f"{out}/quantize-{name}.json"))["seconds"]["total"]:.1f}'
    rows.append(f'| {name} | {q["perplexity"]:.3f} | {q["scored_tokens"]} | {q["ctx"]}/{q["stride"]} | {seconds} |')
awq = json.load(open(f"{out}/quantize-awq.json"))
print(f"group size {group}; calibration {awq['calibration']['blocks']} blocks x {awq['calibration']['block_tokens']} tokens")
print("| weights | perplexity | scored tokens | ctx/stride | quantize s |")
print("| --- | --- | --- | --- | --- |")
print("\n".join(rows))
EOF
