"""Hostile builds, for real: a build that never ends, prints 1 GB, leaves a daemon
holding its pipe, rewrites the workspace, or dies of a signal.

Each runs as a real shell command through ``run_build`` or a whole
``take_snapshot`` on a real Git repository (builds do not depend on the VCS),
and what was recorded is read back from Parquet with DuckDB.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from snapshotter.build import BuildLimits, run_build
from snapshotter.snapshot import SnapshotOptions, take_snapshot
from tests.agent_process import recorded
from tests.repos import Repo

GIB = 1024 * 1024 * 1024


@pytest.fixture
def workspace(tmp_path: Path) -> Repo:
    repo = Repo("git", tmp_path / "ws")
    repo.write("app.py", "VALUE = 1\n")
    repo.commit("app")
    return repo


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _pids(output: str) -> list[int]:
    return [int(line) for line in output.splitlines() if line.strip().isdigit()]


def _builds(data_dir: Path) -> list[dict[str, Any]]:
    return [r["build"] for r in recorded(data_dir) if r["build"] is not None]


def test_build_that_never_ends_is_killed_with_its_group_and_recorded(
    workspace: Repo, data_dir: Path
) -> None:
    # It ignores SIGTERM, and leaves a grandchild that ignores it too.
    command = "trap '' TERM; sleep 300 & echo $!; sleep 300"
    options = SnapshotOptions(
        build_command=command, build_limits=BuildLimits(timeout_s=1.0, kill_grace_s=0.5)
    )
    start = time.monotonic()
    report = take_snapshot(workspace.path, data_dir, options)
    elapsed = time.monotonic() - start
    (build,) = _builds(data_dir)
    pids = _pids(build["output"])
    try:
        assert report.build_status == "timeout"
        assert (build["status"], build["exit_code"]) == ("timeout", None)
        assert build["output"].endswith("[redgreen: build timed out after 1 s]\n")
        assert pids and not any(_alive(pid) for pid in pids), "the grandchild survived"
        assert elapsed < 10
    finally:
        for pid in pids:
            _kill(pid)


# Runs in a child interpreter so that its peak RSS is the build function's alone.
_PRINT_1GB = """
import json, resource, sys, time
from pathlib import Path
from snapshotter.build import run_build

def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

before = peak_kib()
start = time.monotonic()
out = run_build("head -c %d /dev/zero | tr '\\\\0' x", Path(sys.argv[1]))
print(json.dumps({
    "before_kib": before,
    "after_kib": peak_kib(),
    "seconds": time.monotonic() - start,
    "status": out.status,
    "head": out.output[:80],
    "kept": len(out.output.encode()),
}))
"""


@pytest.mark.slow
def test_build_printing_1_gib_keeps_only_the_tail(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PRINT_1GB % GIB, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    print(f"1 GiB of build output: {result}")
    assert result["status"] == "green"
    assert result["head"].startswith("[redgreen: ")
    cut = int(result["head"].split()[1])
    kept = result["kept"] - len(f"[redgreen: {cut} bytes of output cut]\n")
    assert cut + kept == GIB
    assert kept == 64 * 1024  # one long line: exactly the cap
    # the peak resident set grows by a few chunks, never by the output
    assert result["after_kib"] - result["before_kib"] < 16 * 1024


def test_daemon_in_its_own_session_holding_the_pipe_does_not_hang(tmp_path: Path) -> None:
    # setsid puts the daemon outside the build's process group: no killpg reaches
    # it, and it keeps the write end of the pipe open for a minute.
    command = "setsid sleep 60 & echo $!; echo built"
    start = time.monotonic()
    out = run_build(command, tmp_path, BuildLimits(timeout_s=30.0, kill_grace_s=0.5))
    elapsed = time.monotonic() - start
    pids = _pids(out.output)
    try:
        assert (out.status, out.exit_code) == ("green", 0)
        assert "built" in out.output.splitlines()
        # drain grace (1 s) + kill grace (0.5 s) + final drain (0.5 s), not the daemon's 60 s
        assert elapsed < 4.0, elapsed
        assert pids and _alive(pids[0]), "a daemon outside the group is left to itself"
    finally:
        for pid in pids:
            _kill(pid)


def test_build_that_changes_the_workspace_is_stale(workspace: Repo, data_dir: Path) -> None:
    options = SnapshotOptions(build_command="date +%s%N >> generated.txt; echo done")
    report = take_snapshot(workspace.path, data_dir, options)
    rows = recorded(data_dir)
    assert report.build_status == "stale"
    # both states are recorded, and the result belongs to neither
    assert len({r["state_id"] for r in rows}) == 2
    assert all(r["build"]["status"] == "stale" for r in rows)
    assert not any(r["build"]["state_id"] == r["state_id"] for r in rows[1:])
    after = rows[-1]
    assert [f["path"] for f in after["files"]] == ["generated.txt"]


@pytest.mark.parametrize(
    ("command", "exit_code", "note"),
    [
        # the command the shell exec'd dies: the signal itself is reported
        ("echo compiling; kill -SEGV $$", -signal.SIGSEGV, "SIGSEGV (11)"),
        ("echo compiling; kill -KILL $$", -signal.SIGKILL, "SIGKILL (9)"),
        # a child dies and the shell goes on to exit: the shell's 128 + N
        ("sh -c 'kill -ABRT $$'; exit $?", 128 + signal.SIGABRT, None),
    ],
)
def test_build_ended_by_a_signal_is_red_with_the_signal(
    workspace: Repo, data_dir: Path, command: str, exit_code: int, note: str | None
) -> None:
    take_snapshot(workspace.path, data_dir, SnapshotOptions(build_command=command))
    (build,) = _builds(data_dir)
    assert (build["status"], build["exit_code"]) == ("red", exit_code)
    if note is not None:
        assert build["output"].endswith(f"[redgreen: build ended by signal {note}]\n")
    else:
        assert "[redgreen:" not in build["output"]
