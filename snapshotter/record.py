"""Turn captured states and build outcomes into schema-v1 ``snapshots`` rows.

Rows are plain dicts with the columns of ``schemas.v1.SNAPSHOTS``; the spool
stores them and the roll writes them to Parquet unchanged.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ulid import ULID

from schemas.v1 import SCHEMA_VERSION
from snapshotter.build import BuildOutcome
from snapshotter.capture import Changes, State, compute_state_id
from snapshotter.diagnostics import parse_diagnostics
from snapshotter.redact import redact_text


@dataclass(frozen=True)
class Identity:
    host: str
    user: str

    @classmethod
    def current(cls) -> Identity:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (some containers)
            user = "unknown"
        return cls(host=socket.gethostname() or "localhost", user=user)


def snapshot_id(ts: datetime) -> str:
    """Unique and time-sortable: a ULID whose time part is the row's ``ts``."""
    return str(ULID.from_datetime(ts))


def build_record(outcome: BuildOutcome, state: State, status: str) -> dict[str, Any]:
    """The ``build`` struct for a build of ``state`` (``status`` may say ``stale``).

    The output is redacted before anything parses or stores it.
    """
    output = redact_text(outcome.output)
    return {
        "status": status,
        "state_id": state.state_id,
        "command": redact_text(outcome.command),
        "exit_code": outcome.exit_code,
        "started_at": outcome.started_at,
        "finished_at": outcome.finished_at,
        "output": output,
        "diagnostics": parse_diagnostics(output, Path(state.workspace), failed=status == "red"),
    }


def build_key(build: dict[str, Any] | None) -> str | None:
    """What makes two build results the same result (times do not)."""
    if build is None:
        return None
    essence = [build["status"], build["state_id"], build["command"], build["exit_code"]]
    essence.append(build["output"])
    return hashlib.sha256(json.dumps(essence).encode()).hexdigest()


def state_row(
    state: State,
    identity: Identity,
    reason: str,
    build: dict[str, Any] | None,
    ts: datetime | None = None,
) -> dict[str, Any]:
    """A row for ``state``; ``ts`` defaults to when it was read (heartbeats and stops pass now)."""
    return _row(
        ts=ts or state.read_at,
        identity=identity,
        state=state,
        base_rev=state.base_rev,
        state_id=state.state_id,
        changes=state.changes,
        reason=reason,
        build=build,
    )


def base_row(state: State, identity: Identity, changes: Changes, ts: datetime) -> dict[str, Any]:
    """A ``base`` row: ``files``/``diff`` go from the previously recorded base to ``state``'s.

    ``base_blob`` holds each path's content at the old base and ``blob`` at the
    new one, so the miner can rebuild states on both sides of a commit, pull
    or update without the repository.  Its ``state_id`` is the clean new base.
    """
    return _row(
        ts=ts,
        identity=identity,
        state=state,
        base_rev=state.base_rev,
        state_id=compute_state_id(state.base_rev, ()),
        changes=changes,
        reason="base",
        build=None,
    )


def _row(
    *,
    ts: datetime,
    identity: Identity,
    state: State,
    base_rev: str,
    state_id: str,
    changes: Changes,
    reason: str,
    build: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "snapshot_id": snapshot_id(ts),
        "schema_version": SCHEMA_VERSION,
        "ts": ts,
        "host": identity.host,
        "user": identity.user,
        "workspace": state.workspace,
        "vcs": state.vcs,
        "base_rev": base_rev,
        # a branch or bookmark name is the developer's free text: it can hold a token
        "branch": None if state.branch is None else redact_text(state.branch),
        "state_id": state_id,
        "files": [f.as_row() for f in changes.files],
        "diff": changes.diff,
        "lines_added": changes.lines_added,
        "lines_removed": changes.lines_removed,
        "build": build,
        "reason": reason,
    }
