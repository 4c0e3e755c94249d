"""Every byte a process wrote under a folder, in a form a byte search can see through.

Parquet files are compressed (zstd), so searching their raw bytes finds nothing
whatever they hold: each one is read back with pyarrow and every value of every
row is searched as text (bytes decoded leniently), besides its raw bytes.
SQLite files and everything else are searched raw, free pages included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def parquet_text(path: Path) -> bytes:
    rows = pq.read_table(path).to_pylist()
    values = [str(v) for row in rows for v in _plain(row).values()]
    # plain text, and JSON (which escapes as a request would)
    return ("\n".join(values) + "\n" + json.dumps(_plain(rows))).encode("utf-8", "replace")


def written(root: Path) -> bytes:
    """Every byte under ``root``; Parquet files also decoded to their values."""
    if not root.exists():
        return b""
    parts: list[bytes] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        parts.append(path.read_bytes())
        if path.suffix == ".parquet":
            parts.append(parquet_text(path))
    return b"\n".join(parts)
