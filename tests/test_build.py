"""run_build against real shells and real processes: no mocks."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import tracemalloc
from datetime import UTC
from pathlib import Path

import pytest

from snapshotter.build import BuildLimits, BuildOutcome, run_build

FAST = BuildLimits(timeout_s=10.0, kill_grace_s=1.0)


def _gone(pid: int, within: float = 2.0) -> bool:
    """True once ``pid`` no longer runs (missing, or a zombie nobody reaped yet)."""
    end = time.monotonic() + within
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.02)


def _kill(pid: int) -> None:
    # Clean up after a failed assertion; a pid already gone may belong to someone else.
    if not _gone(pid, within=0):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _first_int(output: str) -> int:
    return int(output.split()[0])


def test_green_on_exit_zero(tmp_path: Path) -> None:
    out = run_build("echo hello", tmp_path, FAST)
    assert isinstance(out, BuildOutcome)
    assert (out.status, out.exit_code, out.output) == ("green", 0, "hello\n")
    assert out.command == "echo hello"
    assert out.started_at.tzinfo is UTC and out.finished_at.tzinfo is UTC
    assert out.started_at <= out.finished_at


@pytest.mark.parametrize("code", [1, 2, 3, 125, 128, 255])
def test_red_on_nonzero_exit(tmp_path: Path, code: int) -> None:
    out = run_build(f"echo broken; exit {code}", tmp_path, FAST)
    assert (out.status, out.exit_code, out.output) == ("red", code, "broken\n")


def test_stdout_and_stderr_are_merged_in_order(tmp_path: Path) -> None:
    out = run_build("echo one; echo two >&2; echo three", tmp_path, FAST)
    assert out.output == "one\ntwo\nthree\n"


def test_runs_in_cwd_with_stdin_from_dev_null(tmp_path: Path) -> None:
    out = run_build("pwd; cat; echo done", tmp_path, FAST)
    assert out.status == "green"
    assert out.output.splitlines() == [str(tmp_path), "done"]


def test_runs_in_its_own_session(tmp_path: Path) -> None:
    # The shell leads its own process group, so killpg reaches the whole build.
    out = run_build("echo $$; ps -o pgid= -p $$", tmp_path, FAST)
    pid, pgid = (int(x) for x in out.output.split())
    assert pid == pgid != os.getpgid(0)


def test_uses_shell_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bash = "/bin/bash"
    if not os.access(bash, os.X_OK):
        pytest.skip("no bash")
    monkeypatch.setenv("SHELL", bash)
    out = run_build('echo "$BASH_VERSION"', tmp_path, FAST)
    assert out.status == "green" and out.output.strip()


@pytest.mark.parametrize("shell", ["/nonexistent/shell", "", "relative-sh", "not-executable"])
def test_falls_back_to_bin_sh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shell: str) -> None:
    if shell == "not-executable":
        plain = tmp_path / "plain"
        plain.write_text("#!/bin/sh\n")
        plain.chmod(0o644)
        shell = str(plain)
    monkeypatch.setenv("SHELL", shell)
    out = run_build("echo fallback", tmp_path, FAST)
    assert (out.status, out.output) == ("green", "fallback\n")


def test_shell_that_cannot_start_is_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Executable, but not a program: exec fails with ENOEXEC.
    broken = tmp_path / "broken-shell"
    broken.write_bytes(b"\x00\x01 not a program\n")
    broken.chmod(0o755)
    monkeypatch.setenv("SHELL", str(broken))
    out = run_build("echo hi", tmp_path, FAST)
    assert (out.status, out.exit_code) == ("error", None)
    assert out.output.startswith(f"[redgreen: cannot start {broken}: ")
    assert out.output.count("\n") == 1


def test_command_not_found_is_error(tmp_path: Path) -> None:
    out = run_build("redgreen-no-such-command-xyz --flag", tmp_path, FAST)
    assert (out.status, out.exit_code) == ("error", 127)
    assert "not found" in out.output


def test_command_not_executable_is_error(tmp_path: Path) -> None:
    script = tmp_path / "build.sh"
    script.write_text("#!/bin/sh\necho never\n")
    script.chmod(0o644)
    out = run_build("./build.sh", tmp_path, FAST)
    assert (out.status, out.exit_code) == ("error", 126)
    assert "never" not in out.output


def test_missing_cwd_is_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    out = run_build("echo hi", missing, FAST)
    assert (out.status, out.exit_code) == ("error", None)
    assert str(missing) in out.output
    assert out.output.count("\n") == 1 and out.output.endswith("\n")


def test_cwd_that_is_a_file_is_error(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    out = run_build("echo hi", file, FAST)
    assert (out.status, out.exit_code) == ("error", None)


def test_shell_killed_by_signal_is_red_with_negative_code(tmp_path: Path) -> None:
    # The shell itself dies of SIGTERM: Popen reports -15.
    out = run_build("echo before; kill -TERM $$; echo after", tmp_path, FAST)
    assert (out.status, out.exit_code) == ("red", -signal.SIGTERM)
    assert out.output == "before\n[redgreen: build ended by signal SIGTERM (15)]\n"


def test_child_killed_by_signal_is_red_with_shell_code(tmp_path: Path) -> None:
    # A child dies of SIGTERM and the shell exits on its own: the shell's 128 + 15.
    out = run_build("sh -c 'kill -TERM $$'; exit $?", tmp_path, FAST)
    assert (out.status, out.exit_code) == ("red", 128 + signal.SIGTERM)


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    limits = BuildLimits(timeout_s=1.0, kill_grace_s=1.0)
    start = time.monotonic()
    out = run_build("sleep 30 & echo $!; sleep 30", tmp_path, limits)
    elapsed = time.monotonic() - start
    child = _first_int(out.output)
    try:
        assert (out.status, out.exit_code) == ("timeout", None)
        assert 1.0 <= elapsed < 2.5
        assert out.output.endswith("[redgreen: build timed out after 1 s]\n")
        assert _gone(child)
    finally:
        _kill(child)


def test_timeout_escalates_to_sigkill(tmp_path: Path) -> None:
    # SIG_IGN survives exec: the shell and its sleep both ignore SIGTERM.
    limits = BuildLimits(timeout_s=0.5, kill_grace_s=0.5)
    start = time.monotonic()
    out = run_build("trap '' TERM; sleep 30 & echo $!; sleep 30", tmp_path, limits)
    elapsed = time.monotonic() - start
    child = _first_int(out.output)
    try:
        assert out.status == "timeout"
        assert 1.0 <= elapsed < 2.5
        assert _gone(child)
    finally:
        _kill(child)


def test_timeout_while_output_streams(tmp_path: Path) -> None:
    limits = BuildLimits(timeout_s=0.5, kill_grace_s=0.5, output_cap=1024)
    start = time.monotonic()
    out = run_build("yes", tmp_path, limits)
    assert time.monotonic() - start < 2.0
    assert out.status == "timeout"
    assert out.output.startswith("[redgreen: ")
    assert out.output.endswith("y\n[redgreen: build timed out after 0.5 s]\n")


def test_daemon_holding_the_pipe_does_not_hang(tmp_path: Path) -> None:
    start = time.monotonic()
    out = run_build("sleep 30 & echo $!; echo built", tmp_path, FAST)
    elapsed = time.monotonic() - start
    daemon = _first_int(out.output)
    try:
        assert (out.status, out.exit_code) == ("green", 0)
        assert out.output.splitlines()[1] == "built"
        assert elapsed < 3.0
        assert _gone(daemon)
    finally:
        _kill(daemon)


def test_background_process_without_the_pipe_is_left_alone(tmp_path: Path) -> None:
    # A build that starts a server with its own output (a compiler daemon) keeps it.
    start = time.monotonic()
    out = run_build("sleep 30 >/dev/null 2>&1 & echo $!", tmp_path, FAST)
    daemon = _first_int(out.output)
    try:
        assert out.status == "green"
        assert time.monotonic() - start < 1.0
        assert not _gone(daemon, within=0)
    finally:
        _kill(daemon)


def test_large_output_keeps_a_bounded_tail(tmp_path: Path) -> None:
    total = 5 * 1024 * 1024
    tracemalloc.start()
    try:
        out = run_build(f"yes 0123456789abcdef | head -c {total}", tmp_path, FAST)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.status == "green"
    marker, _, tail = out.output.partition("\n")
    cut = int(marker.removeprefix("[redgreen: ").removesuffix(" bytes of output cut]"))
    assert marker == f"[redgreen: {cut} bytes of output cut]"
    assert cut + len(tail.encode()) == total
    assert len(tail.encode()) <= 64 * 1024
    assert len(tail.encode()) > 60 * 1024
    # The kept tail starts on a whole line.
    assert all(line == "0123456789abcdef" for line in tail.splitlines()[:-1])
    assert peak < 1024 * 1024


def test_tail_of_one_long_line_is_exactly_the_cap(tmp_path: Path) -> None:
    limits = BuildLimits(timeout_s=10.0, output_cap=1000)
    out = run_build("head -c 5000 /dev/zero | tr '\\0' x", tmp_path, limits)
    assert out.output == "[redgreen: 4000 bytes of output cut]\n" + "x" * 1000


def test_output_under_the_cap_is_whole(tmp_path: Path) -> None:
    limits = BuildLimits(timeout_s=10.0, output_cap=100)
    out = run_build("printf 'a%.0s' $(seq 100)", tmp_path, limits)
    assert out.output == "a" * 100


def test_output_is_decoded_leniently_and_keeps_colours(tmp_path: Path) -> None:
    out = run_build(r"printf '\377ok \033[31mred\033[0m\n'", tmp_path, FAST)
    assert out.output == "\ufffdok \x1b[31mred\x1b[0m\n"


def _niceness(stat_line: str) -> int:
    # Fields after "(comm)": state is field 3, nice is field 19.
    return int(stat_line.rpartition(")")[2].split()[16])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("nice", [0, 7, 19])
def test_nice_is_applied(tmp_path: Path, nice: int) -> None:
    current = os.getpriority(os.PRIO_PROCESS, 0)
    out = run_build("cat /proc/self/stat", tmp_path, FAST, nice=nice)
    assert out.status == "green"
    assert _niceness(out.output) == max(current, nice)
    assert os.getpriority(os.PRIO_PROCESS, 0) == current


def test_build_can_run_python(tmp_path: Path) -> None:
    out = run_build(f"'{sys.executable}' -c 'import sys; sys.exit(4)'", tmp_path, FAST)
    assert (out.status, out.exit_code) == ("red", 4)


def test_limits_defaults() -> None:
    limits = BuildLimits()
    assert (limits.timeout_s, limits.output_cap, limits.kill_grace_s) == (600.0, 65536, 2.0)


def test_a_cancelled_build_is_killed_and_stale(tmp_path: Path) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    try:
        outcome = run_build("echo started; sleep 30", tmp_path, cancel=cancel)
    finally:
        timer.cancel()
        timer.join()
    assert outcome.status == "stale" and outcome.exit_code is None
    assert "started" in outcome.output and "superseded" in outcome.output
    assert (outcome.finished_at - outcome.started_at).total_seconds() < 10


def test_output_is_passed_through_as_it_comes(tmp_path: Path) -> None:
    seen: list[bytes] = []
    outcome = run_build("printf 'one\\n'; printf 'two\\n' >&2", tmp_path, on_output=seen.append)
    assert b"".join(seen) == b"one\ntwo\n"
    assert outcome.output == "one\ntwo\n"
