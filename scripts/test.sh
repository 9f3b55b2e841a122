#!/usr/bin/env bash
# The test command: set up (idempotent), build, run every test through CTest. GPU tests skip with
# a printed reason where there is no GPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
BUILD_DIR="${QB_BUILD_DIR:-build}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" "$@"
