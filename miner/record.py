"""The mined episode as a value object, one field per column of ``episodes``.

Stages fill it in turn (assemble, then describe, then split) with
``dataclasses.replace``; :meth:`Episode.to_row` gives the dict that
``schemas.v1.EPISODES`` stores.  ``fix_paths`` is the one field the schema
does not have: the describer needs the names of every file the fix touches,
binary ones included, and ``context`` holds only the text ones.  ``context``
holds the fix's files first, then the other files the red diagnostics name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any


def episode_id(red_id: str, green_id: str) -> str:
    """Stable id of the episode ending in the red snapshot ``red_id`` and the green ``green_id``."""
    return hashlib.sha256(f"{red_id}\n{green_id}".encode()).hexdigest()


@dataclass(frozen=True)
class ContextFile:
    path: str
    content: str


@dataclass(frozen=True)
class Episode:
    episode_id: str
    host: str | None
    user: str | None
    workspace: str | None
    vcs: str | None
    green_before_id: str
    first_red_id: str
    red_id: str
    green_id: str
    red_started_at: datetime
    red_ended_at: datetime
    red_seconds: float
    red_snapshots: int
    error: str | None
    diagnostics: tuple[dict[str, Any], ...]
    error_fingerprint: str | None
    fix_diff: str
    fix_lines: int
    fix_files: int
    break_diff: str
    context: tuple[ContextFile, ...]
    filters: tuple[str, ...]
    kept: bool
    fix_paths: tuple[str, ...] = ()
    # distinct error fingerprints over the episode's red builds
    error_count: int = 0
    description: str | None = None
    prompt: str | None = None
    describer: str | None = None
    split: str | None = None

    def to_row(self) -> dict[str, Any]:
        """The row of ``episodes.parquet`` (schema ``schemas.v1.EPISODES``)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "fix_paths"}
        row["diagnostics"] = list(self.diagnostics)
        row["context"] = [{"path": c.path, "content": c.content} for c in self.context]
        row["filters"] = list(self.filters)
        return row
