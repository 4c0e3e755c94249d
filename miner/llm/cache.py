"""LLM answers on disk, so a rerun costs no request and a killed run resumes.

One SQLite table (WAL, committed per answer, so a kill loses at most the
requests in flight) keyed by the sha256 of the model, the template version
and digest, and the exact messages sent.  Only answers that parsed are
stored: a failed request is asked again on the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from miner.errors import OutputError

CACHE_FILE = "llm-cache.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    template TEXT NOT NULL,
    content TEXT NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
)
"""


@dataclass(frozen=True)
class CachedAnswer:
    content: str
    tokens_in: int
    tokens_out: int


def cache_key(model: str, template: str, digest: str, messages: list[dict[str, str]]) -> str:
    payload = json.dumps(
        {"model": model, "template": template, "digest": digest, "messages": messages},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class AnswerCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # private: it holds code
            os.close(fd)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutputError(f"cannot open the LLM answer cache {path}: {exc}") from exc

    def get(self, key: str) -> CachedAnswer | None:
        row = self._db.execute(
            "SELECT content, tokens_in, tokens_out FROM answers WHERE key = ?", (key,)
        ).fetchone()
        return CachedAnswer(*row) if row else None

    def put(self, key: str, model: str, template: str, answer: CachedAnswer) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO answers (key, model, template, content, tokens_in, tokens_out)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key, model, template, answer.content, answer.tokens_in, answer.tokens_out),
        )

    def __len__(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM answers").fetchone()
        return int(count)

    def close(self) -> None:
        self._db.close()
