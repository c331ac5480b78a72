#!/usr/bin/env bash
# Create .venv with qwq_magic (editable) and every test/demo dependency; install Debian's
# chromium for the browser tests when we can (root or sudo). Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.qwq-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "setup: could not install chromium; the browser tests will fail until it is installed"
  elif command -v sudo >/dev/null 2>&1; then
    (sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null) || echo "setup: could not install chromium; the browser tests will fail until it is installed"
  else
    echo "setup: install Debian's chromium (apt-get install chromium) to run the browser tests"
  fi
fi
