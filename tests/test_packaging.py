"""Packaging promises: one version, Colab's pinned versions satisfy our floors, the extension
loads from IPython configuration or from ``import qwq_magic`` without ``%load_ext``."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import qwq_magic
from qwq_magic.client import USER_AGENT

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# what Google Colab's runtime has (google-colab's setup.py and its image); scripts/test-colab.sh
# installs exactly these
COLAB = {"ipython": "7.34.0", "traitlets": "5.7.1", "ipywidgets": "7.7.1", "ipykernel": "6.17.1",
         "pandas": "2.2.2", "tornado": "6.4.2", "notebook": "6.5.7"}


def test_the_version_lives_in_one_place():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "qwq_magic/__init__.py"
    assert f"qwq-magic/{qwq_magic.__version__}" == USER_AGENT


def test_user_agent_on_the_wire(provider_server):
    client = qwq_magic.Client("openai", base_url=provider_server.base_url("vllm"), model="qwq")
    client.complete("hi")
    headers = {k.lower(): v for k, v in provider_server.requests[-1].headers.items()}
    assert headers["user-agent"] == f"qwq-magic/{qwq_magic.__version__}"


@pytest.mark.parametrize("extra", [None, "widgets", "pandas"])
def test_colab_versions_satisfy_every_floor(extra):
    """A floor above Colab's version makes pip upgrade it, and Colab's runtime breaks."""
    project = PYPROJECT["project"]
    reqs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    for line in reqs:
        req = Requirement(line)
        name = req.name.lower()
        if name in COLAB:
            assert req.specifier.contains(COLAB[name]), (
                f"{line!r} excludes Colab's {name} {COLAB[name]}")


def test_metadata_for_the_index():
    project = PYPROJECT["project"]
    classifiers = set(project["classifiers"])
    assert {"Framework :: Jupyter", "Framework :: IPython", "Typing :: Typed",
            "Intended Audience :: Science/Research"} <= classifiers
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "qwq_magic" / "py.typed").exists()
    assert {"Documentation", "Source", "Changelog"} <= set(project["urls"])
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()


def _ipython(code: str, ipythondir: Path, config: str | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh terminal IPython with its own IPYTHONDIR (and config)."""
    profile = ipythondir / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (profile / "ipython_config.py").write_text(config)
    env = {**os.environ, "IPYTHONDIR": str(ipythondir), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor",
         "--TerminalInteractiveShell.term_title=False", "-c", code],
        capture_output=True, text=True, env=env, timeout=120, cwd=ipythondir)


CHECK = ("import sys; print('state:', 'loaded' if 'qwq_magic.magics' in sys.modules else 'unloaded'); "
         "get_ipython().run_line_magic('qwq', 'help')")


def test_not_loaded_is_ipythons_usual_error(tmp_path):
    out = _ipython("get_ipython().run_cell_magic('qwq', '', 'hi')", tmp_path)
    assert "Cell magic `%%qwq` not found" in out.stdout + out.stderr


def test_import_alone_makes_the_magic_available_lazily(tmp_path):
    code = ("import sys, qwq_magic; print('magics imported:', 'qwq_magic.magics' in sys.modules); "
            "get_ipython().run_line_magic('qwq', 'help')")
    out = _ipython(code, tmp_path)
    assert "magics imported: False" in out.stdout, out.stdout + out.stderr
    assert "%qwq use PROVIDER" in out.stdout


@pytest.mark.parametrize(("config", "at_start"), [
    ('c.InteractiveShellApp.extensions = ["qwq_magic"]\n', "loaded"),
    ('c.MagicsManager.lazy_magics = {"qwq": "qwq_magic"}\n', "unloaded"),
])
def test_documented_config_lines_work(tmp_path, config, at_start):
    out = _ipython(CHECK, tmp_path, config)
    assert f"state: {at_start}\n" in out.stdout, out.stdout + out.stderr
    assert "%qwq use PROVIDER" in out.stdout
