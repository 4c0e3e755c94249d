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
import re
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
class PromptCandidate:
    """One request the LLM proposed, and every prompt filter it fails (none: usable)."""

    text: str
    style: str  # "lazy" or "descriptive"
    filters: tuple[str, ...] = ()


# description_status values
DESCRIBED = "described"
DESCRIBE_FAILED = "failed"  # failure_reason says why; ``miner describe --only-failed`` retries
PROMPT_FILTERED = "prompt_filtered"  # every candidate failed a prompt filter
NOT_SENT = "not_sent"  # --dry-run: the request was written to a file, not sent

# verified values (``miner verify``); None: not verified
REPRODUCED = "reproduced"  # red with the recorded error, and the fix turned it green
NOT_RED = "not_red"  # the rebuilt red state did not fail with the recorded error
NOT_GREEN = "not_green"  # the fix applied but the build stayed red
DOES_NOT_APPLY = "does_not_apply"  # the fix diff did not apply to the red state
NO_REPO = "no_repo"  # the base revision's repository is not on this machine
# a verification that proved the fix wrong: such an episode leaves train.jsonl
DISPROVED = frozenset({NOT_RED, NOT_GREEN, DOES_NOT_APPLY})


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
    description_status: str | None = None
    failure_reason: str | None = None
    error_kind: str | None = None
    prompt_candidates: tuple[PromptCandidate, ...] = ()
    template_version: str | None = None
    llm_tokens_in: int = 0
    llm_tokens_out: int = 0
    verified: str | None = None
    verify_output: str | None = None
    dup_group: str | None = None

    @property
    def usable(self) -> bool:
        """Kept, described, with a prompt, and not disproved by verification: a line of
        ``train.jsonl`` (an unverified episode, or one without its repository, stays)."""
        return (
            self.kept
            and self.description_status == DESCRIBED
            and bool(self.prompt)
            and self.verified not in DISPROVED
        )

    def to_row(self) -> dict[str, Any]:
        """The row of ``episodes.parquet`` (schema ``schemas.v1.EPISODES``)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "fix_paths"}
        row["diagnostics"] = list(self.diagnostics)
        row["context"] = [{"path": c.path, "content": c.content} for c in self.context]
        row["filters"] = list(self.filters)
        row["prompt_candidates"] = [
            {"text": c.text, "style": c.style, "filters": list(c.filters)}
            for c in self.prompt_candidates
        ]
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Episode:
        """The episode of one ``episodes.parquet`` row (any schema v1 file)."""
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls) if f.name in row}
        values["diagnostics"] = tuple(row.get("diagnostics") or ())
        values["context"] = tuple(
            ContextFile(c["path"], c["content"]) for c in row["context"] or ()
        )
        values["filters"] = tuple(row.get("filters") or ())
        values["prompt_candidates"] = tuple(
            PromptCandidate(c["text"], c["style"], tuple(c["filters"] or ()))
            for c in row.get("prompt_candidates") or ()
        )
        values["fix_paths"] = diff_paths(row.get("fix_diff") or "")
        for name in ("error_count", "llm_tokens_in", "llm_tokens_out"):
            values[name] = row.get(name) or 0
        return cls(**values)


_DIFF_HEADER = re.compile(r"^diff --git a/(.*) b/(.*)$", re.MULTILINE)


def diff_paths(diff: str) -> tuple[str, ...]:
    """The files a git-style diff touches, in order (new names of renames)."""
    return tuple(dict.fromkeys(match.group(2) for match in _DIFF_HEADER.finditer(diff)))
