#!/usr/bin/env bash
# Run HERE (the development machine) before a GPU-machine call: fills the ignored folder .device/
# with what the GPU machine lacks and cannot fetch (it reaches no registry):
#   .device/onig/         Oniguruma headers (Debian libonig-dev, unpacked; the runtime is there)
#   .device/shared-data/  the parts of ../shared/data a call needs (default: wikitext-2 + llama-tiny)
# Then call the device with carry [".device"] and `bash scripts/device-test.sh ...`.
#   .device/snapshot.tar  with --snapshot: the committed tree (HEAD), so the GPU machine builds
#                         exactly what is committed even while the working tree is mid-edit
#   .device/pylib/        with --with-bnb: bitsandbytes (Python + its CUDA 13.0 library) for the peer runs
# Usage: scripts/device-prep.sh [--snapshot] [--with-bnb] [data-item ...]   e.g. wikitext-2 models/llama-tiny-wikitext
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
# The commit the call builds (the copy there has no .git); "-dirty" when the working tree differs from it.
{ git rev-parse --short=12 HEAD | tr -d '\n'; git diff --quiet HEAD -- . ':!.device' || printf -- '-dirty'; echo; } \
  > .device/git-commit
rm -f .device/snapshot.tar
rm -rf .device/pylib
while [ $# -gt 0 ]; do
  case "$1" in
    --snapshot) git archive --format=tar -o .device/snapshot.tar HEAD ;;
    --with-bnb)
      # bitsandbytes for the transformers peer (scripts/peers/hf_generate.py): the GPU machine's image lacks
      # it. Its Python is version-independent; of its native libraries only the CUDA 13.0 one is taken.
      bnb="$("$ROOT/.venv/bin/python" -c 'import bitsandbytes, os; print(os.path.dirname(bitsandbytes.__file__))')"
      mkdir -p .device/pylib
      cp -r "$bnb" .device/pylib/
      find .device/pylib/bitsandbytes \( -name '*.so' -o -name __pycache__ \) -prune -exec rm -rf {} +
      cp "$bnb/libbitsandbytes_cuda130.so" .device/pylib/bitsandbytes/
      cp -r "$(dirname "$bnb")"/bitsandbytes-*.dist-info .device/pylib/ ;;
    *) break ;;
  esac
  shift
done
SHARED="${QB_SHARED_DATA:-$ROOT/../shared/data}"
items=("$@")
[ ${#items[@]} -eq 0 ] && items=(wikitext-2 models/llama-tiny-wikitext)
rm -rf .device/shared-data && mkdir -p .device/shared-data
for item in "${items[@]}"; do
  mkdir -p ".device/shared-data/$(dirname "$item")"
  cp -r "$SHARED/$item" ".device/shared-data/$item"
done
du -sh .device >&2
