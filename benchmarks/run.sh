#!/usr/bin/env bash
# One command for every benchmark: installs the same-run baselines (openai SDK, httpx-sse,
# litellm, matplotlib for the plot; jupyter-ai apart, in benchmarks/.jai, so its pins never
# touch the venv), then runs benchmarks/run_all.py. Extra arguments go to run_all.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
"$PY" -m pip install -q "openai>=1.40" "httpx-sse>=0.4" "matplotlib>=3.7"   # the [bench] extra
"$PY" -m pip install -q litellm || echo "litellm did not install: its row is left out" >&2
if [ ! -d benchmarks/.jai/jupyter_ai_magics ]; then
  "$PY" -m pip install -q --target benchmarks/.jai jupyter-ai-magics \
    || echo "jupyter-ai did not install: its %load_ext row is left out" >&2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/run_all.py "$@"
