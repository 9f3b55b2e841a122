#!/usr/bin/env bash
# Run HERE (the development machine) before a GPU-machine call: fills the ignored folder .device/
# with what the GPU machine lacks and cannot fetch (it reaches no registry):
#   .device/onig/         Oniguruma headers (Debian libonig-dev, unpacked; the runtime is there)
#   .device/shared-data/  the parts of ../shared/data a call needs (default: wikitext-2 + llama-tiny)
# Then call the device with carry [".device"] and `bash scripts/device-test.sh ...`.
#   .device/snapshot.tar  with --snapshot: the committed tree (HEAD), so the GPU machine builds
#                         exactly what is committed even while the working tree is mid-edit
# Usage: scripts/device-prep.sh [--snapshot] [data-item ...]   e.g. wikitext-2 models/llama-tiny-wikitext
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
grep -qx '/.device/' .gitignore || { echo "/.device/ must be ignored" >&2; exit 1; }
mkdir -p .device
if [ ! -f .device/onig/usr/include/oniguruma.h ]; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download libonig-dev >/dev/null)
  mkdir -p .device/onig && dpkg -x "$tmp"/libonig-dev_*.deb .device/onig && rm -rf "$tmp"
fi
rm -f .device/snapshot.tar
if [ "${1:-}" = --snapshot ]; then
  shift
  git archive --format=tar -o .device/snapshot.tar HEAD
fi
SHARED="${QB_SHARED_DATA:-$ROOT/../shared/data}"
items=("$@")
[ ${#items[@]} -eq 0 ] && items=(wikitext-2 models/llama-tiny-wikitext)
rm -rf .device/shared-data && mkdir -p .device/shared-data
for item in "${items[@]}"; do
  mkdir -p ".device/shared-data/$(dirname "$item")"
  cp -r "$SHARED/$item" ".device/shared-data/$item"
done
du -sh .device >&2
