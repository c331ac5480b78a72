#!/usr/bin/env bash
# Build the wheel from a clean checkout and check the built widget front end is inside it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
.venv/bin/python -m pip wheel -q --no-deps . -w "$out"
whl=$(ls "$out"/*.whl)
unzip -l "$whl" | grep -q "qwq_magic/widgets/static/panel.js" && unzip -l "$whl" | grep -q "qwq_magic/widgets/static/panel.css" || { echo "wheel has no widget bundle"; unzip -l "$whl"; exit 1; }
echo "wheel ok: $(basename "$whl") ships qwq_magic/widgets/static/panel.js"
