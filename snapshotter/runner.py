"""One watched workspace inside the agent: its monitor, its last state, its build.

A tick (every ``interval`` seconds, or sooner when a build is due or done):

1. drains the file monitor; nothing seen, no build due or done, no rescan or
   heartbeat due -> return at once: no VCS work at all;
2. captures the state: the k reported paths only, or everything on start,
   after an overflow, on a base change and as a rare safety net;
3. records a row when the state or the build result changed (a ``base`` row
   first when the base revision moved), or a ``heartbeat`` when nothing has
   been recorded for ``heartbeat`` seconds;
4. starts the build once a new state has been stable for ``debounce``
   seconds; a newer state cancels a running build, whose result is ``stale``.

Builds run in a thread of their own so a long build never delays ticks; the
tick that follows a build's end captures the state again and tags the result
``stale`` if the workspace moved while it ran (design rule 2).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from snapshotter.build import BuildLimits, BuildOutcome, run_build
from snapshotter.capture import CaptureSettings, State, base_change, capture
from snapshotter.config import AgentSettings, WorkspaceConfig
from snapshotter.errors import RedgreenError
from snapshotter.record import Identity, base_row, build_key, build_record, state_row
from snapshotter.spool import Spool, WorkspaceMemory
from snapshotter.vcs import VcsBackend, open_backend
from snapshotter.watch import WorkspaceWatcher

log = logging.getLogger(__name__)

# how many parent directories of new paths are checked against the ignore rules per tick
IGNORE_LOOKUPS_PER_TICK = 256
# Blobs of rows that could not be appended (a full disk) are kept for the next append,
# so the ticks while the disk stays full stay incremental.  Past this many bytes they
# are dropped and the next successful tick reads the whole working copy instead.
UNSAVED_BLOBS_MAX = 64 * 1024 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WorkspaceStats:
    """What ``snapshotter status`` shows for a workspace."""

    workspace: str
    vcs: str | None = None
    last_snapshot_at: datetime | None = None
    last_tick_at: datetime | None = None
    state_id: str | None = None
    files_changed: int = 0
    build_status: str | None = None  # of the current state, when known
    building: bool = False
    rows_today: int = 0
    bytes_today: int = 0
    day: str = ""
    error: str | None = None

    def count(self, rows: int, size: int, now: datetime) -> None:
        day = now.date().isoformat()
        if day != self.day:
            self.day, self.rows_today, self.bytes_today = day, 0, 0
        self.rows_today += rows
        self.bytes_today += size


@dataclass
class _Build:
    state: State
    cancel: threading.Event = field(default_factory=threading.Event)
    outcome: BuildOutcome | None = None
    thread: threading.Thread | None = None


class WorkspaceRunner:
    def __init__(
        self,
        workspace: WorkspaceConfig,
        settings: AgentSettings,
        capture_settings: CaptureSettings,
        spool: Spool,
        identity: Identity,
        *,
        wake: Callable[[float], None] = lambda delay: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = workspace
        self.settings = settings
        self.capture_settings = capture_settings
        self.spool = spool
        self.identity = identity
        self.wake = wake  # asks the scheduler for a tick in ``delay`` seconds
        self.clock = clock
        self.stats = WorkspaceStats(workspace=str(workspace.path))
        self.backend: VcsBackend | None = None
        self.watcher: WorkspaceWatcher | None = None
        self.state: State | None = None
        self._recorded: tuple[str, str | None] | None = None  # (state_id, build key)
        self._recorded_base: str | None = None
        self._last_row_at = 0.0
        self._last_full_at = 0.0
        self._full_needed = True
        # blobs no append has stored yet (it failed): offered again with the next rows
        self._unsaved_blobs: dict[str, bytes] = {}
        # ticks that read the whole working copy (start, overflow, base change, rescan)
        self.full_captures = 0
        self._latest_build: dict[str, Any] | None = None
        self._adopted_state: str | None = None  # built and recorded by `snapshotter build`
        self._build: _Build | None = None
        self._build_due: float | None = None
        self._ignored_dirs: set[bytes] = set()
        self._known_dirs: set[bytes] = set()
        self._started = False
        self._lock = threading.Lock()
        self.last_tick_done = clock()
        # a row other than a heartbeat is waiting in the spool (the agent rolls those hourly)
        self.substantive_rows = False
        # rows appended since the agent's last roll: the size trigger, counted
        # here so a tick never has to count the spool
        self.rows_since_roll = 0
        # appends that succeeded: the agent learns from it that storage works again
        self.appends = 0

    # life cycle -------------------------------------------------------------

    def open(self) -> None:
        """Open the repository and start the monitor; raises RedgreenError when it cannot."""
        backend = open_backend(self.config.path)
        watcher = WorkspaceWatcher(backend.root, backend.name)
        try:
            watcher.start()
        except OSError as exc:
            backend.close()
            raise RedgreenError(
                f"cannot watch {backend.root}: {exc.strerror or exc} "
                "(see `snapshotter doctor` about inotify limits)"
            ) from exc
        self.backend, self.watcher = backend, watcher
        self.stats.workspace, self.stats.vcs = str(backend.root), backend.name
        memory = self.spool.memory(str(backend.root))
        if memory is not None:
            self._recorded = (memory.state_id, memory.build_key)
            self._recorded_base = memory.base_rev

    def close(self, record_stop: bool = True) -> None:
        build = self._build
        if build is not None and build.thread is not None:
            build.cancel.set()
            build.thread.join(timeout=30)
        if record_stop and self.state is not None and self.backend is not None:
            try:
                self._append(
                    [state_row(self.state, self.identity, "stop", self._latest_build, _now())],
                    dict(self._unsaved_blobs),
                )
            except RedgreenError as exc:
                log.warning("%s: stop row not recorded: %s", self.stats.workspace, exc)
        if self.watcher is not None:
            self.watcher.stop()
        if self.backend is not None:
            self.backend.close()
        self.watcher = self.backend = None

    @property
    def is_open(self) -> bool:
        return self.backend is not None

    # the tick ---------------------------------------------------------------

    def pause(self) -> None:
        """Paused: cancel a running build and forget its result; rescan on resume."""
        with self._lock:
            build = self._build
            if build is not None:
                build.cancel.set()
            self._build = None
            self._build_due = None
            self._full_needed = True
            if self.watcher is not None:
                self.watcher.drain()
        self.last_tick_done = self.clock()

    def tick(self) -> None:
        with self._lock:
            self._tick()
        self.last_tick_done = self.clock()
        self.stats.last_tick_at = datetime.now(UTC)

    def _tick(self) -> None:
        backend, watcher = self.backend, self.watcher
        assert backend is not None and watcher is not None
        now = self.clock()
        pending = watcher.drain()
        finished = self._build if self._build and self._build.outcome else None
        full = (
            self._full_needed
            or self.state is None
            or pending.overflow
            or now - self._last_full_at >= self.settings.rescan
        )
        build_due = self._build_due is not None and now >= self._build_due
        heartbeat_due = now - self._last_row_at >= self.settings.heartbeat
        # unsaved blobs: the current state is not recorded yet, so no heartbeat stands for it
        quiet = not (pending.paths or pending.base_changed or finished or build_due)
        if not full and quiet and not self._unsaved_blobs:
            if heartbeat_due and self.state is not None:
                self._append(
                    [state_row(self.state, self.identity, "heartbeat", self._latest_build, _now())]
                )
            return

        previous = self.state
        if full:
            state = capture(backend, self.capture_settings)
            self._last_full_at, self._full_needed = now, False
            self.full_captures += 1
        else:
            assert previous is not None
            paths = self._drop_ignored(backend, pending.paths)
            state = capture(backend, self.capture_settings, since=previous, paths=paths)
            if state.base_rev != previous.base_rev:
                # the base moved: everything may differ, read it all
                state = capture(backend, self.capture_settings)
                self._last_full_at = now
                self.full_captures += 1
        self.state = state
        changed = previous is None or previous.state_id != state.state_id

        rows: list[dict[str, Any]] = []
        blobs: dict[str, bytes] = dict(self._unsaved_blobs)
        if finished is not None:
            rows += self._finish_build(finished, state)
        if self._recorded_base is not None and self._recorded_base != state.base_rev:
            moved = base_change(backend, self._recorded_base, state.base_rev, self.capture_settings)
            if moved is None:
                log.warning(
                    "%s: previous base %s is gone; states across it cannot be diffed",
                    state.workspace,
                    self._recorded_base[:12],
                )
            else:
                blobs.update(moved.blobs)
                ts = state.read_at - timedelta(microseconds=1)
                rows.insert(0, base_row(state, self.identity, moved, ts))
        key = (state.state_id, build_key(self._latest_build))
        if not self._started:
            rows.append(state_row(state, self.identity, "start", self._latest_build))
        elif key != self._recorded and not any(r["state_id"] == state.state_id for r in rows):
            reason = (
                "state" if not self._recorded or self._recorded[0] != state.state_id else "build"
            )
            rows.append(state_row(state, self.identity, reason, self._latest_build))
        elif not rows and heartbeat_due:
            rows.append(state_row(state, self.identity, "heartbeat", self._latest_build, _now()))
        # only entries read this tick bring blobs; the others' were recorded before
        old_entries = previous.changes.entries if previous is not None and not full else {}
        for raw, entry in state.changes.entries.items():
            if old_entries.get(raw) is not entry:
                blobs.update(entry.blobs)
        if rows:
            try:
                self._append(rows, blobs, state)
            except RedgreenError:
                self._keep_unsaved(blobs)
                raise
            self._unsaved_blobs = {}
        self._started = True
        self.stats.state_id, self.stats.files_changed = state.state_id, len(state.files)
        self.stats.build_status = self._status_of(state)
        self._schedule_build(state, changed, now)

    def _keep_unsaved(self, blobs: dict[str, bytes]) -> None:
        """Keep the blobs a failed append did not store, for the next one (bounded)."""
        if sum(len(content) for content in blobs.values()) <= UNSAVED_BLOBS_MAX:
            self._unsaved_blobs = blobs
        else:
            self._unsaved_blobs = {}
            self._full_needed = True  # too much to hold: the next tick reads every blob again

    # rows -------------------------------------------------------------------

    def _append(
        self,
        rows: list[dict[str, Any]],
        blobs: dict[str, bytes] | None = None,
        state: State | None = None,
    ) -> None:
        state = state or self.state
        assert state is not None
        # every blob goes to append, which skips stored ones in its own transaction:
        # checking first would race a gc that forgets blobs in between
        needed = dict(blobs or {})
        last = rows[-1]
        memory = WorkspaceMemory(
            workspace=state.workspace,
            base_rev=state.base_rev,
            state_id=last["state_id"] if last["reason"] != "base" else state.state_id,
            build_key=build_key(last["build"]),
            ts=last["ts"],
        )
        self.spool.append(rows, needed, [memory])
        self.appends += 1
        self.rows_since_roll += len(rows)
        if any(r["reason"] != "heartbeat" for r in rows):
            self.substantive_rows = True
        self._recorded = (memory.state_id, memory.build_key)
        self._recorded_base = state.base_rev
        self._last_row_at = self.clock()
        now = datetime.now(UTC)
        size = sum(len(r["diff"] or "") for r in rows)
        self.stats.count(len(rows), size, now)
        self.stats.last_snapshot_at = now

    def _status_of(self, state: State) -> str | None:
        build = self._latest_build
        if self._build is not None and self._build.outcome is None:
            return "building"
        if build is not None and build["state_id"] == state.state_id:
            return str(build["status"])
        return None

    # builds -----------------------------------------------------------------

    def _schedule_build(self, state: State, changed: bool, now: float) -> None:
        command = self.config.build
        if not command:
            return
        built = state.state_id == self._adopted_state or (
            self._latest_build is not None and self._latest_build["state_id"] == state.state_id
        )
        running = self._build
        if running is not None and running.outcome is None:
            if running.state.state_id != state.state_id:
                running.cancel.set()  # superseded: its result will be stale
            return
        if built:
            self._build_due = None
            return
        if changed or self._build_due is None:
            # wait until the state has been stable for the debounce time
            self._build_due = now + self.settings.debounce
            self.wake(self.settings.debounce)
            return
        if now < self._build_due:
            return
        if self._adopt_recorded_build(state):
            return
        self._build_due = None
        self._start_build(state, command)

    def _adopt_recorded_build(self, state: State) -> bool:
        """True when ``snapshotter build`` already recorded a result for this very state."""
        memory = self.spool.memory(state.workspace)
        if memory is None or memory.state_id != state.state_id or memory.build_key is None:
            return False
        if self._recorded == (memory.state_id, memory.build_key):
            return False  # our own row
        self._recorded = (memory.state_id, memory.build_key)
        self._adopted_state = state.state_id
        self._last_row_at = self.clock()
        return True

    def _start_build(self, state: State, command: str) -> None:
        build = _Build(state=state)
        limits = BuildLimits(timeout_s=self.config.build_timeout)
        root = Path(state.workspace)

        def run() -> None:
            build.outcome = run_build(
                command, root, limits, nice=self.settings.build_nice, cancel=build.cancel
            )
            self.wake(0)  # record it now, not at the next interval

        build.thread = threading.Thread(target=run, name=f"build {root.name}", daemon=True)
        self._build = build
        self.stats.building = True
        build.thread.start()

    def _finish_build(self, build: _Build, state: State) -> list[dict[str, Any]]:
        self._build = None
        self.stats.building = False
        outcome = build.outcome
        assert outcome is not None
        if build.thread is not None:
            build.thread.join()
        status = outcome.status
        if status in ("green", "red") and state.state_id != build.state.state_id:
            status = "stale"
        self._latest_build = build_record(outcome, build.state, status)
        if state.state_id == build.state.state_id:
            return [state_row(state, self.identity, "build", self._latest_build)]
        return []  # the new state's row, written by the tick, carries the stale result

    def _drop_ignored(self, backend: VcsBackend, paths: set[bytes]) -> set[bytes]:
        """Paths outside ignored directories; teaches the monitor new ignored directories."""
        unknown: set[bytes] = set()
        for path in paths:
            parts = path.split(b"/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = b"/".join(parts[:depth])
                if directory not in self._known_dirs:
                    unknown.add(directory)
        if unknown:
            asked = sorted(unknown)[:IGNORE_LOOKUPS_PER_TICK]
            newly = backend.ignored(asked)
            self._known_dirs.update(asked)
            if newly:
                self._ignored_dirs.update(newly)
                assert self.watcher is not None
                self.watcher.set_ignored_dirs(frozenset(self._ignored_dirs))
        if not self._ignored_dirs:
            return paths
        prefixes = tuple(d + b"/" for d in self._ignored_dirs)
        return {p for p in paths if not p.startswith(prefixes)}
