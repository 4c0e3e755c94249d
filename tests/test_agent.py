"""The agent as a real process: `snapshotter run` on real repositories, edited while it runs."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.agent_process import SNAPSHOTTER, AgentProcess, flush, recorded, spooled, wait_for
from tests.repos import Repo

PY = shlex.quote(sys.executable)
BUILD = f"{PY} -m py_compile *.py"


@pytest.fixture
def repo(repo: Repo) -> Repo:
    repo.ignore("__pycache__")
    repo.write("app.py", "VALUE = 1\n")
    repo.commit("app")
    return repo


def start(repo: Repo, data: Path, tmp_path: Path, *extra: str, **env: str) -> AgentProcess:
    args = ["--workspace", str(repo.path), "--data-dir", str(data), "--interval", "0.5"]
    return AgentProcess([*args, "--build-cmd", BUILD, *extra], tmp_path / "agent.log", env)


def builds(data: Path) -> list[tuple[str, str]]:
    """(reason, build status) of rows whose build belongs to their own state."""
    flush(data)
    return [
        (r["reason"], r["build"]["status"])
        for r in recorded(data)
        if r["build"] is not None and r["build"]["state_id"] == r["state_id"]
    ]


def test_agent_records_states_and_their_builds(repo: Repo, data_dir: Path, tmp_path: Path) -> None:
    agent = start(repo, data_dir, tmp_path)
    try:
        wait_for(lambda: ("build", "green") in builds(data_dir), what="first green build")
        repo.write("app.py", "VALUE = (\n")
        wait_for(lambda: ("build", "red") in builds(data_dir), what="red build")
        repo.write("app.py", "VALUE = 2\n")
        wait_for(lambda: builds(data_dir).count(("build", "green")) == 2, what="green again")
        flush(data_dir)
        settled = len(recorded(data_dir))
        time.sleep(3)  # six ticks with nothing changed
        flush(data_dir)
        assert len(recorded(data_dir)) == settled, "idle ticks must record nothing"
    finally:
        assert agent.stop() == 0, agent.output()
    rows = recorded(data_dir)
    assert rows[0]["reason"] == "start" and rows[-1]["reason"] == "stop"
    usable = [r for r in rows if r["build"] and r["build"]["state_id"] == r["state_id"]]
    assert [r["build"]["status"] for r in usable if r["reason"] == "build"] == [
        "green",
        "red",
        "green",
    ]
    red = next(r for r in usable if r["build"]["status"] == "red")
    assert "SyntaxError" in red["build"]["output"] and "VALUE = (" in red["diff"]
    assert len({r["snapshot_id"] for r in rows}) == len(rows)


def test_kill_9_loses_nothing_recorded(repo: Repo, data_dir: Path, tmp_path: Path) -> None:
    agent = start(repo, data_dir, tmp_path)
    try:
        for i in range(3):
            repo.write("app.py", f"VALUE = {i + 10}\n")
            # recorded = acknowledged: the row is in the spool (not yet rolled)
            wait_for(
                lambda i=i: any(
                    f"+VALUE = {i + 10}" in (row.get("diff") or "") for row in spooled(data_dir)
                ),
                what=f"state {i} in the spool",
            )
    finally:
        agent.kill()  # everything so far is in the spool only: kill the agent hard
    agent = start(repo, data_dir, tmp_path)
    try:
        repo.write("app.py", "VALUE = 99\n")
        wait_for(
            lambda: any(
                "VALUE = 99" in (r["diff"] or "") for r in (flush(data_dir), recorded(data_dir))[1]
            ),
            what="state after restart",
        )
    finally:
        assert agent.stop() == 0, agent.output()
    rows = recorded(data_dir)
    seen = [r["diff"] for r in rows]
    for i in range(3):
        assert any(f"+VALUE = {i + 10}" in (d or "") for d in seen), f"state {i} lost"
    assert len({r["snapshot_id"] for r in rows}) == len(rows), "a row was duplicated"
    assert [r["reason"] for r in rows].count("start") == 2
    for path in data_dir.rglob("*.parquet"):
        duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()


def test_notify_protocol(repo: Repo, data_dir: Path, tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(20)
    messages: list[str] = []
    agent = start(repo, data_dir, tmp_path, NOTIFY_SOCKET=address, WATCHDOG_USEC="60000000")
    try:
        while not any("WATCHDOG=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        assert any(m.startswith("READY=1") for m in messages)
        assert any("STATUS=watching 1 workspace(s)" in m for m in messages)
    finally:
        agent.stop()
        try:
            while True:
                sock.settimeout(0.5)
                messages.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        sock.close()
    assert any(m.startswith("STOPPING=1") for m in messages)
    ready = next(i for i, m in enumerate(messages) if m.startswith("READY=1"))
    assert ready < next(i for i, m in enumerate(messages) if "WATCHDOG=1" in m)


def test_pause_records_nothing_until_resume(repo: Repo, data_dir: Path, tmp_path: Path) -> None:
    agent = start(repo, data_dir, tmp_path)
    try:
        wait_for(lambda: ("build", "green") in builds(data_dir))
        done = subprocess.run([SNAPSHOTTER, "pause", "--for", "1h"], capture_output=True, text=True)
        assert "recording paused until" in done.stdout
        time.sleep(1.5)  # one tick at most to take effect
        before = len(recorded(data_dir))
        repo.write("app.py", "SECRET_WORK = 1\n")
        time.sleep(3)
        flush(data_dir)
        assert len(recorded(data_dir)) == before
        status = subprocess.run([SNAPSHOTTER, "status"], capture_output=True, text=True).stdout
        assert "recording paused until" in status
        subprocess.run([SNAPSHOTTER, "resume"], check=True, capture_output=True)
        wait_for(
            lambda: any(
                "SECRET_WORK" in (r["diff"] or "") for r in (flush(data_dir), recorded(data_dir))[1]
            ),
            what="state after resume",
        )
    finally:
        agent.stop()


def test_second_agent_on_the_same_data_refuses(repo: Repo, data_dir: Path, tmp_path: Path) -> None:
    agent = start(repo, data_dir, tmp_path)
    try:
        wait_for(lambda: (data_dir / "spool" / "agent.lock").exists())
        time.sleep(0.5)
        second = subprocess.run(
            [SNAPSHOTTER, "run", "--workspace", str(repo.path), "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert "another snapshotter agent (pid" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        agent.stop()


def test_status_when_no_agent_runs() -> None:
    done = subprocess.run([SNAPSHOTTER, "status"], capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.startswith("agent: not running")
    as_json = subprocess.run([SNAPSHOTTER, "status", "--json"], capture_output=True, text=True)
    assert '"running": false' in as_json.stdout


def test_running_status_shows_workspace_and_resources(
    repo: Repo, data_dir: Path, tmp_path: Path
) -> None:
    agent = start(repo, data_dir, tmp_path)
    try:

        def shown() -> str | None:
            out = subprocess.run([SNAPSHOTTER, "status"], capture_output=True, text=True).stdout
            running = out.startswith("agent: running")
            return out if running and " green " in out else None

        out = wait_for(shown, what="status with a green build")
        assert out.startswith("agent: running (pid")
        assert "memory" in out and "CPU" in out and str(repo.path.resolve()) in out
    finally:
        agent.stop()


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[agent]\ninterval = 'fast'\n")
    done = subprocess.run(
        [SNAPSHOTTER, "run", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert "agent.interval" in line and str(config) in line


def test_build_wrapper_passes_through_and_records(repo: Repo, data_dir: Path) -> None:
    repo.write("app.py", "VALUE = (\n")
    done = subprocess.run(
        [
            SNAPSHOTTER,
            "build",
            "--workspace",
            str(repo.path),
            "--data-dir",
            str(data_dir),
            "--",
            sys.executable,
            "-m",
            "py_compile",
            "app.py",
        ],
        capture_output=True,
        text=True,
        cwd=repo.path,
    )
    assert done.returncode == 1  # py_compile's own exit code
    assert "SyntaxError" in done.stdout
    (row,) = recorded(data_dir)
    assert row["build"]["status"] == "red" and row["build"]["state_id"] == row["state_id"]
    assert row["build"]["command"].endswith("-m py_compile app.py")
    ok = subprocess.run(
        [SNAPSHOTTER, "build", "--data-dir", str(data_dir), "--", "sh", "-c", "echo fine; exit 0"],
        capture_output=True,
        text=True,
        cwd=repo.path,
    )
    assert ok.returncode == 0 and ok.stdout == "fine\n"


def test_sighup_reloads_the_config(repo: Repo, data_dir: Path, tmp_path: Path) -> None:
    other = Repo(repo.kind, tmp_path / "other")
    other.write("b.py", "B = 1\n")
    other.commit()
    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\ninterval = 0.5\n\n[[workspace]]\npath = "{repo.path}"\n')
    agent = AgentProcess(["--config", str(config), "--data-dir", str(data_dir)], tmp_path / "a.log")
    try:
        wait_for(lambda: recorded(data_dir, "reason = 'start'") or (flush(data_dir), None)[1])
        with config.open("a") as f:
            f.write(f'\n[[workspace]]\npath = "{other.path}"\n')
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: (flush(data_dir), recorded(data_dir, f"workspace = '{other.path.resolve()}'"))[
                1
            ],
            what="the added workspace",
        )
    finally:
        assert agent.stop() == 0, agent.output()


def test_a_newer_state_supersedes_a_running_build(
    repo: Repo, data_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "build-started"
    slow = f"touch {shlex.quote(str(marker))}; sleep 5; {BUILD}"
    agent = AgentProcess(
        [
            "--workspace",
            str(repo.path),
            "--data-dir",
            str(data_dir),
            "--interval",
            "0.5",
            "--build-cmd",
            slow,
        ],
        tmp_path / "agent.log",
    )
    try:
        wait_for(marker.exists, what="the first build to start")
        repo.write("app.py", "VALUE = 3\n")  # the state moves while it builds
        wait_for(
            lambda: any(
                r["build"]["status"] == "stale"
                for r in (flush(data_dir), recorded(data_dir, "build is not null"))[1]
            ),
            what="the superseded build recorded as stale",
        )
        wait_for(
            lambda: ("build", "green") in builds(data_dir), timeout=40, what="the new state built"
        )
    finally:
        assert agent.stop() == 0, agent.output()
    rows = recorded(data_dir, "build is not null")
    stale = next(r for r in rows if r["build"]["status"] == "stale")
    assert "superseded" in stale["build"]["output"]
    green = next(r for r in rows if r["build"]["status"] == "green")
    assert green["build"]["state_id"] == green["state_id"] != stale["build"]["state_id"]
    assert "+VALUE = 3" in green["diff"]
