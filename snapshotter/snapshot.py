"""One snapshot of one workspace, now: capture, build, record, roll.

This is ``snapshotter snapshot``: when it returns, the rows are in Parquet
and the miner sees them.  A build result is tagged with the state it was
computed on: the state is captured before and after the build, and a build
during which the workspace moved is ``stale`` (design rule 2).  Rows that
would repeat the last recorded state and build result are not written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from snapshotter.build import BuildLimits, BuildOutcome, run_build
from snapshotter.capture import CaptureSettings, State, base_change, capture
from snapshotter.paths import ensure_private_dir
from snapshotter.record import Identity, base_row, build_key, build_record, state_row
from snapshotter.roll import roll
from snapshotter.spool import Spool, WorkspaceMemory
from snapshotter.vcs import VcsBackend, open_backend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotOptions:
    build_command: str | None = None
    build_limits: BuildLimits = field(default_factory=BuildLimits)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    build_nice: int = 0


@dataclass(frozen=True)
class SnapshotReport:
    workspace: str
    vcs: str
    state_id: str
    files_changed: int
    build_status: str | None
    rows_recorded: int
    build_exit_code: int | None = None


BuildRunner = Callable[[str, Path], BuildOutcome]


def take_snapshot(
    workspace: Path,
    data_dir: Path,
    options: SnapshotOptions,
    identity: Identity | None = None,
    *,
    build_runner: BuildRunner | None = None,
) -> SnapshotReport:
    """Record the workspace's state now (and the build of it, when a command is given).

    ``build_runner`` replaces the default way of running the build; the
    ``snapshotter build`` wrapper uses it to pass the output through.
    """
    backend = open_backend(workspace)
    try:
        ensure_private_dir(data_dir)
        with Spool.open(data_dir) as spool:
            report = _record(backend, spool, options, identity or Identity.current(), build_runner)
            roll(spool, data_dir)
        return report
    finally:
        backend.close()


def _record(
    backend: VcsBackend,
    spool: Spool,
    options: SnapshotOptions,
    identity: Identity,
    build_runner: BuildRunner | None,
) -> SnapshotReport:
    before = capture(backend, options.capture)
    memory = spool.memory(before.workspace)
    rows: list[dict[str, Any]] = []
    blobs: dict[str, bytes] = dict(before.changes.blobs)

    if memory is not None and memory.base_rev != before.base_rev:
        moved = base_change(backend, memory.base_rev, before.base_rev, options.capture)
        if moved is None:
            log.warning(
                "%s: previous base %s is gone; states before it cannot be diffed to this one",
                before.workspace,
                memory.base_rev[:12],
            )
        else:
            blobs.update(moved.blobs)
            # just before the state it leads to, so stream order puts it between
            rows.append(
                base_row(before, identity, moved, before.read_at - timedelta(microseconds=1))
            )

    build: dict[str, Any] | None = None
    after: State | None = None
    if options.build_command:
        if build_runner is not None:
            outcome = build_runner(options.build_command, Path(before.workspace))
        else:
            outcome = run_build(
                options.build_command,
                Path(before.workspace),
                options.build_limits,
                nice=options.build_nice,
            )
        after = capture(backend, options.capture)
        status = outcome.status
        if after.state_id != before.state_id and status in ("green", "red"):
            status = "stale"
        build = build_record(outcome, before, status)
        blobs.update(after.changes.blobs)

    last = (memory.state_id, memory.build_key) if memory else None
    candidates = [before] if after is None or after.state_id == before.state_id else [before, after]
    for state in candidates:
        key = (state.state_id, build_key(build))
        # without a build of its own, a snapshot of the last recorded state adds nothing
        if key == last or (build is None and last is not None and last[0] == state.state_id):
            continue
        reason = "state" if last is None or last[0] != state.state_id else "build"
        rows.append(state_row(state, identity, reason, build))
        last = key

    final = candidates[-1]
    if rows:
        update = WorkspaceMemory(
            workspace=final.workspace,
            base_rev=final.base_rev,
            state_id=final.state_id,
            build_key=build_key(build),
            ts=final.read_at,
        )
        # append skips blobs already stored, inside its own transaction
        spool.append(rows, blobs, [update])
    return SnapshotReport(
        workspace=final.workspace,
        vcs=final.vcs,
        state_id=final.state_id,
        files_changed=len(final.files),
        build_status=build["status"] if build else None,
        rows_recorded=len(rows),
        build_exit_code=build["exit_code"] if build else None,
    )
