"""``snapshotter run``: the long-running agent.

    main thread: lock -> recover spool -> open workspaces -> READY -> wait for signals
    APScheduler (BackgroundScheduler): one interval job per workspace (the tick),
        a roll job, a status job
    SIGTERM/SIGINT: stop ticks, cancel builds, stop rows, roll, STOPPING, unlock
    SIGHUP: reload the config (workspaces added or removed, settings changed)

Jobs run with ``max_instances=1`` and ``coalesce=True`` and a misfire grace
of one interval: after a suspend or a clock jump a tick runs once, not once
per missed interval.  ``WATCHDOG=1`` goes out only when every open workspace
has completed a tick recently, so a hung tick gets the agent restarted.
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from snapshotter import control
from snapshotter.config import Config, load_config
from snapshotter.errors import RedgreenError, StorageError
from snapshotter.log_redaction import redact_strings
from snapshotter.notify import Notifier
from snapshotter.orphan_builds import end_orphans, mark_environment
from snapshotter.paths import ensure_private_dir
from snapshotter.record import Identity
from snapshotter.roll import roll, sweep_temporaries
from snapshotter.runner import WorkspaceRunner
from snapshotter.spool import Spool

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0
# after a failed roll (a full disk), how long before the next attempt
ROLL_RETRY_S = 60.0
# what a storage failure stops, as `status` and systemd show it
_STOPPED = {"append": "recording stopped", "roll": "rolling into Parquet stopped"}
GC_EVERY_HOURS = 6
HEARTBEAT_ROLL_S = 24 * 3600.0


@dataclass(frozen=True)
class AgentOptions:
    """Command-line overrides of the config file."""

    config_file: Path | None = None
    data_dir: Path | None = None
    interval: float | None = None
    workspaces: Sequence[Path] = ()
    build_command: str | None = None


def effective_config(options: AgentOptions) -> Config:
    from snapshotter.config import WorkspaceConfig

    config = load_config(options.config_file)
    agent = config.agent
    if options.interval is not None:
        agent = replace(agent, interval=options.interval)
    workspaces = config.workspaces
    if options.workspaces:
        workspaces = tuple(
            WorkspaceConfig(path=path.resolve(), build=options.build_command)
            for path in options.workspaces
        )
    return replace(
        config,
        agent=agent,
        workspaces=workspaces,
        data_dir=options.data_dir or config.data_dir,
    )


class Agent:
    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.config = effective_config(options)
        self.data_dir = self.config.data_dir
        self.identity = Identity.current()
        self.notifier = Notifier.from_environment()
        self.lock = control.AgentLock(self.data_dir)
        self.runners: dict[Path, WorkspaceRunner] = {}
        self.missing: dict[Path, str] = {}
        self.started_at = datetime.now(UTC)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._paused = False
        # what failed, "append" (recording) or "roll" (Parquet): cleared only by
        # the same kind of write succeeding, so a tick that wrote nothing, or
        # appends that still fit while Parquet does not, never report a recovery
        self._storage_errors: dict[str, str] = {}
        self._roll_retry_at = 0.0
        self._last_roll = time.monotonic()
        self.spool: Spool | None = None
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        logging.getLogger("apscheduler").setLevel(logging.WARNING)

    # life cycle -------------------------------------------------------------

    def run(self) -> None:
        ensure_private_dir(self.data_dir)
        self.lock.acquire()
        try:
            self._run_locked()
        finally:
            self.lock.release()

    def _run_locked(self) -> None:
        ended = end_orphans(self.data_dir)
        if ended:
            log.warning("ended %d process(es) of a build a killed agent left running", ended)
        mark_environment(self.data_dir)
        swept = sweep_temporaries(self.data_dir)
        if swept:
            log.info("removed %d temporary file(s) left by a killed roll", swept)
        self.spool = Spool.open(self.data_dir)
        try:
            self._roll("start")  # whatever a killed run left in the spool
            for workspace in self.config.workspaces:
                self._add(workspace)
            self._schedule_service_jobs()
            self._install_signals()
            self.scheduler.start()
            self.notifier.ready(self._summary())
            log.info(
                "watching %d workspace(s), every %g s, data in %s",
                len(self.runners),
                self.config.agent.interval,
                self.data_dir,
            )
            while not self._stop.wait(0.5):
                if self._reload.is_set():
                    self._reload.clear()
                    self._do_reload()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self.notifier.stopping("stopping: recording stop rows and rolling the spool")
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        for runner in list(self.runners.values()):
            runner.close(record_stop=not self._paused)
        self.runners.clear()
        self._roll("stop")
        self._write_status()
        if self.spool is not None:
            self.spool.close()
        self.notifier.close()

    def request_stop(self) -> None:
        self._stop.set()

    def _install_signals(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self._stop.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self._reload.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    # workspaces -------------------------------------------------------------

    def _add(self, workspace: Any) -> None:
        assert self.spool is not None
        runner = WorkspaceRunner(
            workspace,
            self.config.agent,
            self.config.capture,
            self.spool,
            self.identity,
            wake=functools.partial(self._wake, workspace.path),
        )
        try:
            runner.open()
        except RedgreenError as exc:
            self.missing[workspace.path] = str(exc)
            log.error("%s: %s; the other workspaces carry on", workspace.path, exc)
            return
        self.missing.pop(workspace.path, None)
        self.runners[workspace.path] = runner
        self.scheduler.add_job(
            self._tick,
            "interval",
            args=[workspace.path],
            seconds=self.config.agent.interval,
            id=self._job_id(workspace.path),
            next_run_time=datetime.now(UTC),
            misfire_grace_time=max(1, int(self.config.agent.interval)),
            replace_existing=True,
        )

    def _remove(self, path: Path) -> None:
        job = self.scheduler.get_job(self._job_id(path))
        if job is not None:
            job.remove()
        runner = self.runners.pop(path, None)
        if runner is not None:
            runner.close()

    @staticmethod
    def _job_id(path: Path) -> str:
        return f"tick:{path}"

    def _wake(self, path: Path, delay: float) -> None:
        """Run a workspace's tick ``delay`` seconds from now (a build is due or done)."""
        job = self.scheduler.get_job(self._job_id(path))
        when = datetime.now(UTC) + timedelta(seconds=delay)
        # only ever brings a tick forward: the regular interval still runs
        if job is not None and (job.next_run_time is None or when < job.next_run_time):
            job.modify(next_run_time=when)

    def _tick(self, path: Path) -> None:
        runner = self.runners.get(path)
        if runner is None:
            return
        paused = control.current_pause() is not None
        if paused != self._paused:
            self._paused = paused
            log.info("recording %s", "paused" if paused else "resumed")
        appends = runner.appends
        try:
            if paused:
                runner.pause()
            else:
                runner.tick()
            runner.stats.error = None
            if runner.appends != appends:
                self._storage_ok("append")
        except StorageError as exc:
            self._storage_failed("append", str(exc))
        except RedgreenError as exc:
            if runner.stats.error != str(exc):
                log.error("%s: %s", path, exc)
            runner.stats.error = str(exc)
        except Exception:  # a bug must not stop the other workspaces
            log.exception("%s: tick failed", path)
            runner.stats.error = "internal error (see the log)"
        self._maybe_roll()
        self._watchdog()

    # storage ----------------------------------------------------------------

    @property
    def _storage_error(self) -> str | None:
        return next(iter(self._storage_errors.values()), None)

    def _storage_failed(self, kind: str, message: str) -> None:
        if not self._storage_errors:
            if kind == "roll":
                log.error(
                    "rolling into Parquet stopped: %s; rows wait in the spool, retrying every %g s",
                    message,
                    ROLL_RETRY_S,
                )
            else:
                log.error("recording stopped: %s; the spool is intact, retrying", message)
            self.notifier.status(f"{_STOPPED[kind]}: {message}")
        self._storage_errors[kind] = message

    def _storage_ok(self, kind: str) -> None:
        if self._storage_errors.pop(kind, None) is not None and not self._storage_errors:
            log.warning("recording resumed")

    def _maybe_roll(self) -> None:
        agent = self.config.agent
        if time.monotonic() < self._roll_retry_at:
            return  # a roll just failed: not a Parquet attempt every tick on a full disk
        since = time.monotonic() - self._last_roll
        # heartbeats alone wait a day: a Parquet file costs ~7 KB of footer, and
        # 24 hourly files of a few heartbeats would be most of an idle day's bytes
        substantive = any(r.substantive_rows for r in self.runners.values())
        due = since >= agent.roll_interval and (substantive or since >= HEARTBEAT_ROLL_S)
        appended = sum(r.rows_since_roll for r in self.runners.values())
        if due or appended >= agent.roll_rows:
            self._roll("interval" if due else "size")

    def _roll(self, why: str) -> None:
        assert self.spool is not None
        try:
            result = roll(self.spool, self.data_dir)
        except StorageError as exc:
            self._storage_failed("roll", str(exc))
            self._roll_retry_at = time.monotonic() + ROLL_RETRY_S
            return
        self._storage_ok("roll")
        self._last_roll = time.monotonic()
        for runner in self.runners.values():
            runner.substantive_rows = False
            runner.rows_since_roll = 0
        if result.rows:
            log.info(
                "rolled %d row(s), %d blob(s) into Parquet (%s)", result.rows, result.blobs, why
            )

    # service plumbing -------------------------------------------------------

    def _schedule_service_jobs(self) -> None:
        self.scheduler.add_job(
            self._roll_job, "interval", seconds=60, id="roll", misfire_grace_time=60
        )
        self.scheduler.add_job(
            self._gc_job,
            "interval",
            hours=GC_EVERY_HOURS,
            id="gc",
            next_run_time=datetime.now(UTC) + timedelta(minutes=1),
            misfire_grace_time=3600,
        )
        self.scheduler.add_job(
            self._status_job,
            "interval",
            seconds=STATUS_EVERY_S,
            id="status",
            next_run_time=datetime.now(UTC),
            misfire_grace_time=int(STATUS_EVERY_S),
        )

    def _roll_job(self) -> None:
        self._maybe_roll()

    def _gc_job(self) -> None:
        """Retention: the oldest dates go first when over the age limit or the disk budget."""
        from snapshotter.retention import collect

        try:
            report = collect(self.data_dir, self.config.retention)
        except RedgreenError as exc:
            log.error("retention not applied: %s", exc)
            return
        if report.dates:
            log.info(
                "retention: deleted %d day(s) up to %s, freed %d bytes",
                len(report.dates),
                report.dates[-1],
                report.freed,
            )

    def _status_job(self) -> None:
        self._write_status()
        self.notifier.status(self._summary())
        if not self.runners:
            self.notifier.watchdog()

    def _watchdog(self) -> None:
        limit = 3 * self.config.agent.interval + 60
        now = time.monotonic()
        if all(now - r.last_tick_done < limit for r in self.runners.values()):
            self.notifier.watchdog()

    def _summary(self) -> str:
        for kind, message in self._storage_errors.items():
            return f"{_STOPPED[kind]}: {message}"
        if self._paused:
            return "paused"
        rows = sum(r.stats.rows_today for r in self.runners.values())
        missing = f", {len(self.missing)} missing" if self.missing else ""
        return f"watching {len(self.runners)} workspace(s){missing}; {rows} row(s) today"

    def _write_status(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        pause = control.current_pause()
        spool_bytes = sum(
            p.stat().st_size for p in (self.data_dir / "spool").glob("spool.sqlite3*") if p.exists()
        )
        payload: dict[str, Any] = {
            "pid": os.getpid(),
            "started_at": self.started_at.isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
            "data_dir": str(self.data_dir),
            "interval": self.config.agent.interval,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "rss_bytes": _rss_bytes(),
            "spool_bytes": spool_bytes,
            "pending_rows": self.spool.pending_rows() if self.spool else 0,
            "paused_until": (pause.until.isoformat() if pause.until else "resume")
            if pause
            else None,
            "storage_error": self._storage_error,
            "storage_stopped": next((_STOPPED[k] for k in self._storage_errors), None),
            "workspaces": [_stats_json(asdict(r.stats)) for r in self.runners.values()]
            + [{"workspace": str(p), "error": e} for p, e in self.missing.items()],
        }
        # errors and paths in it come from the working copy: redacted like the log
        payload = redact_strings(payload, keep=frozenset({"data_dir"}))
        try:
            control.write_status(control.state_dir() / control.STATUS_FILE, payload)
        except OSError as exc:
            log.debug("status not written: %s", exc)

    def _do_reload(self) -> None:
        self.notifier.reloading()
        try:
            fresh = effective_config(self.options)
        except RedgreenError as exc:
            log.error("config not reloaded: %s", exc)
            self.notifier.ready(self._summary())
            return
        changed_settings = (fresh.agent, fresh.capture) != (self.config.agent, self.config.capture)
        old = {w.path: w for w in self.config.workspaces}
        new = {w.path: w for w in fresh.workspaces}
        self.config = fresh
        for path in old.keys() - new.keys():
            self._remove(path)
            self.missing.pop(path, None)
        for path, workspace in new.items():
            if changed_settings or old.get(path) != workspace or path not in self.runners:
                self._remove(path)
                self._add(workspace)
        log.info("config reloaded: %d workspace(s)", len(self.runners))
        self.notifier.ready(self._summary())


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _stats_json(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in stats.items()}
