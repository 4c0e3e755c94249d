"""kill -9 at random instants: a real agent killed and restarted hundreds of times.

A thread edits a Git workspace on a steady cadence (``value = k`` with k
counting up) while ``snapshotter run`` is started, killed with SIGKILL after
a delay drawn from a seeded RNG, and started again.  The delays cover the
whole start-up (sweep, spool open, the roll of the previous run's rows, the
first full capture) and the first ticks after it.

What the agent acknowledged before a kill is what a read-only connection
finds in the spool, or a reader in the Parquet files, right after the kill:
an append that returned is durable, one that did not left nothing.  At the
end every acknowledged row must be in the dataset exactly once.

An edit is *due* in a run when it lived entirely between the run's first
tick (its ``start`` row) and the kill, for at least two intervals: the
agent had a whole tick to read it.  At most one due edit per kill may be
missing (the tick in flight).
"""

from __future__ import annotations

import itertools
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from tests.agent_process import AgentProcess, parquet_snapshot_ids, recorded, spooled, wait_for
from tests.repos import Repo

KILLS = int(os.environ.get("REDGREEN_KILL_LOOP_KILLS", "200"))
SEED = 20240607
INTERVAL = 0.1
EDIT_EVERY = 0.3
# From spawn to SIGKILL; a first tick comes ~0.8 s after spawn on a 2-core machine.
KILL_AFTER = (0.0, 1.4)
VALUE = re.compile(r"^\+value = (\d+)$", re.MULTILINE)


class Editor(threading.Thread):
    """Writes ``value = k`` into counter.txt every EDIT_EVERY seconds; remembers when."""

    def __init__(self, repo: Repo) -> None:
        super().__init__(name="editor", daemon=True)
        self.repo = repo
        self.stop = threading.Event()
        self.edits: list[tuple[int, float]] = []  # (k, wall-clock time written)

    def run(self) -> None:
        k = 1
        while not self.stop.is_set():
            self.repo.write("counter.txt", f"value = {k}\n")
            self.edits.append((k, time.time()))
            k += 1
            self.stop.wait(EDIT_EVERY)


@dataclass
class Run:
    spawned: float
    killed: float = 0.0
    first_tick: float | None = None


@dataclass
class Acknowledged:
    """Snapshot ids found durable after each kill, and Parquet files already read."""

    ids: set[str] = field(default_factory=set)
    files: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def collect(self, data_dir: Path) -> None:
        self.ids.update(r["snapshot_id"] for r in spooled(data_dir))
        connection = duckdb.connect()
        try:
            for path in (data_dir / "snapshots").glob("*/*/*.parquet"):
                stat = path.stat()
                if self.files.get(path) == (stat.st_mtime_ns, stat.st_size):
                    continue
                self.files[path] = (stat.st_mtime_ns, stat.st_size)
                rel = connection.sql(f"select snapshot_id from read_parquet('{path}')")
                self.ids.update(row[0] for row in rel.fetchall())
        finally:
            connection.close()


def due_edits(edits: list[tuple[int, float]], run: Run) -> list[int]:
    if run.first_tick is None:
        return []
    due = []
    for (k, written), (_next, replaced) in itertools.pairwise(edits):
        inside = written >= run.first_tick and replaced <= run.killed
        if inside and replaced - written >= 2 * INTERVAL:
            due.append(k)
    return due


@pytest.mark.slow
def test_kill_9_at_random_instants(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = Repo("git", tmp_path / "ws")
    repo.write("counter.txt", "value = 0\n")
    repo.commit("counter")
    data = tmp_path / "data"
    args = ["--workspace", str(repo.path), "--data-dir", str(data), "--interval", str(INTERVAL)]
    log = tmp_path / "agent.log"
    rng = random.Random(SEED)
    editor = Editor(repo)
    acknowledged = Acknowledged()
    runs: list[Run] = []
    began = time.monotonic()
    editor.start()
    try:
        for _ in range(KILLS):
            run = Run(spawned=time.time())
            agent = AgentProcess(args, log)
            time.sleep(rng.uniform(*KILL_AFTER))
            run.killed = time.time()
            agent.kill()
            runs.append(run)
            acknowledged.collect(data)
        # a last run that stops cleanly and rolls everything
        run = Run(spawned=time.time())
        agent = AgentProcess(args, log)
        time.sleep(2.0)
        run.killed = time.time()
        assert agent.stop() == 0, agent.output()[-2000:]
        runs.append(run)
    finally:
        editor.stop.set()
        editor.join()
    wall = time.monotonic() - began

    # every Parquet file reads back, and nothing is left in the spool
    assert spooled(data) == []
    ids = parquet_snapshot_ids(data)
    for path in (data / "blobs").glob("*/*/*.parquet"):
        duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()
    assert not list(data.rglob("*.tmp")), "a temporary survived the restarts"

    # no snapshot duplicated, nothing acknowledged missing
    duplicates = len(ids) - len(set(ids))
    assert duplicates == 0
    rows = recorded(data)
    assert len({(r["state_id"], r["reason"], r["ts"]) for r in rows}) == len(rows)
    missing = acknowledged.ids - set(ids)
    assert not missing, f"{len(missing)} acknowledged row(s) lost"

    # every blob a row names is in the dataset: no row outlived its content
    unresolved = duckdb.sql(
        f"""select count(*) from (
              select unnest(files, recursive := true) from read_parquet(
                '{data}/snapshots/*/*/*.parquet', union_by_name=true, hive_partitioning=true))
            where blob is not null and omitted is null and blob not in (
              select blob from read_parquet('{data}/blobs/*/*/*.parquet',
                union_by_name=true, hive_partitioning=true))"""
    ).fetchall()
    assert unresolved == [(0,)]

    # ticks lost: due edits that no row shows, at most one per kill
    values = {int(v) for r in rows for v in VALUE.findall(r["diff"] or "")}
    starts = sorted(r["ts"].timestamp() for r in rows if r["reason"] == "start")
    for run in runs:
        run.first_tick = next((s for s in starts if run.spawned <= s <= run.killed), None)
    lost_per_run = [[k for k in due_edits(editor.edits, run) if k not in values] for run in runs]
    assert all(len(lost) <= 1 for lost in lost_per_run), lost_per_run
    due = sum(len(due_edits(editor.edits, run)) for run in runs)
    lost = sum(len(x) for x in lost_per_run)
    ticked = sum(run.first_tick is not None for run in runs)
    rolls_redone = sum(
        "temporary file(s) left by a killed roll" in line for line in log.read_text().splitlines()
    )
    with capsys.disabled():
        print(
            f"\nkill loop: {KILLS} kills, {len(runs)} runs ({ticked} reached a first tick), "
            f"{len(ids)} rows, {len(acknowledged.ids)} acknowledged before a kill, "
            f"0 missing, {duplicates} duplicated, {len(editor.edits)} edits, {due} due, "
            f"{lost} lost, {rolls_redone} start(s) swept a killed roll's temporaries, "
            f"{wall:.0f} s"
        )


def start(repo: Repo, data: Path, log: Path, *extra: str, **env: str) -> AgentProcess:
    args = ["--workspace", str(repo.path), "--data-dir", str(data), "--interval", "0.2"]
    return AgentProcess([*args, *extra], log, env)


def temporaries(data: Path, kind: str) -> list[Path]:
    return list((data / kind).glob("*/*/.*.tmp"))


def test_kill_9_inside_a_roll_is_redone_without_duplicates(tmp_path: Path) -> None:
    repo = Repo("git", tmp_path / "ws")
    repo.write("a.txt", "a 0\n")
    repo.commit("a")
    data, log = tmp_path / "data", tmp_path / "agent.log"
    agent = start(repo, data, log)
    try:
        for i in range(1, 4):
            repo.write("a.txt", f"a {i}\n")
            wait_for(lambda i=i: any(f"+a {i}" in (r["diff"] or "") for r in spooled(data)))
    finally:
        agent.kill()
    acknowledged = {r["snapshot_id"] for r in spooled(data)}

    # the next start rolls what the killed run left; the hook holds each
    # finished temporary for a second before its rename: kill it there
    agent = start(repo, data, log, REDGREEN_TEST_ROLL_PAUSE="1")
    try:
        wait_for(lambda: temporaries(data, "blobs"), what="blobs temporary")
    finally:
        agent.kill()
    assert not list(data.glob("*/*/*/*.parquet")), "nothing may appear before the rename"
    agent = start(repo, data, log, REDGREEN_TEST_ROLL_PAUSE="1")
    try:
        wait_for(lambda: temporaries(data, "snapshots"), what="snapshots temporary")
    finally:
        agent.kill()
    assert list(data.glob("blobs/*/*/*.parquet")) and temporaries(data, "snapshots")
    assert not list(data.glob("snapshots/*/*/*.parquet"))

    agent = start(repo, data, log)
    try:
        repo.write("a.txt", "a after\n")
        wait_for(lambda: any("+a after" in (r["diff"] or "") for r in spooled(data)))
    finally:
        assert agent.stop() == 0, agent.output()[-2000:]
    assert "removed 1 temporary file(s) left by a killed roll" in agent.output()
    assert not list(data.rglob("*.tmp"))
    ids = parquet_snapshot_ids(data)
    assert len(ids) == len(set(ids)), "a redone roll duplicated rows"
    assert acknowledged <= set(ids)
    blob_files = list(data.glob("blobs/*/*/*.parquet"))
    blobs = duckdb.sql(
        f"select blob from read_parquet({[str(p) for p in blob_files]!r})"
    ).fetchall()
    assert len(blobs) == len(set(blobs)), "a redone roll duplicated blobs"


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_kill_9_during_a_build_ends_the_orphan_and_builds_again(tmp_path: Path) -> None:
    repo = Repo("git", tmp_path / "ws")
    repo.write("a.txt", "a 0\n")
    repo.commit("a")
    data, log = tmp_path / "data", tmp_path / "agent.log"
    slow, pids = tmp_path / "slow", tmp_path / "pids"
    pids.mkdir()
    slow.touch()
    # while `slow` exists the build hangs in a child of its shell, as a stuck tool would
    build = (
        f"if [ -e {slow} ]; then echo $$ > {pids}/shell; sleep 300 & echo $! > {pids}/child;"
        " wait; fi; exit 0"
    )
    agent = start(repo, data, log, "--build-cmd", build)
    try:
        repo.write("a.txt", "a 1\n")
        wait_for(lambda: (pids / "child").exists() and (pids / "shell").exists(), what="build")
        time.sleep(0.1)
    finally:
        agent.kill()
    orphans = [int((pids / name).read_text()) for name in ("shell", "child")]
    assert all(_running(pid) for pid in orphans), "the build outlives a kill -9 of its agent"
    state = next(r["state_id"] for r in reversed(spooled(data)) if "+a 1" in (r["diff"] or ""))

    slow.unlink()
    agent = start(repo, data, log, "--build-cmd", build)
    try:
        wait_for(lambda: not any(_running(pid) for pid in orphans), timeout=10, what="orphans end")
        wait_for(
            lambda: any(
                r["reason"] == "build"
                and r["state_id"] == state
                and r["build"]["state_id"] == state
                and r["build"]["status"] == "green"
                for r in spooled(data)
            ),
            what="the state built again",
        )
    finally:
        assert agent.stop() == 0, agent.output()[-2000:]
    assert "ended 2 process(es) of a build a killed agent left running" in agent.output()
