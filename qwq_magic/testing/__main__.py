"""``python -m qwq_magic.testing``: run the local provider server and print how to use it."""

from __future__ import annotations

import argparse
import sys
import time

from .dialects import ROUTES
from .server import ACCOUNT_ID, API_KEY, DEFAULT_MODELS, ProviderServer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qwq_magic.testing",
                                 description="Local provider server speaking every dialect.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--pace", type=float, default=0.03,
                    help="seconds between streamed chunks (default 0.03: visible streaming)")
    ap.add_argument("--latency", type=float, default=0.0,
                    help="seconds each chat request waits before its reply starts")
    args = ap.parse_args(argv)
    srv = ProviderServer(args.host, args.port, pace=args.pace, latency=args.latency).start()
    print(f"qwq_magic test server on {srv.root}  (key: {API_KEY}, account: {ACCOUNT_ID})")
    for name in ROUTES:
        print(f"  {name:<11} {srv.base_url(name)}   model {DEFAULT_MODELS[name]}")
    print("\nIn a notebook:\n"
          f"  %qwq use openai --base-url {srv.base_url('vllm')} --model qwq\n"
          "In Python:\n"
          f"  qm.Client('deepinfra', base_url='{srv.base_url('deepinfra')}', "
          f"api_key='{API_KEY}')\n"
          f"  qm.Client('cloudflare', base_url='{srv.base_url('cloudflare')}', "
          f"api_key='{API_KEY}', account_id='{ACCOUNT_ID}')\nCtrl-C stops it.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
