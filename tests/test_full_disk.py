"""A full disk under a running agent: it stops recording, says so once, and resumes.

The data directory and the state directory (where ``status.json`` lives) sit
on a small tmpfs mounted for the test (the suite runs as root here and in
CI), which a filler file fills up; deleting the filler returns the space.
Where mounting is refused, the writers' fault-injection hook
(``REDGREEN_TEST_DISK_FULL``, see ``snapshotter/spool.py``) stands in for
the full disk, and the test prints which one ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from miner.dataset import Dataset
from snapshotter.capture import CaptureSettings
from snapshotter.config import AgentSettings, WorkspaceConfig
from snapshotter.errors import StorageError
from snapshotter.record import Identity
from snapshotter.runner import WorkspaceRunner
from snapshotter.spool import Spool
from tests.agent_process import SNAPSHOTTER, AgentProcess, recorded, spooled, wait_for
from tests.repos import Repo

SIZE = "16m"


class SmallDisk:
    """A directory whose file system the test can fill up and free again."""

    def __init__(self, root: Path, kind: str) -> None:
        self.root = root
        self.kind = kind  # "tmpfs" or "fault-injection"
        self.flag = root.parent / "disk-full.flag"
        self.filler = root / "filler"

    @property
    def env(self) -> dict[str, str]:
        return {"REDGREEN_TEST_DISK_FULL": str(self.flag)} if self.kind != "tmpfs" else {}

    def fill(self) -> None:
        if self.kind != "tmpfs":
            self.flag.touch()
            return
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (64 * 1024, 4096, 1):  # big chunks, then the last partial pages
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"x" * size)
        finally:
            os.close(fd)
        assert shutil.disk_usage(self.root).free < 4096

    def free(self) -> None:
        self.flag.unlink(missing_ok=True)
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[SmallDisk]:
    root = tmp_path / "small"
    root.mkdir()
    # REDGREEN_TEST_NO_MOUNT=1 runs the fallback on a machine that could mount
    command = ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(root)]
    if os.environ.get("REDGREEN_TEST_NO_MOUNT"):
        command = ["false"]
    mounted = subprocess.run(command, capture_output=True, text=True)
    disk = SmallDisk(root, "tmpfs" if mounted.returncode == 0 else "fault-injection")
    with capsys.disabled():
        why = "" if mounted.returncode == 0 else f" (mount refused: {mounted.stderr.strip()})"
        print(f"\nfull disk: {disk.kind}{why}")
    try:
        yield disk
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(root)], check=True)


class NotifySocket:
    """A bound sd_notify socket, drained by a thread, so the agent's STATUS= lines can be read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="notify", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.sock.recv(4096).decode())

    def statuses(self) -> list[str]:
        return [
            line[len("STATUS=") :]
            for message in list(self.messages)
            for line in message.splitlines()
            if line.startswith("STATUS=")
        ]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def status() -> dict[str, object]:
    done = subprocess.run([SNAPSHOTTER, "status", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


def spool_values(data: Path) -> set[str]:
    return {line for r in spooled(data) for line in (r["diff"] or "").splitlines()}


def test_full_disk_stops_recording_once_and_resumes(
    small_disk: SmallDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = small_disk.root / "data"
    monkeypatch.setenv("XDG_STATE_HOME", str(small_disk.root / "state"))
    repo = Repo("git", tmp_path / "ws")
    repo.write("notes.txt", "start\n")
    repo.commit("notes")
    notify = NotifySocket(tmp_path / "notify.sock")
    args = ["--workspace", str(repo.path), "--data-dir", str(data), "--interval", "0.2"]
    agent = AgentProcess(
        args, tmp_path / "agent.log", {"NOTIFY_SOCKET": str(notify.path), **small_disk.env}
    )
    try:
        repo.write("notes.txt", "before the disk filled\n")
        wait_for(lambda: "+before the disk filled" in spool_values(data), what="first state")
        wait_for(lambda: status().get("running"), what="status.json")
        acknowledged = {r["snapshot_id"] for r in spooled(data)}

        small_disk.fill()
        # states with fresh content (new blobs) on every tick, for a few seconds
        for i in range(15):
            repo.write(f"during-{i}.txt", os.urandom(24 * 1024).hex())
            time.sleep(0.2)
        report = wait_for(lambda: (r := status()).get("storage_error") and r, what="status error")
        assert report["running"] is True
        assert "full" in str(report["storage_error"]), report["storage_error"]
        shown = subprocess.run([SNAPSHOTTER, "status"], capture_output=True, text=True).stdout
        assert "recording stopped: cannot append to spool" in shown, shown
        wait_for(
            lambda: any(s.startswith("recording stopped:") for s in notify.statuses()),
            what="STATUS=recording stopped",
        )
        for i in range(10):  # more ticks with changes, still full
            repo.write("notes.txt", f"still full {i}\n")
            time.sleep(0.2)
        stopped = [line for line in agent.output().splitlines() if "recording stopped" in line]
        assert len(stopped) == 1, stopped  # one line, not one per tick

        # the spool is intact and still holds what was recorded before
        conn = sqlite3.connect(f"file:{data}/spool/spool.sqlite3?mode=ro", uri=True)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
        assert acknowledged <= {r["snapshot_id"] for r in spooled(data)}
        # a flush on the full disk fails with one line and leaves no half-written file
        flushed = subprocess.run(
            [SNAPSHOTTER, "flush", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            env={**os.environ, **small_disk.env},
        )
        assert flushed.returncode != 0
        assert len(flushed.stderr.strip().splitlines()) == 1, flushed.stderr
        assert "full" in flushed.stderr or "space" in flushed.stderr, flushed.stderr
        assert not list(data.rglob("*.tmp"))
        assert acknowledged <= {r["snapshot_id"] for r in spooled(data)}

        small_disk.free()
        repo.write("notes.txt", "after the space came back\n")
        wait_for(lambda: "+after the space came back" in spool_values(data), what="resumed")
        wait_for(lambda: status().get("storage_error") is None, what="status cleared")
        wait_for(lambda: notify.statuses()[-1].startswith("watching"), what="STATUS=watching again")
        resumed = [line for line in agent.output().splitlines() if "recording resumed" in line]
        assert len(resumed) == 1, agent.output()[-3000:]
    finally:
        code = agent.stop()
        notify.close()
    assert code == 0, agent.output()[-3000:]
    rows = recorded(data)
    ids = [r["snapshot_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert acknowledged <= set(ids)
    diffs = "\n".join(r["diff"] or "" for r in rows)
    assert "+before the disk filled" in diffs and "+after the space came back" in diffs
    # the state of the workspace when recording resumed holds every file written meanwhile
    last = next(r for r in reversed(rows) if "+after the space came back" in (r["diff"] or ""))
    assert {f"during-{i}.txt" for i in range(15)} <= {f["path"] for f in last["files"]}


def test_a_failing_roll_is_one_line_while_the_spool_still_records(tmp_path: Path) -> None:
    """Parquet cannot be written but the spool can (a file sits where `snapshots/` belongs).

    Rows keep going to the spool; the failure is logged once, not once per
    tick as each successful append used to announce a recovery the next
    roll attempt took back.
    """
    repo = Repo("git", tmp_path / "ws")
    repo.write("notes.txt", "start\n")
    repo.commit("notes")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "snapshots").write_text("in the way\n")
    config = tmp_path / "config.toml"
    config.write_text("[agent]\nroll_rows = 1\n")  # a roll after every append
    args = ["--config", str(config), "--workspace", str(repo.path), "--data-dir", str(data)]
    agent = AgentProcess([*args, "--interval", "0.2"], tmp_path / "agent.log")
    try:
        for i in range(5):
            repo.write("notes.txt", f"edit {i}\n")
            wait_for(lambda i=i: f"+edit {i}" in spool_values(data), what=f"edit {i} spooled")
        report = wait_for(lambda: (r := status()).get("storage_error") and r, what="status")
        assert "snapshots" in str(report["storage_error"])
        shown = subprocess.run([SNAPSHOTTER, "status"], capture_output=True, text=True).stdout
        assert "rolling into Parquet stopped: cannot create data directory" in shown, shown
        lines = agent.output().splitlines()
        assert sum("stopped:" in line for line in lines) == 1, lines
        assert any("rolling into Parquet stopped:" in line for line in lines), lines
        assert not any("recording resumed" in line for line in lines), lines
        (data / "snapshots").unlink()
    finally:
        code = agent.stop()
    assert code == 0, agent.output()[-3000:]
    assert "recording resumed" in agent.output()
    diffs = "\n".join(r["diff"] or "" for r in recorded(data))
    assert all(f"+edit {i}" in diffs for i in range(5))


def test_ticks_on_a_full_disk_stay_incremental_and_lose_no_blob(
    small_disk: SmallDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the disk is full, no tick reads the whole working copy again.

    A failed append used to make every following tick a full capture (about
    1 s of CPU on 100,000 files) for as long as the disk stayed full.  The
    runner now keeps the blobs the failed append did not store and offers them
    with the next rows, so the data written once space returns still holds the
    content of every file written meanwhile.
    """
    for name, value in small_disk.env.items():
        monkeypatch.setenv(name, value)
    data = small_disk.root / "data"
    repo = Repo("git", tmp_path / "ws")
    repo.write("notes.txt", "start\n")
    repo.commit("notes")
    spool = Spool.open(data)
    runner = WorkspaceRunner(
        WorkspaceConfig(path=repo.path),
        AgentSettings(debounce=3600.0),  # no build: only capture and append matter
        CaptureSettings(),
        spool,
        Identity(host="full-disk-host", user="me"),
    )
    runner.open()

    def tick_until(seen: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(StorageError):
                runner.tick()
            if seen():
                return
            time.sleep(0.05)
        raise AssertionError("the runner never saw the change")

    def has(name: str) -> Callable[[], bool]:
        return lambda: runner.state is not None and any(f.path == name for f in runner.state.files)

    try:
        runner.tick()  # the start row
        repo.write("notes.txt", "before\n")
        tick_until(lambda: runner.appends >= 2)
        fulls = runner.full_captures

        small_disk.fill()
        contents = {f"during-{i}.txt": os.urandom(8 * 1024).hex() for i in range(5)}
        for name, text in contents.items():
            repo.write(name, text)
            tick_until(has(name))
        for _ in range(5):  # quiet ticks, still full: each retries the append
            with contextlib.suppress(StorageError):
                runner.tick()
        appends = runner.appends
        assert runner.full_captures == fulls  # every tick stayed incremental

        small_disk.free()
        tick_until(lambda: runner.appends > appends)
        assert runner.full_captures == fulls
    finally:
        runner.close()
        spool.close()
    done = subprocess.run(
        [SNAPSHOTTER, "flush", "--data-dir", str(data)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    with Dataset(data) as dataset:
        last = recorded(data)[-1]
        blobs = {f["path"]: f["blob"] for f in last["files"]}
        stored = dataset.contents(blobs[name] for name in contents)
    assert {stored[blobs[name]].decode() for name in contents} == set(contents.values())
