#!/usr/bin/env bash
# Build the sdist and the wheel from this checkout, run `twine check` on both, and check what a
# user gets: the widget front end (panel.js / panel.css, wherever in the package they live),
# py.typed and LICENSE in the wheel; LICENSE and CHANGELOG in the sdist; the version from
# qwq_magic.__version__. Then install the wheel into a clean venv and look for LICENSE and
# py.typed in the installed files.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$PY" -m build --sdist --wheel --outdir "$out" . >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
whl=$(ls "$out"/*.whl)
sdist=$(ls "$out"/*.tar.gz)
"$PY" -m twine check --strict "$whl" "$sdist"
"$PY" - "$whl" "$sdist" <<'PY'
import re, sys, tarfile, zipfile

whl, sdist = sys.argv[1:]
names = zipfile.ZipFile(whl).namelist()
problems = []
def need(pattern, where, what):
    if not any(re.search(pattern, n) for n in where):
        problems.append(what)
need(r"^qwq_magic/widgets/static/panel\.js$", names, "the widget front end (qwq_magic/widgets/static/panel.js)")
need(r"^qwq_magic/widgets/static/panel\.css$", names, "the widget styles (qwq_magic/widgets/static/panel.css)")
need(r"^qwq_magic/py\.typed$", names, "qwq_magic/py.typed")
need(r"\.dist-info/licenses/LICENSE$", names, "LICENSE (in .dist-info/licenses/)")
meta = zipfile.ZipFile(whl).read(next(n for n in names if n.endswith(".dist-info/METADATA")))
meta = meta.decode()
for field in ("Classifier: Framework :: Jupyter", "Classifier: Typing :: Typed",
              "License-Expression: MIT", "Project-URL: Documentation"):
    if field not in meta:
        problems.append(f"METADATA field {field!r}")
init = open("qwq_magic/__init__.py").read()
version = re.search(r'^__version__ = "([^"]+)"', init, re.M).group(1)
if f"\nVersion: {version}\n" not in meta:
    problems.append(f"METADATA Version {version} (from qwq_magic.__version__)")
snames = tarfile.open(sdist).getnames()
need(r"^[^/]+/LICENSE$", snames, "LICENSE in the sdist")
need(r"^[^/]+/CHANGELOG\.md$", snames, "CHANGELOG.md in the sdist")
if problems:
    sys.exit("wheel/sdist check failed, missing: " + "; ".join(problems))
print(f"wheel ok: {whl.rsplit('/', 1)[-1]} ships the widget, py.typed, LICENSE; "
      f"sdist ok: {sdist.rsplit('/', 1)[-1]}")
PY
# a clean venv (no dependencies: only the files matter here)
"${PYTHON:-python3}" -m venv "$out/venv"
"$out/venv/bin/python" -m pip install -q --no-deps "$whl" 2> >(grep -v "is ignored: it is neither" >&2)
"$out/venv/bin/python" - <<'PY'
from importlib.metadata import distribution
files = {str(f) for f in distribution("qwq-magic").files or []}
missing = [f for f in ("qwq_magic/py.typed",) if f not in files]
if not any(f.endswith("licenses/LICENSE") for f in files):
    missing.append("LICENSE")
if missing:
    raise SystemExit(f"installed wheel lacks {missing}")
print("installed wheel ok: LICENSE and py.typed present")
PY
