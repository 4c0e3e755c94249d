"""Benchmark the agent (``snapshotter run``) against the naive approach, on a 100,000-file monorepo.

Generates (or reuses, with ``--repos DIR``) a repository of 1,000 directories
x 100 small files, once as Mercurial and once as Git, committed (an import
commit and a small commit on top, Git packed) and clean (see
``bench/monorepo.py``; generating takes about 3 minutes, Mercurial's commit of
100,000 new files and its first status being most of it).  Then measures the
four targets of issue 3, each next to a naive baseline measured in the same
run:

1. **Idle tick**: a real :class:`~snapshotter.runner.WorkspaceRunner` per
   repository (real watchdog observer, real spool in a temporary data
   directory), first tick done (a full scan), then ``--idle-ticks`` ticks with
   nothing changed.  Figure: CPU per tick (this process's CPU, all threads,
   plus that of waited-for child processes such as ``git``; the tick thread's
   own ``thread_time`` is printed too).  Baseline: the naive agent that
   recomputes the whole state every tick, ``capture(backend, settings)``
   without ``since``/``paths``, in the same process.  Target: under 2 ms.
2. **Tick after k = 6 changed paths** (5 files modified, 1 added, written by
   the benchmark in directories it has not touched before, once the watcher
   has seen the events): wall time of ``runner.tick()``, i.e. the incremental
   capture plus a row durably appended to the spool.  Baselines: ``hg diff``
   and ``git diff HEAD`` as processes (``--diff-reps`` runs each) on the same
   repositories in the same state.  ``--rounds`` rounds, each editing other
   files and then reverting them; medians.  Targets: 25x less than ``hg
   diff``, 5x less than ``git diff HEAD``.
3. **Memory and idle CPU of the real agent**: ``snapshotter run --workspace
   HG --workspace GIT --interval 20`` with temporary XDG directories; once
   ``snapshotter status --json`` shows both workspaces ticked, VmRSS from
   ``/proc/PID/status`` (target under 150 MB) and CPU (utime + stime of the
   agent and its waited-for children, ``/proc/PID/stat``) over an idle window
   of ``--idle-seconds`` (default 60; the issue says 600), target under 0.5 %
   of one core.  RSS and CPU are sampled every 10 s through the window, so
   that growth (a leak) or a periodic job shows.  The safety-net full rescan
   runs once every 10 minutes and a window holds one or none, so the window's
   CPU plus one full capture of both repositories (from measurement 1) per 10
   minutes is printed beside it (a conservative steady state: the agent's
   one-off start-up work, such as its first retention run a minute after
   start, is in a short window too).  Baseline: a naive agent's full capture
   of both repositories every 20 s, as % of one core.
4. **Storage for a day of idle 20 s ticks**: a WorkspaceRunner on a small
   clean Git repository with a fake clock (``clock=``), 4,320 ticks 20 s
   apart, the real spool, rolled as the agent does (hourly when anything but
   heartbeats is pending, else once a day); bytes of the files under
   ``DATA_DIR/snapshots`` and ``DATA_DIR/blobs`` (target under 100 KB =
   100,000 bytes).  Baseline: the same day recorded by a naive agent that
   writes a row every tick (``heartbeat`` set to the interval), rolled
   hourly.  A second day with three uncommitted
   edits in the workspace is printed for information.

Ends with a table: figure, measured, baseline, ratio, target, PASS/MISS.
Run it with::

    uv run python bench/bench_agent.py [--repos DIR] [--rounds 5] [--diff-reps 2]
        [--idle-ticks 200] [--idle-seconds 60] [--skip-agent-process]

The default run (repositories generated in a temporary directory, removed
at the end) takes about 6 minutes on a 2-core machine; ``--repos DIR`` keeps
the repositories between runs, which saves about 3 of them.  Wall times on a
shared virtual machine are noisy: the k=6 figures are medians, and the
per-round values are printed so that an outlier shows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import monorepo
import pyarrow.parquet as pq

from snapshotter.capture import CaptureSettings, capture
from snapshotter.config import AgentSettings, WorkspaceConfig
from snapshotter.record import Identity
from snapshotter.roll import roll
from snapshotter.runner import WorkspaceRunner
from snapshotter.spool import Spool

SNAPSHOTTER = str(Path(sys.executable).parent / "snapshotter")
INTERVAL_S = 20.0
DAY_TICKS = 24 * 3600 // int(INTERVAL_S)  # 4,320
ROLL_EVERY = 3600 // int(INTERVAL_S)  # hourly: 180 ticks
K_MODIFIED = 5
K_ADDED = 1

TARGET_IDLE_CPU_MS = 2.0
TARGET_HG_RATIO = 25.0
TARGET_GIT_RATIO = 5.0
TARGET_RSS_MB = 150.0
TARGET_IDLE_PCT = 0.5
TARGET_DAY_BYTES = 100_000


# -- small helpers -------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU of this process (every thread) and of its waited-for children (git, hg)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass
class Sample:
    wall: float
    cpu: float
    thread: float


@contextmanager
def measured(into: list[Sample]) -> Iterator[None]:
    wall, cpu, thread = time.perf_counter(), cpu_seconds(), time.thread_time()
    yield
    into.append(
        Sample(
            time.perf_counter() - wall,
            cpu_seconds() - cpu,
            time.thread_time() - thread,
        )
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms"


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


@dataclass
class Row:
    figure: str
    measured: str
    baseline: str
    ratio: str
    target: str
    ok: bool | None  # None: not measured


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: Any) -> None:
        self.rows.append(Row(*args))

    def print_table(self) -> None:
        header = ("figure", "measured", "baseline (naive)", "ratio", "target", "result")
        cells = [
            (
                r.figure,
                r.measured,
                r.baseline,
                r.ratio,
                r.target,
                "-" if r.ok is None else ("PASS" if r.ok else "MISS"),
            )
            for r in self.rows
        ]
        widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
        line = "  ".join("-" * w for w in widths)
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        print(line)
        for row in cells:
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        for note in self.notes:
            print(f"note: {note}")


def isolated_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **monorepo.ISOLATED_ENV, **(extra or {})}
    for name in ("REDGREEN_DATA_DIR", "REDGREEN_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        env.pop(name, None)
    return env


# -- the repositories ----------------------------------------------------------


def prepare_repos(base: Path) -> dict[str, Path]:
    section(
        f"repositories: {monorepo.DIRS:,} directories x {monorepo.FILES} files "
        f"= {monorepo.DIRS * monorepo.FILES:,} files, in {base}"
    )
    roots = {"hg": base / "hg", "git": base / "git"}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {vcs: pool.submit(monorepo.ensure_repo, vcs, root) for vcs, root in roots.items()}
        for vcs, future in futures.items():
            took = future.result()
            what = "reused (cleaned)" if took is None else f"generated in {took:.0f} s"
            print(f"{vcs:3}: {what}")
    return roots


def open_runner(root: Path, spool: Spool, settings: AgentSettings | None = None) -> WorkspaceRunner:
    runner = WorkspaceRunner(
        WorkspaceConfig(path=root),
        settings or AgentSettings(),
        CaptureSettings(),
        spool,
        Identity.current(),
    )
    runner.open()
    return runner


def wait_seen(runner: WorkspaceRunner, rels: list[bytes], timeout: float = 3.0) -> float:
    """Wait until the runner's watcher has reported every path; returns the seconds waited."""
    start = time.perf_counter()
    watcher = runner.watcher
    if watcher is None or not hasattr(watcher, "_pending"):
        time.sleep(0.3)
        return time.perf_counter() - start
    deadline = start + timeout
    while time.perf_counter() < deadline:
        pending = watcher._pending
        if pending.overflow or all(rel in pending.paths for rel in rels):
            break
        time.sleep(0.002)
    else:
        print(f"  warning: the watcher did not report {rels!r} within {timeout} s")
    time.sleep(0.05)  # the close-write events that follow
    return time.perf_counter() - start


# -- 1. idle tick --------------------------------------------------------------


@dataclass
class IdleResult:
    first: Sample
    idle: list[Sample]
    naive: list[Sample]
    rows_during_idle: int


def measure_idle(
    vcs: str, runner: WorkspaceRunner, spool: Spool, ticks: int, naive_reps: int
) -> IdleResult:
    first: list[Sample] = []
    with measured(first):
        runner.tick()  # start: the full scan
    assert runner.state is not None
    # whatever the first tick stirred up (a dirstate fix-up, say) is absorbed here
    time.sleep(0.5)
    runner.tick()
    time.sleep(0.2)
    rows_before = spool.pending_rows()
    idle: list[Sample] = []
    for _ in range(ticks):
        with measured(idle):
            runner.tick()
        time.sleep(0.001)
    rows_during = spool.pending_rows() - rows_before
    assert runner.backend is not None
    naive: list[Sample] = []
    for _ in range(naive_reps):
        with measured(naive):
            state = capture(runner.backend, runner.capture_settings)
        assert state.state_id == runner.state.state_id
    print(
        f"{vcs:3}: first tick (full scan) {ms(first[0].wall)} wall, {ms(first[0].cpu)} CPU; "
        f"{ticks} idle ticks: CPU median {ms(median([s.cpu for s in idle]))}, "
        f"max {ms(max(s.cpu for s in idle))} (tick thread median "
        f"{ms(median([s.thread for s in idle]))}), wall median "
        f"{ms(median([s.wall for s in idle]))}; rows recorded: {rows_during}"
    )
    print(
        f"     naive full capture x{naive_reps}: CPU median {ms(median([s.cpu for s in naive]))}"
        f" (in process {ms(median([s.thread for s in naive]))}),"
        f" wall median {ms(median([s.wall for s in naive]))}"
    )
    return IdleResult(first[0], idle, naive, rows_during)


# -- 2. tick after k changed paths ---------------------------------------------


def round_files(r: int) -> tuple[list[tuple[int, int]], tuple[int, str]]:
    """The files round ``r`` modifies and the one it adds, none seen by earlier rounds."""
    modified = []
    for i in range(K_MODIFIED):
        d = (37 + r * 131 + i * 197) % monorepo.DIRS
        f = (r * 13 + i * 7) % monorepo.FILES
        modified.append((d, f))
    added_dir = (500 + r * 131) % monorepo.DIRS
    return modified, (added_dir, f"pkg{added_dir:03d}/new_in_round_{r}.py")


def edit(root: Path, r: int) -> list[bytes]:
    modified, (d, added) = round_files(r)
    for md, mf in modified:
        (root / monorepo.rel_path(md, mf)).write_bytes(monorepo.content(md, mf, version=r + 1))
    (root / added).write_bytes(monorepo.content(d, 0, version=1000 + r))
    return [monorepo.rel_path(md, mf).encode() for md, mf in modified] + [added.encode()]


def revert(root: Path, r: int) -> list[bytes]:
    modified, (_, added) = round_files(r)
    for md, mf in modified:
        (root / monorepo.rel_path(md, mf)).write_bytes(monorepo.base_content(md, mf))
    (root / added).unlink()
    return [monorepo.rel_path(md, mf).encode() for md, mf in modified] + [added.encode()]


def timed_process(cmd: list[str], cwd: Path) -> tuple[float, bytes]:
    env = isolated_env()
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{cmd} failed: {done.stderr.decode(errors='replace')}")
    return wall, done.stdout


@contextmanager
def child_processes() -> Iterator[list[tuple[str, float]]]:
    """Every ``subprocess.run`` made inside the block: (command, seconds)."""
    calls: list[tuple[str, float]] = []
    original = subprocess.run

    def counting(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            cmd = [os.fsdecode(c) for c in (args[0] if args else kwargs["args"])]
            words = [c for c, before in zip(cmd, ["", *cmd], strict=False) if before != "-c"]
            name = next((w for w in words[1:] if not w.startswith("-")), "")
            calls.append((f"{Path(cmd[0]).name} {name}", time.perf_counter() - start))

    subprocess.run = counting
    try:
        yield calls
    finally:
        subprocess.run = original


def where_time_goes(runner: WorkspaceRunner, r: int) -> str:
    """One more k=6 round, not counted: the child processes its tick ran."""
    root = Path(runner.config.path)
    wait_seen(runner, edit(root, r))
    start = time.perf_counter()
    with child_processes() as calls:
        runner.tick()
    wall = time.perf_counter() - start
    wait_seen(runner, revert(root, r))
    runner.tick()
    spent = sum(s for _, s in calls)
    return (
        f"     where a k=6 tick's {ms(wall)} go: {len(calls)} child process(es),"
        f" {ms(spent)} in them"
        + (": " + ", ".join(f"{name} {s * 1000:.1f}" for name, s in calls) + " ms" if calls else "")
    )


@dataclass
class ChangeResult:
    ticks: list[Sample]
    diffs: list[float]
    reverts: list[Sample]
    full_rescans: int


def measure_changes(
    vcs: str, runner: WorkspaceRunner, rounds: int, diff_cmd: list[str], diff_reps: int
) -> ChangeResult:
    root = Path(runner.config.path)
    ticks: list[Sample] = []
    reverts: list[Sample] = []
    diffs: list[float] = []
    full_before = getattr(runner, "_last_full_at", None)
    timed_process(diff_cmd, root)  # one warm-up run of the baseline
    for r in range(rounds):
        rels = edit(root, r)
        wait_seen(runner, rels)
        rows_before = runner.stats.rows_today
        with measured(ticks):
            runner.tick()
        state = runner.state
        assert state is not None
        statuses = sorted(f.status for f in state.files)
        if len(state.files) != K_MODIFIED + K_ADDED or runner.stats.rows_today != rows_before + 1:
            raise AssertionError(f"{vcs} round {r}: state {statuses}, row not recorded as expected")
        for _ in range(diff_reps):
            wall, out = timed_process(diff_cmd, root)
            if out.count(b"\ndiff ") + out.startswith(b"diff ") < K_MODIFIED:
                raise AssertionError(f"{' '.join(diff_cmd)} did not show the {K_MODIFIED} edits")
            diffs.append(wall)
        rels = revert(root, r)
        wait_seen(runner, rels)
        with measured(reverts):
            runner.tick()
        if runner.state is None or runner.state.files:
            raise AssertionError(f"{vcs} round {r}: revert not seen as a clean state")
    full_after = getattr(runner, "_last_full_at", None)
    rescans = 0 if full_before == full_after else 1
    tick_med = median([s.wall for s in ticks])
    diff_med = median(diffs)
    print(
        f"{vcs:3}: k=6 tick wall median {ms(tick_med)} (all: "
        + ", ".join(f"{s.wall * 1000:.1f}" for s in ticks)
        + f" ms), CPU incl. child processes median {ms(median([s.cpu for s in ticks]))};"
        f" files recorded {statuses}"
    )
    print(
        f"     {' '.join(Path(diff_cmd[0]).name if i == 0 else c for i, c in enumerate(diff_cmd))}"
        f" wall median {ms(diff_med)} (all: " + ", ".join(f"{d * 1000:.0f}" for d in diffs) + " ms)"
        f"; revert tick median {ms(median([s.wall for s in reverts]))}"
        + ("; WARNING: a full rescan happened during the rounds" if rescans else "")
    )
    print(where_time_goes(runner, rounds))
    return ChangeResult(ticks, diffs, reverts, rescans)


# -- 3. the real agent process -------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_memory_mb(pid: int) -> dict[str, float]:
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return found


@dataclass
class AgentResult:
    startup_s: float
    rss_mb: float
    hwm_mb: float
    idle_cpu_s: float
    window_s: float
    exit_code: int | None


def measure_agent(roots: dict[str, Path], tmp: Path, idle_seconds: float) -> AgentResult:
    home = tmp / "agent"
    data_dir = home / "data"
    env = isolated_env(
        {
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "share"),
        }
    )
    home.mkdir(parents=True)
    log_path = home / "agent.log"
    cmd = [
        SNAPSHOTTER,
        "run",
        "--workspace",
        str(roots["hg"]),
        "--workspace",
        str(roots["git"]),
        "--data-dir",
        str(data_dir),
        "--interval",
        f"{INTERVAL_S:g}",
    ]
    start = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wanted = {str(p.resolve()) for p in roots.values()}
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the agent exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            if time.monotonic() - start > 300:
                raise RuntimeError(f"no first ticks after 300 s:\n{log_path.read_text()[-3000:]}")
            done = subprocess.run(
                [SNAPSHOTTER, "status", "--json"], env=env, capture_output=True, check=False
            )
            report = json.loads(done.stdout or b"{}") if done.returncode == 0 else {}
            ticked = {
                w.get("workspace")
                for w in report.get("workspaces", [])
                if w.get("last_tick_at") and not w.get("error")
            }
            if report.get("running") and report.get("pid") == proc.pid and wanted <= ticked:
                break
            time.sleep(1.0)
        startup = time.monotonic() - start
        time.sleep(2.0)  # let the status job and the first roll check pass
        memory = proc_memory_mb(proc.pid)
        cpu0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
        print(
            f"agent pid {proc.pid}: both workspaces ticked {startup:.1f} s after start; "
            f"RSS {memory['VmRSS']:.1f} MiB; idle window of {idle_seconds:g} s ...",
            flush=True,
        )
        # sampled through the window: growth would show a leak, a spike a periodic job
        rss, cpu = [memory["VmRSS"]], [cpu0]
        while (left := t0 + idle_seconds - time.monotonic()) > 0:
            time.sleep(min(left, 10.0))
            rss.append(proc_memory_mb(proc.pid)["VmRSS"])
            cpu.append(proc_cpu_seconds(proc.pid))
        cpu1, t1 = cpu[-1], time.monotonic()
        after = proc_memory_mb(proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    result = AgentResult(
        startup_s=startup,
        rss_mb=max(rss),
        hwm_mb=after.get("VmHWM", float("nan")),
        idle_cpu_s=cpu1 - cpu0,
        window_s=t1 - t0,
        exit_code=proc.returncode,
    )
    print(
        f"agent: RSS {memory['VmRSS']:.1f} MiB after the first ticks, {after['VmRSS']:.1f} MiB"
        f" after the window, max {max(rss):.1f} MiB (MiB every 10 s: "
        + " ".join(f"{m:.0f}" for m in rss)
        + f"; peak VmHWM {result.hwm_mb:.1f} MiB)"
    )
    print(
        f"agent: CPU over {result.window_s:.1f} s idle: {result.idle_cpu_s:.2f} s ="
        f" {100 * result.idle_cpu_s / result.window_s:.3f} % of one core (ms per 10 s: "
        + " ".join(f"{(b - a) * 1000:.0f}" for a, b in itertools.pairwise(cpu))
        + f"; /proc resolution {1000 / os.sysconf('SC_CLK_TCK'):.0f} ms); the window may hold"
        " the agent's one-off retention run a minute after start; exit code"
        f" {proc.returncode}"
    )
    return result


# -- 4. storage for a day ------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class DayResult:
    ticks: int
    rows: int
    snapshot_files: int
    blob_files: int
    bytes: int
    allocated: int
    snapshot_bytes: int
    blob_bytes: int
    spool_bytes: int
    seconds: float


def tree_bytes(root: Path) -> tuple[int, int, int]:
    """(files, bytes, allocated bytes) of the Parquet files under ``root``."""
    files = size = allocated = 0
    for path in root.rglob("*.parquet"):
        st = path.stat()
        files += 1
        size += st.st_size
        allocated += st.st_blocks * 512
    return files, size, allocated


def simulate_day(
    repo: Path, data_dir: Path, heartbeat: float, *, agent_policy: bool = True
) -> DayResult:
    """One day of ticks. ``agent_policy``: roll as the agent does (hourly only when
    something other than heartbeats is pending, else once a day); otherwise every hour."""
    start = time.perf_counter()
    clock = FakeClock()
    settings = AgentSettings(interval=INTERVAL_S, heartbeat=heartbeat)
    spool = Spool.open(data_dir)
    runner = WorkspaceRunner(
        WorkspaceConfig(path=repo),
        settings,
        CaptureSettings(),
        spool,
        Identity.current(),
        clock=clock,
    )
    runner.open()
    try:
        for i in range(DAY_TICKS):
            runner.tick()
            clock.now += INTERVAL_S
            hour_done = (i + 1) % ROLL_EVERY == 0
            day_done = i + 1 == DAY_TICKS
            if hour_done and (not agent_policy or runner.substantive_rows or day_done):
                roll(spool, data_dir)
                runner.substantive_rows = False
    finally:
        runner.close(record_stop=False)  # the day goes on: no stop row
        spool.close()
    snap_files, snap_bytes, snap_alloc = tree_bytes(data_dir / "snapshots")
    blob_files, blob_bytes, blob_alloc = tree_bytes(data_dir / "blobs")
    files = (data_dir / "snapshots").rglob("*.parquet")
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in files)
    spool_bytes = sum(p.stat().st_size for p in (data_dir / "spool").glob("spool.sqlite3*"))
    return DayResult(
        ticks=DAY_TICKS,
        rows=rows,
        snapshot_files=snap_files,
        blob_files=blob_files,
        bytes=snap_bytes + blob_bytes,
        allocated=snap_alloc + blob_alloc,
        snapshot_bytes=snap_bytes,
        blob_bytes=blob_bytes,
        spool_bytes=spool_bytes,
        seconds=time.perf_counter() - start,
    )


def describe_day(label: str, day: DayResult) -> None:
    per_file = day.snapshot_bytes / day.snapshot_files if day.snapshot_files else 0
    print(
        f"{label}: {day.rows} rows in {day.snapshot_files} snapshot file(s)"
        f" ({day.snapshot_bytes:,} B, {per_file:,.0f} B per file) +"
        f" {day.blob_files} blob file(s) ({day.blob_bytes:,} B) = {day.bytes:,} B"
        f" ({day.allocated:,} B allocated in blocks); spool left: {day.spool_bytes:,} B;"
        f" simulated in {day.seconds:.1f} s"
    )


def parquet_overhead(data_dir: Path) -> tuple[int, int]:
    """(bytes of footers, bytes of column data) over the snapshot files of a dataset."""
    footer = data = 0
    for path in (data_dir / "snapshots").rglob("*.parquet"):
        meta = pq.ParquetFile(path).metadata
        body = sum(
            meta.row_group(g).column(c).total_compressed_size
            for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)
        )
        data += body
        footer += path.stat().st_size - body
    return footer, data


def measure_storage(tmp: Path) -> tuple[DayResult, DayResult, DayResult, tuple[int, int]]:
    repo = tmp / "small-git"
    monorepo.make_repo("git", repo, dirs=10, files=10)
    agent = simulate_day(repo, tmp / "day-agent", AgentSettings().heartbeat)
    describe_day("agent, clean workspace", agent)
    overhead = parquet_overhead(tmp / "day-agent")
    print(
        f"     of the snapshot files: {overhead[0]:,} B Parquet footers and headers,"
        f" {overhead[1]:,} B column data"
    )
    naive = simulate_day(repo, tmp / "day-naive", INTERVAL_S, agent_policy=False)
    describe_day("naive (a row every tick)", naive)
    for d, f in ((0, 1), (3, 4), (7, 9)):
        (repo / monorepo.rel_path(d, f)).write_bytes(monorepo.content(d, f, version=1))
    dirty = simulate_day(repo, tmp / "day-dirty", AgentSettings().heartbeat)
    describe_day("agent, 3 uncommitted edits (information)", dirty)
    return agent, naive, dirty, overhead


# -- main ----------------------------------------------------------------------


def versions() -> str:
    def first_line(cmd: list[str]) -> str:
        done = subprocess.run(cmd, capture_output=True, env=isolated_env(), check=False)
        return done.stdout.decode(errors="replace").splitlines()[0] if done.stdout else "?"

    return (
        f"Python {platform.python_version()}, {first_line([*monorepo.HG_CMD, 'version'])},"
        f" {first_line(['git', '--version'])}, {os.cpu_count()} CPU(s)"
    )


def ratio(baseline: float, measured: float) -> str:
    if measured <= 0:
        return "inf"
    value = baseline / measured
    return f"{value:,.0f}x" if value >= 100 else f"{value:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--repos", type=Path, help="keep the generated repositories here and reuse them"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of k=6 edits per repository")
    parser.add_argument(
        "--diff-reps", type=int, default=2, help="runs of hg diff / git diff HEAD per round"
    )
    parser.add_argument("--idle-ticks", type=int, default=200, help="idle ticks per repository")
    parser.add_argument("--naive-reps", type=int, default=3, help="naive full captures per repo")
    parser.add_argument(
        "--idle-seconds", type=float, default=60.0, help="idle window of the agent process"
    )
    parser.add_argument(
        "--skip-agent-process", action="store_true", help="skip measurement 3 (the real agent)"
    )
    args = parser.parse_args()

    # the user's Mercurial and Git configuration stay out of every measurement,
    # in this process (the backends) as in the processes it starts
    os.environ.update(monorepo.ISOLATED_ENV)
    began = time.perf_counter()
    print(versions())
    tmp = Path(tempfile.mkdtemp(prefix="redgreen-bench-agent-"))
    report = Report()
    try:
        repos_dir = args.repos.resolve() if args.repos else tmp / "repos"
        repos_dir.mkdir(parents=True, exist_ok=True)
        roots = prepare_repos(repos_dir)
        full_cpu = run_in_process(roots, tmp, args, report)
        if args.skip_agent_process:
            report.add("agent RSS, both repos", "skipped", "-", "-", "< 150 MB", None)
            report.add("agent idle CPU", "skipped", "-", "-", "< 0.5 % of a core", None)
        else:
            section("3. the real agent process: memory and idle CPU")
            run_agent_process(roots, tmp, args, report, full_cpu)
        section(f"4. storage for a day of idle {INTERVAL_S:g} s ticks ({DAY_TICKS:,} ticks)")
        agent, naive, _dirty, overhead = measure_storage(tmp)
        ok = agent.bytes < TARGET_DAY_BYTES
        report.add(
            "storage, idle day (snapshots+blobs)",
            f"{agent.bytes / 1000:.1f} KB ({agent.rows} rows, {agent.snapshot_files} files)",
            f"{naive.bytes / 1000:.1f} KB ({naive.rows} rows)",
            ratio(naive.bytes, agent.bytes),
            "< 100 KB",
            ok,
        )
        if not ok:
            files = max(agent.snapshot_files, 1)
            report.notes.append(
                f"storage misses the target by {(agent.bytes - TARGET_DAY_BYTES) / 1000:.1f} KB"
                f" ({agent.bytes / TARGET_DAY_BYTES:.2f}x the target). Why: each hourly roll"
                f" writes its own snapshot file, {agent.snapshot_files} files of"
                f" ~{agent.rows / files:.0f} rows; {overhead[0]:,} of their"
                f" {agent.snapshot_bytes:,} B (~{overhead[0] / files / 1000:.1f} KB a file) are"
                f" Parquet footer and page headers (the nested schema's metadata, repeated in"
                f" every file), so {agent.snapshot_files} files exceed 100 KB whatever their rows;"
                f" the {naive.rows:,} rows of the naive day cost only"
                f" {(naive.snapshot_bytes - agent.snapshot_bytes) / 1000:.1f} KB more."
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    section(f"summary ({time.perf_counter() - began:.0f} s)")
    report.print_table()


def run_in_process(
    roots: dict[str, Path], tmp: Path, args: argparse.Namespace, report: Report
) -> float:
    """Measurements 1 and 2; returns the CPU seconds of a full capture of every repository."""
    spool = Spool.open(tmp / "runner-data")
    runners = {vcs: open_runner(root, spool) for vcs, root in roots.items()}
    try:
        section("1. idle tick: CPU per tick, against a full capture every tick")
        idle = {
            vcs: measure_idle(vcs, runner, spool, args.idle_ticks, args.naive_reps)
            for vcs, runner in runners.items()
        }
        for vcs, result in idle.items():
            cpu = median([s.cpu for s in result.idle])
            naive = median([s.cpu for s in result.naive])
            report.add(
                f"idle tick CPU, {vcs}",
                f"{cpu * 1000:.3f} ms",
                f"{naive * 1000:.0f} ms (full capture)",
                ratio(naive, cpu),
                "< 2 ms",
                cpu * 1000 < TARGET_IDLE_CPU_MS and result.rows_during_idle == 0,
            )
        section("2. tick after k = 6 changed paths (5 modified + 1 added): wall time")
        diff_cmds = {"hg": [*monorepo.HG_CMD, "diff"], "git": ["git", "diff", "HEAD"]}
        targets = {"hg": TARGET_HG_RATIO, "git": TARGET_GIT_RATIO}
        for vcs, runner in runners.items():
            changes = measure_changes(vcs, runner, args.rounds, diff_cmds[vcs], args.diff_reps)
            tick = median([s.wall for s in changes.ticks])
            diff = median(changes.diffs)
            name = "hg diff" if vcs == "hg" else "git diff HEAD"
            report.add(
                f"k=6 tick wall, {vcs}",
                f"{tick * 1000:.1f} ms",
                f"{diff * 1000:.0f} ms ({name})",
                ratio(diff, tick),
                f">= {targets[vcs]:g}x less",
                diff / tick >= targets[vcs],
            )
        # a naive agent's full capture of both repositories, every interval
        return sum(median([s.cpu for s in r.naive]) for r in idle.values())
    finally:
        for runner in runners.values():
            runner.close(record_stop=False)
        spool.close()


def run_agent_process(
    roots: dict[str, Path], tmp: Path, args: argparse.Namespace, report: Report, full_cpu: float
) -> None:
    """Measurement 3; ``full_cpu``: CPU seconds of one full capture of both repositories."""
    for vcs, root in roots.items():
        monorepo.restore(vcs, root)
    result = measure_agent(roots, tmp, args.idle_seconds)
    report.add(
        "agent RSS, both repos",
        f"{result.rss_mb * 1.048576:.0f} MB (peak {result.hwm_mb * 1.048576:.0f} MB)",
        "-",
        "-",
        "< 150 MB",
        result.rss_mb * 1024 * 1024 < TARGET_RSS_MB * 1_000_000,
    )
    pct = 100 * result.idle_cpu_s / result.window_s
    # The safety-net full rescan runs once per `rescan` seconds: a window may hold
    # one or none, so the steady-state figure adds one per period (conservative:
    # a window that held one counts it twice).
    rescan = AgentSettings().rescan
    steady = pct + 100 * full_cpu / rescan
    naive_pct = 100 * full_cpu / INTERVAL_S
    print(
        f"agent: steady-state idle CPU, with one full rescan of both repositories"
        f" ({full_cpu * 1000:.0f} ms CPU) every {rescan:g} s: {steady:.3f} % of one core"
    )
    report.add(
        f"agent idle CPU ({result.window_s:.0f} s window)",
        f"{pct:.3f} % ({steady:.2f} % adding a {rescan / 60:g}-min rescan)",
        f"{naive_pct:.2f} % (full capture / {INTERVAL_S:g} s)",
        ratio(naive_pct, pct),
        "< 0.5 % of a core",
        pct < TARGET_IDLE_PCT,
    )
    if steady >= TARGET_IDLE_PCT > pct:
        report.notes.append(
            f"idle CPU: the window's {pct:.3f} % passes, but adding one safety-net rescan per"
            f" {rescan / 60:g} minutes ({full_cpu * 1000:.0f} ms CPU for both repositories) gives"
            f" {steady:.2f} %; a longer --idle-seconds averages the agent's one-off start-up work"
        )


if __name__ == "__main__":
    main()
