#!/usr/bin/env bash
# Build the documentation site into site/ (git-ignored), offline:
#   1. execute the tutorial notebooks from their recordings (main .venv: qwq_magic + a kernel),
#   2. build with mkdocs --strict (pinned toolchain in .venv-docs, docs/requirements.txt),
#   3. check every internal link and anchor of the built site (no network).
# bash scripts/docs.sh --serve   previews at http://127.0.0.1:8000 after building.
# QWQ_PYTHON=/path/to/python uses that interpreter (with qwq_magic and a kernel) instead of
# setting up .venv.
set -euo pipefail
export NO_MKDOCS_2_WARNING=1   # the theme's end-of-life banner on every build
cd "$(dirname "$0")/.."
if [ -z "${QWQ_PYTHON:-}" ]; then
  bash scripts/setup.sh >/dev/null
fi
NBPY="${QWQ_PYTHON:-.venv/bin/python}"
PY="${PYTHON:-python3}"
if [ ! -x .venv-docs/bin/python ]; then
  "$PY" -m venv .venv-docs
fi
stamp=.venv-docs/.qwq-docs-installed
if [ ! -f "$stamp" ] || [ docs/requirements.txt -nt "$stamp" ]; then
  .venv-docs/bin/python -m pip install -q -r docs/requirements.txt \
    2> >(grep -v "is ignored: it is neither" >&2)
  touch "$stamp"
fi
start=$(date +%s)
rm -rf docs/tutorials
"$NBPY" scripts/docs_notebooks.py 2> >(grep -v "Kernel is running over TCP" >&2)
.venv-docs/bin/mkdocs build --strict --clean -q
.venv-docs/bin/python scripts/check_links.py site
echo "docs: built site/ in $(( $(date +%s) - start )) s"
if [ "${1:-}" = "--serve" ]; then
  exec .venv-docs/bin/mkdocs serve --no-livereload -a 127.0.0.1:8000
fi
