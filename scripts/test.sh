#!/usr/bin/env bash
# Run everything: lint, unit + integration + kernel + browser tests, and the notebooks under nbval.
# Extra arguments go to pytest (e.g. scripts/test.sh -k reasoning).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# llama-cpp-python's server for the tests marked `llama` (built once, then cached)
bash scripts/setup-llama.sh
export QWQMAGIC_REQUIRE_LLAMA=1
.venv/bin/ruff check qwq_magic tests benchmarks scripts conftest.py
.venv/bin/mypy qwq_magic --ignore-missing-imports
args=(tests)
if ls notebooks/*.ipynb >/dev/null 2>&1; then
  args+=(notebooks --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg)
fi
# the suites' figures (keys planted, streams soaked, bad inputs…) are printed at the end and
# kept in test-artifacts/figures.txt; the long suites (soak, interrupts, browser, kernel) run
# once, here, and their times are printed with the figures
mkdir -p test-artifacts
export QWQMAGIC_FIGURES_FILE="$PWD/test-artifacts/figures.txt"
: > "$QWQMAGIC_FIGURES_FILE"
exec .venv/bin/python -m pytest "${args[@]}" "$@"
