"""``%load_ext qwq_magic`` start-up time, in fresh processes, against a baseline measured in the
same run: loading a trivial extension in an identical fresh IPython shell. Reports the extra
seconds qwq_magic costs and the ratio. jupyter-ai's magics (``%load_ext jupyter_ai_magics``)
are measured too when installed (reference figure: ~1.3 s).

    .venv/bin/python benchmarks/bench_load_ext.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = r"""
import sys, time
from IPython.core.interactiveshell import InteractiveShell
sh = InteractiveShell.instance()
t = time.perf_counter()
sh.run_line_magic("load_ext", sys.argv[1])
dt = time.perf_counter() - t
heavy = [m for m in ("httpx", "pandas", "pydantic", "markdown_it", "pygments", "ipywidgets",
                     "anywidget", "jsonschema", "jiter") if m in sys.modules]
print(dt, ",".join(heavy))
"""


def measure(ext: str, repeat: int, cwd: str) -> tuple[float, str]:
    times, heavy = [], ""
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", PROBE, ext], capture_output=True, text=True,
                             cwd=cwd, check=True).stdout.split()
        times.append(float(out[0]))
        heavy = out[1] if len(out) > 1 else ""
    return statistics.median(times), heavy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        Path(d, "trivial_ext.py").write_text("def load_ipython_extension(ip):\n    pass\n")
        base, _ = measure("trivial_ext", a.repeat, d)
        ours, heavy = measure("qwq_magic", a.repeat, d)
        res = {"baseline_s": base, "qwq_magic_s": ours, "extra_s": ours - base,
               "heavy_modules_loaded": heavy or "none"}
        if importlib.util.find_spec("jupyter_ai_magics"):
            res["jupyter_ai_magics_s"], _ = measure("jupyter_ai_magics", 3, d)
    print(f"trivial extension  {base * 1000:7.1f} ms")
    print(f"qwq_magic          {ours * 1000:7.1f} ms  (target < 150 ms; heavy modules: {heavy or 'none'})")
    print(f"ratio              {ours / base:7.1f}×")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
