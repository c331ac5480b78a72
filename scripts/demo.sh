#!/usr/bin/env bash
# Set up, start the local provider server, and open the quickstart notebook in JupyterLab.
# The tutorials replay recordings, so they run with no key and no network; the server lets
# you chat live (the notebooks show how to point at a real provider instead).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PORT="${QWQ_SERVER_PORT:-8765}"
.venv/bin/python -m qwq_magic.testing --port "$PORT" > .venv/provider-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
export QWQ_LOCAL_SERVER="http://127.0.0.1:$PORT"
echo "local provider server: $QWQ_LOCAL_SERVER (log: .venv/provider-server.log)"
root=()
[ "$(id -u)" = 0 ] && root=(--allow-root)
.venv/bin/python -m jupyterlab "${root[@]}" notebooks/quickstart.ipynb "$@"
