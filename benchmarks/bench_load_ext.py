"""``%load_ext qwq_magic`` start-up time, in fresh processes, against a baseline measured in the
same run: loading a trivial extension in an identical fresh IPython shell. Reports the extra
seconds qwq_magic costs, the ratio and the heavy modules ``load_ext`` itself imports (not those
IPython had already loaded). jupyter-ai's magics (``%load_ext jupyter_ai_magics``) are measured
too when installed (reference figure: ~1.3 s).

    .venv/bin/python benchmarks/bench_load_ext.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = r"""
import sys, time
from IPython.core.interactiveshell import InteractiveShell
sh = InteractiveShell.instance()
before = set(sys.modules)
t = time.perf_counter()
sh.run_line_magic("load_ext", sys.argv[1])
dt = time.perf_counter() - t
# only what load_ext itself imported (IPython already loads pygments, for one)
heavy = [m for m in ("httpx", "pandas", "pydantic", "markdown_it", "pygments", "ipywidgets",
                     "anywidget", "jsonschema", "jiter") if m in sys.modules and m not in before]
print(dt, ",".join(heavy))
"""


# jupyter-ai is installed apart (``pip install --target benchmarks/.jai jupyter-ai-magics``, as
# run.sh does) so that its pins (langchain, an older packaging) never touch the project's venv
JAI = Path(__file__).resolve().parent / ".jai"


def measure(ext: str, repeat: int, cwd: str, extra_path: Path | None = None) -> tuple[float, str]:
    times, heavy = [], ""
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(extra_path), env.get("PYTHONPATH", "")) if p)
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", PROBE, ext], capture_output=True, text=True,
                             cwd=cwd, check=True, env=env).stdout.split()
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
        elif (JAI / "jupyter_ai_magics").is_dir():
            res["jupyter_ai_magics_s"], _ = measure("jupyter_ai_magics", 3, d, JAI)
    print(f"trivial extension  {base * 1000:7.1f} ms")
    print(f"qwq_magic          {ours * 1000:7.1f} ms  (target < 150 ms; heavy modules: {heavy or 'none'})")
    print(f"ratio              {ours / base:7.1f}×")
    print()
    print(f"### `%load_ext` time (fresh IPython shell, median of {a.repeat})")
    print()
    print("| extension | ms | × trivial | extra ms | heavy modules it imports |")
    print("|---|---:|---:|---:|---|")
    print(f"| trivial (baseline) | {base * 1000:.1f} | 1.0× | 0.0 | none |")
    print(f"| qwq_magic | {ours * 1000:.1f} | {ours / base:.1f}× | {(ours - base) * 1000:.1f} | "
          f"{heavy or 'none'} |")
    if "jupyter_ai_magics_s" in res:
        ja = res["jupyter_ai_magics_s"]
        print(f"| jupyter_ai_magics | {ja * 1000:.1f} | {ja / base:.1f}× | "
              f"{(ja - base) * 1000:.1f} | |")
    else:
        print("| jupyter_ai_magics | not installed | | | |")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
