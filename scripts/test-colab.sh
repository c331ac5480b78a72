#!/usr/bin/env bash
# Colab's runtime, reproduced: a fresh venv with the versions Google Colab pins (google-colab's
# setup.py: ipython==7.34.0, ipykernel==6.17.1, notebook==6.5.7, pandas==2.2.2, tornado==6.4.2;
# plus the traitlets 5.7.1 and ipywidgets 7.7.1 its image ships), then qwq_magic from this
# checkout (editable) without letting pip upgrade any of them, then the magic and kernel tests.
# pip's download cache is kept (~/.cache/pip) so a second run installs from it.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
venv="${COLAB_VENV:-.venv-colab}"
pins=(
  "ipython==7.34.0" "ipykernel==6.17.1" "traitlets==5.7.1" "ipywidgets==7.7.1"
  "notebook==6.5.7" "pandas==2.2.2" "tornado==6.4.2"
)
if [ ! -x "$venv/bin/python" ]; then
  "$PY" -m venv "$venv"
fi
stamp="$venv/.qwq-colab-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  quiet() { "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
  quiet "$venv/bin/python" -m pip install -q --upgrade pip
  # Colab's packages first, then ours with those pinned as constraints: if our floors were
  # above Colab's versions, this step fails instead of quietly upgrading them.
  quiet "$venv/bin/python" -m pip install -q "${pins[@]}"
  constraints="$venv/colab-constraints.txt"
  printf '%s\n' "${pins[@]}" > "$constraints"
  HATCH_JUPYTER_BUILDER_SKIP_NPM=1 quiet "$venv/bin/python" -m pip install -q -c "$constraints" \
    -e ".[widgets]" "pytest>=8" pytest-timeout "pytest-asyncio>=0.23" "hypothesis>=6.100" \
    "nbclient>=0.10" "nbformat>=5.10" "jupyter_client>=7"
  touch "$stamp"
fi
"$venv/bin/python" - <<'PY'
import IPython, ipykernel, traitlets, ipywidgets
print(f"colab venv: IPython {IPython.__version__}, ipykernel {ipykernel.__version__}, "
      f"traitlets {traitlets.__version__}, ipywidgets {ipywidgets.__version__}")
assert IPython.__version__ == "7.34.0" and traitlets.__version__ == "5.7.1", "pins were upgraded"
PY
# The magic, kernel, widget, interpolation and packaging (load without %load_ext) tests. Two widget tests look inside ipywidgets 8
# (the `tooltip` trait, which ipywidgets 7 calls `description_tooltip`; the comm spy of
# test_live_updates...) and are left out here; the panel itself works on 7.7.1.
exec "$venv/bin/python" -m pytest -p no:cacheprovider -W ignore::DeprecationWarning \
  tests/test_magics.py tests/test_kernel.py tests/test_widgets.py tests/test_interpolate.py \
  tests/test_packaging.py \
  --deselect tests/test_widgets.py::test_params_panel_rebuilds_on_provider_switch \
  --deselect tests/test_widgets.py::test_live_updates_do_not_grow_with_the_conversation \
  -x -q "$@"
