"""Checkpoint files for ``qm.map``: every finished row is written as it finishes.

Three formats, chosen by the file's suffix:

* ``.sqlite`` / ``.db`` — one table, one committed row per finished row (the default choice);
* ``.jsonl`` — one JSON line per finished row, flushed at once (a torn last line is skipped);
* ``.parquet`` — Parquet cannot be appended to, so the file is rewritten atomically at most
  once a second and when the run ends (also on an interrupt).

A record is ``{"key", "status", "index", "result"}``: ``key`` identifies the request (a hash of
the filled prompt, model, parameters and schema), ``status`` is ``"ok"`` or ``"error"`` and
``result`` holds the row's output columns. Reading merges every record; the last one for a key
wins. Rows whose last record is an error are sent again on the next run.

Each run (or Dask partition) has exactly one writer; Dask partitions write side files
``NAME.partNNNNN.SUFFIX`` beside ``NAME.SUFFIX`` and every reader merges them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = ["Store", "load", "open_store", "part_path"]

SUFFIXES = (".sqlite", ".sqlite3", ".db", ".jsonl", ".parquet")
Record = dict[str, Any]


def _kind(path: Path) -> str:
    suf = path.suffix.lower()
    if suf in (".sqlite", ".sqlite3", ".db"):
        return "sqlite"
    if suf in (".jsonl", ".parquet"):
        return suf[1:]
    raise ConfigurationError(
        f"checkpoint={str(path)!r}: use a file ending in .sqlite, .jsonl or .parquet "
        "(e.g. checkpoint='labels.sqlite').")


def check_path(path: str | os.PathLike[str]) -> Path:
    """The checkpoint path, validated (suffix known, folder exists or can be made)."""
    p = Path(path).expanduser()
    _kind(p)
    if p.exists() and p.is_dir():
        raise ConfigurationError(f"checkpoint={str(p)!r} is a folder: give a file name such as "
                                 f"{str(p / 'labels.sqlite')!r}.")
    return p


def part_path(path: Path, part: int) -> Path:
    """The side file one Dask partition writes: ``labels.part00003.sqlite``."""
    return path.with_name(f"{path.stem}.part{part:05d}{path.suffix}")


def _all_files(path: Path) -> list[Path]:
    files = [path] if path.exists() else []
    files += sorted(path.parent.glob(f"{path.stem}.part[0-9][0-9][0-9][0-9][0-9]{path.suffix}"))
    return files


def load(path: str | os.PathLike[str]) -> dict[str, Record]:
    """Every record in the checkpoint and its partition side files (key → last record)."""
    p = check_path(path)
    out: dict[str, Record] = {}
    for f in _all_files(p):
        for rec in _read(f):
            out[rec["key"]] = rec
    return out


def _read(path: Path) -> list[Record]:
    kind = _kind(path)
    try:
        if kind == "sqlite":
            con = sqlite3.connect(path)
            try:
                rows = con.execute("SELECT key, status, idx, result FROM rows ORDER BY written"
                                   ).fetchall()
            except sqlite3.OperationalError:  # an empty or foreign database
                rows = []
            finally:
                con.close()
            return [{"key": k, "status": s, "index": json.loads(i), "result": json.loads(r)}
                    for k, s, i, r in rows]
        if kind == "jsonl":
            out = []
            with path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue  # a line torn by a crash: that row runs again
                    if isinstance(rec, dict) and "key" in rec:
                        out.append(rec)
            return out
        import pandas as pd

        df = pd.read_parquet(path)
        return [{"key": k, "status": s, "index": json.loads(i), "result": json.loads(r)}
                for k, s, i, r in zip(df["key"], df["status"], df["index"], df["result"],
                                      strict=True)]
    except (OSError, sqlite3.DatabaseError, ValueError, KeyError) as e:
        raise ConfigurationError(f"Cannot read the checkpoint {str(path)!r}: {e}. Move it away "
                                 "to start afresh, or pass another checkpoint=.") from None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


class Store:
    """The one writer of a checkpoint file (not thread-safe: use it from one thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind = _kind(path)
        self.written = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con: sqlite3.Connection | None = None
        self._file: Any = None
        self._pending: list[Record] = []
        self._dirty = False
        self._last_flush = 0.0
        if self.kind == "sqlite":
            con = sqlite3.connect(path, timeout=30, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, status TEXT, "
                        "idx TEXT, result TEXT, written REAL)")
            con.commit()
            self._con = con
        elif self.kind == "jsonl":
            self._file = path.open("a", encoding="utf-8")
        else:
            self._pending = _read(path) if path.exists() else []

    def write(self, rec: Record) -> None:
        """Write one finished row (committed / flushed before returning, Parquet batched)."""
        self.written += 1
        if self._con is not None:
            self._con.execute(
                "INSERT OR REPLACE INTO rows (key, status, idx, result, written) "
                "VALUES (?, ?, ?, ?, ?)",
                (rec["key"], rec["status"], _dumps(rec["index"]), _dumps(rec["result"]),
                 time.time()))
            self._con.commit()
        elif self._file is not None:
            self._file.write(_dumps(rec) + "\n")
            self._file.flush()
        else:
            self._pending.append(rec)
            self._dirty = True
            if time.monotonic() - self._last_flush >= 1.0:
                self._write_parquet()

    def _write_parquet(self) -> None:
        import pandas as pd

        latest: dict[str, Record] = {r["key"]: r for r in self._pending}
        self._pending = list(latest.values())
        df = pd.DataFrame({
            "key": [r["key"] for r in self._pending],
            "status": [r["status"] for r in self._pending],
            "index": [_dumps(r["index"]) for r in self._pending],
            "result": [_dumps(r["result"]) for r in self._pending],
        })
        tmp = self.path.with_name(self.path.name + ".tmp")
        df.to_parquet(tmp, index=False)
        tmp.replace(self.path)
        self._dirty = False
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._con is not None:
            with contextlib.suppress(sqlite3.Error):
                self._con.close()
            self._con = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.kind == "parquet" and self._dirty:
            self._write_parquet()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(path: str | os.PathLike[str], part: int | None = None) -> Store:
    """The writer for ``path`` (or for partition ``part``'s side file)."""
    p = check_path(path)
    return Store(part_path(p, part) if part is not None else p)
