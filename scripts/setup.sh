#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: system packages, libtorch (from the pinned
# PyPI torch wheel, CUDA 13.0 build, in .venv), then configure and build into build/.
# A second run finds everything in place and only lets ninja confirm the build is current.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TORCH_VERSION="2.11.0"            # PyPI's Linux wheel of 2.11.0 is the cu130 build (the GPU machine's)
MATPLOTLIB_VERSION="3.11.2"       # for `quantbench report --plots` (scripts/plot_results.py)
BUILD_DIR="${QB_BUILD_DIR:-build}"
APT_PACKAGES=(cmake ninja-build g++ git python3-venv nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
              libgtest-dev libonig-dev)

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="$ROOT/.venv/bin/python"
if [ ! -x "$PY" ]; then
  log "creating .venv"
  python3 -m venv "$ROOT/.venv"
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  log "installing torch==$TORCH_VERSION (libtorch with CUDA 13.0; a few GB)"
  "$PY" -m pip install -q --disable-pip-version-check "torch==$TORCH_VERSION"
fi
if ! "$PY" -c "import matplotlib" 2>/dev/null; then
  log "installing matplotlib (quantbench report --plots)"
  "$PY" -m pip install -q --disable-pip-version-check "matplotlib==$MATPLOTLIB_VERSION"
fi
TORCH_CMAKE="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)"

# The CUDA toolkit is optional: with it the kernels are compiled (CI compiles them without a GPU).
CUDA_ARGS=()
if [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
  CUDA_ARGS=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
else
  log "no CUDA toolkit at /usr/local/cuda: building the CPU-only variant"
  CUDA_ARGS=(-DQB_WITH_CUDA=OFF)
fi

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  log "configuring $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_CMAKE" "${CUDA_ARGS[@]}" >&2
fi
log "building"
cmake --build "$BUILD_DIR" -j "$(nproc)" >&2
log "ready: $BUILD_DIR/quantbench"
