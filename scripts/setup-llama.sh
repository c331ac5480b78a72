#!/usr/bin/env bash
# Install llama-cpp-python's OpenAI-compatible server (pinned) and the gguf package into the
# venv, for the tests marked `llama` (a real third-party server serving a tiny model the tests
# build themselves). Idempotent:
#   - already installed at the pinned version: returns at once;
#   - a wheel built earlier is cached under ~/.cache/qwq-magic/wheels/: installs in seconds;
#   - otherwise builds the PyPI sdist for CPU (a few minutes on two cores) and caches the wheel.
# The tokenizer vocabulary and chat templates the tests need are extracted from the same sdist
# into ~/.cache/qwq-magic/llama-assets/<version>/.
# Environment: VENV (default .venv), QWQMAGIC_CACHE_DIR (default ~/.cache/qwq-magic), JOBS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
CACHE="${QWQMAGIC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qwq-magic}"
SDIST_DIR="$CACHE/sdist"
WHEEL_DIR="$CACHE/wheels"
ASSETS="$CACHE/llama-assets/$VERSION"
SDIST="$SDIST_DIR/llama_cpp_python-$VERSION.tar.gz"
pipq() { "$PY" -m pip "$@" 2>&1 | grep -v -E "^WARNING: Location .* is ignored" || true; }

if [ ! -x "$PY" ]; then
  echo "setup-llama: no venv at $VENV (run scripts/setup.sh first)" >&2
  exit 1
fi
mkdir -p "$SDIST_DIR" "$WHEEL_DIR"

fetch_sdist() {
  if [ ! -f "$SDIST" ]; then
    echo "setup-llama: downloading the llama-cpp-python $VERSION sdist"
    pipq download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$SDIST_DIR"
    [ -f "$SDIST" ] || { echo "setup-llama: download failed" >&2; exit 1; }
  fi
}

# 1. the assets: a real Qwen2 vocabulary and real QwQ / Qwen3 chat templates
if [ ! -f "$ASSETS/.done" ]; then
  fetch_sdist
  mkdir -p "$ASSETS"
  top="llama_cpp_python-$VERSION/vendor/llama.cpp/models"
  tar -xzf "$SDIST" -C "$ASSETS" --strip-components=4 \
    "$top/ggml-vocab-qwen2.gguf" \
    "$top/templates/Qwen-QwQ-32B.jinja" \
    "$top/templates/Qwen-Qwen3-0.6B.jinja"
  touch "$ASSETS/.done"
fi

# 2. the server, from the cached wheel or a fresh CPU build
installed=$("$PY" -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))" 2>/dev/null || true)
if [ "$installed" != "$VERSION" ] || ! "$PY" -c "import llama_cpp.server.app, gguf" >/dev/null 2>&1; then
  wheel=$(ls "$WHEEL_DIR"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ]; then
    fetch_sdist
    for tool in cmake g++ make; do
      command -v "$tool" >/dev/null 2>&1 || {
        echo "setup-llama: $tool is missing; install it (apt-get install cmake build-essential)" >&2
        exit 1
      }
    done
    echo "setup-llama: building llama-cpp-python $VERSION for CPU (a few minutes, once; cached in $WHEEL_DIR)"
    start=$(date +%s)
    export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_OPENMP=OFF -DGGML_METAL=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF -DLLAMA_LLAVA=OFF -DCMAKE_BUILD_TYPE=Release"
    export CMAKE_BUILD_PARALLEL_LEVEL="${JOBS:-2}"
    export FORCE_CMAKE=1
    pipq wheel -q --no-deps "$SDIST" -w "$WHEEL_DIR"
    wheel=$(ls "$WHEEL_DIR"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -1 || true)
    [ -n "$wheel" ] || { echo "setup-llama: the build failed" >&2; exit 1; }
    echo "setup-llama: built in $(( $(date +%s) - start )) s"
  fi
  pipq install -q "${wheel}[server]" "gguf>=0.10"
  "$PY" -c "import llama_cpp.server.app, gguf" || { echo "setup-llama: install failed" >&2; exit 1; }
fi
echo "setup-llama: llama-cpp-python $VERSION ready; assets in $ASSETS"
