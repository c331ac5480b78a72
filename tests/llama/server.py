"""Run llama-cpp-python's OpenAI-compatible server on loopback, serving the tiny chain model.

``LlamaServer`` is a context manager: a free port, ``python -m llama_cpp.server`` in a child
process (one thread), ready when ``/v1/models`` answers, terminated on exit. Its output goes to
a log file, whose access lines (``"POST /v1/chat/completions HTTP/1.1" 500``) tests may read.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from .make_model import Model, build

START_TIMEOUT = 90.0
_ACCESS = re.compile(r'"(GET|POST) (\S+) HTTP/1\.1" (\d{3})')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """llama-cpp-python's server with the chain model (``--model_alias reasoner``)."""

    def __init__(self, model: Model | None = None) -> None:
        self.model = model or build()
        self.port = _free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root}/v1"
        self._dir = tempfile.TemporaryDirectory(prefix="qwq-llama-")
        self.log_path = Path(self._dir.name) / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LlamaServer:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model.path),
               "--model_alias", self.model.alias, "--host", "127.0.0.1", "--port",
               str(self.port), "--n_ctx", "2048", "--n_threads", "1", "--n_batch", "512"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self._dir.name)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited ({self.proc.returncode}):\n"
                                   + self.log()[-3000:])
            try:
                r = httpx.get(f"{self.base_url}/models", timeout=2.0)
                if r.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("llama_cpp.server did not answer /v1/models within "
                                   f"{START_TIMEOUT:g} s:\n" + self.log()[-3000:])
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def access(self) -> list[tuple[str, str, int]]:
        """Every request the server logged so far: (method, path, status)."""
        return [(m, p, int(s)) for m, p, s in _ACCESS.findall(self.log())]

    def mark(self) -> int:
        """How many requests were logged so far (pass to :meth:`since`)."""
        return len(self.access())

    def since(self, mark: int, settle: float = 2.0) -> list[tuple[str, str, int]]:
        """The requests logged after ``mark`` (waits briefly for the log line to land)."""
        deadline = time.monotonic() + settle
        out = self.access()[mark:]
        while not out and time.monotonic() < deadline:
            time.sleep(0.05)
            out = self.access()[mark:]
        return out

    def client_kwargs(self, **kw: Any) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model.alias, **kw}
