"""Hostile working copies, for real: what a developer's disk does to the agent over months.

Every fault is the real one on real hg and git repositories: a branch switch
of 10,000 files, a sparse 2 GiB file, symlink loops, a file the agent's user
cannot read (a child process that drops to uid 65534), a file deleted between
the VCS's listing and the read, a repository deleted under a running agent,
corrupted ``.git``/``.hg`` files, nested repositories and a rebase stopped on
a conflict.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from snapshotter.capture import CaptureSettings, State, capture
from snapshotter.errors import WorkspaceError
from snapshotter.snapshot import SnapshotOptions, take_snapshot
from snapshotter.vcs import open_backend
from snapshotter.vcs.base import Candidate
from tests.agent_process import SNAPSHOTTER, AgentProcess, recorded, wait_for
from tests.repos import HG, VCS_ENV, Repo

GIB = 1024 * 1024 * 1024
NOBODY = 65534


def snap(
    repo: Repo,
    settings: CaptureSettings | None = None,
    *,
    since: State | None = None,
    paths: Collection[str] | None = None,
) -> State:
    backend = open_backend(repo.path)
    try:
        raw = None if paths is None else [p.encode() for p in paths]
        return capture(backend, settings or CaptureSettings(), since=since, paths=raw)
    finally:
        backend.close()


def by_path(state: State) -> dict[str, Any]:
    return {f.path: f for f in state.files}


# -- many files, big files ----------------------------------------------------


@pytest.mark.slow
def test_branch_switch_of_10000_files_is_one_base_row(repo: Repo, data_dir: Path) -> None:
    repo.write("README", "base\n")
    main = repo.commit("base")
    for i in range(10_000):
        repo.write(f"gen/{i // 100:03d}/f{i:05d}.txt", f"file {i}\n")
    big = repo.commit("10,000 files")
    repo.vcs("update", "-r", main) if repo.kind == "hg" else repo.vcs("checkout", "-q", main)
    take_snapshot(repo.path, data_dir, SnapshotOptions())

    repo.vcs("update", "-r", big) if repo.kind == "hg" else repo.vcs("checkout", "-q", big)
    tracemalloc.start()
    start = time.monotonic()
    try:
        take_snapshot(repo.path, data_dir, SnapshotOptions())
        seconds = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rows = recorded(data_dir)
    base = [r for r in rows if r["reason"] == "base"]
    state = rows[-1]
    print(f"{repo.kind}: 10,000-file switch snapshot {seconds:.1f} s, peak {peak >> 20} MiB")
    # the switch is one base row; the state on the new base has nothing of its own
    assert len(base) == 1 and len(base[0]["files"]) == 10_000
    assert {f["status"] for f in base[0]["files"]} == {"A"}
    assert (state["reason"], state["base_rev"], state["files"], state["diff"]) == (
        "state",
        big,
        [],
        "",
    )
    assert peak < 256 * 1024 * 1024


def test_sparse_2_gib_file_is_recorded_by_size_and_never_read(repo: Repo) -> None:
    repo.write("app.py", "x = 1\n")
    repo.commit()
    huge = repo.path / "dump.core"
    with open(huge, "wb") as f:
        os.truncate(f.fileno(), 2 * GIB)
    opened: list[str] = []
    watched = {os.fsencode(huge)}

    def hook(event: str, args: tuple[object, ...]) -> None:
        path = args[0] if event == "open" and args else None
        if isinstance(path, str | bytes) and os.fsencode(path) in watched:
            opened.append(os.fsdecode(path))

    sys.addaudithook(hook)
    try:
        start = time.monotonic()
        state = snap(repo)
        seconds = time.monotonic() - start
        again = snap(repo)
        os.truncate(huge, 2 * GIB + 1)  # it grows: the cheap key sees it
        grown = snap(repo, since=again, paths=["dump.core"])
    finally:
        watched.clear()  # audit hooks cannot be removed: disarm it
    assert opened == [], "the 2 GiB file was opened"
    record = by_path(state)["dump.core"]
    assert (record.status, record.size, record.omitted) == ("?", 2 * GIB, "too_large")
    assert record.blob is None and not state.changes.blobs
    assert "Binary files /dev/null and b/dump.core differ" in state.changes.diff
    assert seconds < 2.0
    assert again.state_id == state.state_id  # unchanged: the same id
    assert grown.state_id != state.state_id
    assert by_path(grown)["dump.core"].size == 2 * GIB + 1


def test_base_side_over_the_limit_is_not_fetched(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write("data.bin.txt", "row\n" * 300_000)  # 1.2 MB of text, committed
    repo.commit()
    repo.write("data.bin.txt", "row\n" * 300_001)
    backend = open_backend(repo.path)
    fetched: list[Any] = []
    real = backend.rev_contents

    def spy(rev: str, files: Any) -> dict[bytes, bytes]:
        files = list(files)
        fetched.extend(files)
        return real(rev, files)

    # a spy on the real backend: it counts what is fetched, the fetch is real
    monkeypatch.setattr(backend, "rev_contents", spy)
    try:
        state = capture(backend, CaptureSettings())
    finally:
        backend.close()
    assert fetched == []
    record = by_path(state)["data.bin.txt"]
    assert (record.status, record.omitted, record.blob, record.base_blob) == (
        "M",
        "too_large",
        None,
        None,
    )
    assert record.size == 4 * 300_001


# -- links, permissions, races ------------------------------------------------


def test_symlink_loops_are_recorded_as_links(repo: Repo) -> None:
    repo.write("app.py", "x = 1\n")
    repo.commit()
    os.symlink("loop-b", repo.path / "loop-a")
    os.symlink("loop-a", repo.path / "loop-b")
    os.symlink(".", repo.path / "self")  # a directory loop: self/self/self/...
    os.symlink("..", repo.path / "parent")
    full = snap(repo)
    # the monitor reports the links (and paths through them) one by one
    reported = ["loop-a", "loop-b", "self", "self/", "parent/", "self/self/app.py"]
    incremental = snap(repo, since=snap(repo), paths=reported)
    for state in (full, incremental):
        records = by_path(state)
        assert set(records) == {"loop-a", "loop-b", "self", "parent"}
        assert state.changes.blobs[records["self"].blob or ""] == b"."
        assert state.changes.diff.count("new file mode 120000") == 4
    assert incremental.state_id == full.state_id


@pytest.fixture
def shared_repo(request: pytest.FixtureRequest, repo: Repo) -> Iterator[Repo]:
    """``repo`` copied where uid 65534 can reach it (pytest's tmp is root-only), owned by it."""
    top = Path(tempfile.mkdtemp(prefix="redgreen-nobody-"))
    try:
        top.chmod(0o755)
        moved = Repo.__new__(Repo)
        moved.kind, moved.path = repo.kind, top / "ws"
        shutil.copytree(repo.path, moved.path, symlinks=True)
        yield moved
    finally:
        shutil.rmtree(top)


# A forked child drops to nobody and captures: the interpreter lives under /root
# (mode 0700), so a fresh process could not even start as nobody; the fork
# keeps the already imported modules.
def _capture_as_nobody(root: Path) -> dict[str, Any]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_end)
            # Mercurial is opened as root: it reads its own defaultrc from the
            # installed package, which may sit under a root-only folder (git, a
            # system binary, refuses a repository root does not own); the capture,
            # every read of the working copy, runs as nobody
            backend = open_backend(root) if (root / ".hg").is_dir() else None
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            import logging

            lines: list[str] = []

            class Keep(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    lines.append(record.getMessage())

            logging.getLogger("snapshotter").addHandler(Keep())
            try:
                state = capture(backend or open_backend(root), CaptureSettings())
                result: dict[str, Any] = {
                    "uid": os.getuid(),
                    "files": {f.path: f.status for f in state.files},
                    "log": lines,
                }
            except Exception as exc:
                result = {"uid": os.getuid(), "error": f"{type(exc).__name__}: {exc}"}
            os.write(write_end, json.dumps(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result: dict[str, Any] = json.loads(data)
    return result


def test_unreadable_file_is_left_out_with_one_warning(repo: Repo, shared_repo: Repo) -> None:
    # Run as root, which reads anything; so the capture runs in a child that
    # setuid()s to nobody (65534), on a copy of the repository nobody owns.
    snap(repo)  # import every lazily loaded module before the fork
    shared_repo.write("secret.py", "x = 1\n")
    shared_repo.write("fine.py", "y = 1\n")
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(shared_repo.path)], check=True)
    (shared_repo.path / "secret.py").chmod(0o000)
    result = _capture_as_nobody(shared_repo.path)
    assert result["uid"] == NOBODY
    assert "error" not in result, result
    assert result["files"] == {"fine.py": "?"}
    (warning,) = [line for line in result["log"] if "secret.py" in line]
    assert "cannot read" in warning and "Permission denied" in warning and "\n" not in warning


def test_file_deleted_between_listing_and_reading(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write("edit.py", "x = 1\n")
    repo.commit()
    repo.write("edit.py", "x = 2\n")
    repo.write("new.py", "n = 1\n")
    backend = open_backend(repo.path)
    real = backend.candidates

    def list_then_delete(paths: Sequence[bytes] | None = None) -> list[Candidate]:
        # the race made deterministic: the VCS has listed both files, then they go
        listed = real(paths)
        assert {c.path for c in listed} == {b"edit.py", b"new.py"}
        repo.remove("edit.py")
        repo.remove("new.py")
        return listed

    monkeypatch.setattr(backend, "candidates", list_then_delete)
    try:
        state = capture(backend, CaptureSettings())
    finally:
        backend.close()
    assert {f.path: f.status for f in state.files} == {"edit.py": "R"}
    assert state.state_id == snap(repo).state_id  # what a capture after the race sees


# -- the repository itself ------------------------------------------------------


def _status_json() -> dict[str, Any]:
    out = subprocess.run([SNAPSHOTTER, "status", "--json"], capture_output=True, text=True)
    report: dict[str, Any] = json.loads(out.stdout)
    return report


@pytest.mark.slow
def test_repository_deleted_while_watched(tmp_path: Path, data_dir: Path) -> None:
    doomed, kept = Repo("hg", tmp_path / "doomed"), Repo("git", tmp_path / "kept")
    for repo in (doomed, kept):
        repo.write("app.py", "x = 1\n")
        repo.commit()
    args = ["--workspace", str(doomed.path), "--workspace", str(kept.path)]
    agent = AgentProcess(
        [*args, "--data-dir", str(data_dir), "--interval", "0.3"], tmp_path / "agent.log"
    )
    try:

        def watching_both() -> bool:
            report = _status_json()
            return report.get("running") and all(
                w.get("state_id") for w in report.get("workspaces", [])
            )

        wait_for(watching_both, what="both workspaces watched")
        shutil.rmtree(doomed.path)
        kept.write("app.py", "x = 2\n")

        def doomed_missing() -> dict[str, Any] | None:
            entries = {w["workspace"]: w for w in _status_json().get("workspaces", [])}
            entry = entries.get(str(doomed.path.resolve()))
            return entry if entry and "missing" in (entry.get("error") or "") else None

        entry = wait_for(doomed_missing, what="the deleted workspace marked missing")
        assert (
            entry["error"] == f"workspace {doomed.path.resolve()} is missing (deleted or unmounted)"
        )
        text = subprocess.run([SNAPSHOTTER, "status"], capture_output=True, text=True).stdout
        (line,) = [ln for ln in text.splitlines() if str(doomed.path.resolve()) in ln]
        assert "missing" in line.split()
        time.sleep(1.5)  # several ticks of the missing workspace
        kept.write("app.py", "x = 3\n")
        wait_for(
            lambda: any(
                "x = 3" in (r["diff"] or "")
                for r in (_flush_and_read(data_dir))
                if r["workspace"] == str(kept.path.resolve())
            ),
            what="the other workspace still recording",
        )
    finally:
        code = agent.stop()
    log = agent.output()
    assert code == 0, log
    # one clear line for the missing workspace, not one (or a traceback) per tick
    assert log.count("is missing (deleted or unmounted)") == 1, log
    assert "Traceback" not in log


def _flush_and_read(data_dir: Path) -> list[dict[str, Any]]:
    subprocess.run([SNAPSHOTTER, "flush", "--data-dir", str(data_dir)], capture_output=True)
    return recorded(data_dir)


CORRUPTIONS: dict[str, list[tuple[str, bytes | None]]] = {
    # (file, bytes written over it; None: cut to half its size)
    "git": [(".git/HEAD", b"\x00garbage\xff\n"), (".git/index", b"DIRC garbage")],
    "hg": [(".hg/dirstate", None), (".hg/requires", b"\x00garbage-requirement\n")],
}


@pytest.mark.parametrize(
    ("kind", "name", "garbage"),
    [(kind, name, garbage) for kind, items in CORRUPTIONS.items() for name, garbage in items],
)
def test_corrupted_repository_is_one_clear_line_and_recovers(
    tmp_path: Path, kind: str, name: str, garbage: bytes | None
) -> None:
    repo = Repo(kind, tmp_path / "ws")
    repo.write("app.py", "x = 1\n")
    repo.commit()
    repo.write("app.py", "x = 2\n")
    backend = open_backend(repo.path)  # opened while healthy, as the agent's is
    try:
        good = capture(backend, CaptureSettings())
        target = repo.path / name
        original = target.read_bytes()
        target.write_bytes(original[: len(original) // 2] if garbage is None else garbage)
        for _ in range(2):  # again and again: the same line each tick, no crash
            try:
                broken = capture(backend, CaptureSettings())
            except WorkspaceError as exc:
                message = str(exc)
                assert message and "\n" not in message and len(message) < 300, message
            else:
                # a backend that can still read the working copy must read it right
                assert broken.state_id == good.state_id, name
        # a fresh open (the agent restarting, `snapshotter snapshot`) fails in one line too
        try:
            open_backend(repo.path).close()
        except WorkspaceError as exc:
            assert "\n" not in str(exc)
        target.write_bytes(original)
        assert capture(backend, CaptureSettings()).state_id == good.state_id
    finally:
        backend.close()


def test_nested_repositories_are_not_the_outer_ones(repo: Repo, tmp_path: Path) -> None:
    repo.write("app.py", "x = 1\n")
    repo.commit()
    inner = Repo("git" if repo.kind == "hg" else "hg", repo.path / "vendor" / "inner")
    inner.write("lib.py", "y = 1\n")
    inner.commit()
    inner.write("lib.py", "y = 2\n")
    repo.write("app.py", "x = 2\n")
    full = snap(repo)
    # the monitor reports the inner repository's files and its internals too
    reported = ["vendor/inner/lib.py", "vendor/inner/.git/index", "vendor/inner/.hg/dirstate"]
    incremental = snap(repo, since=snap(repo), paths=[*reported, "vendor/"])
    for state in (full, incremental):
        assert [f.path for f in state.files] == ["app.py"]
    assert incremental.state_id == full.state_id
    # the inner one, watched on its own, records its own change
    assert [f.path for f in snap(inner).files] == ["lib.py"]


def _conflict(repo: Repo) -> str:
    repo.write("app.py", "x = 0\n")
    base = repo.commit("base")
    repo.write("app.py", "x = 1\n")
    repo.commit("ours")
    if repo.kind == "git":
        repo.vcs("checkout", "-q", "-b", "topic", base)
    else:
        repo.vcs("update", "-r", base)
    repo.write("app.py", "x = 2\n")
    return repo.commit("theirs")


def test_rebase_stopped_on_a_conflict(repo: Repo, data_dir: Path) -> None:
    _conflict(repo)
    if repo.kind == "git":
        cmd: list[str] = ["git", "-C", str(repo.path), "rebase", "main"]
    else:
        cmd = [*HG, "--cwd", str(repo.path), "--config", "extensions.rebase=", "rebase", "-d", "1"]
    done = subprocess.run(cmd, capture_output=True, env=VCS_ENV)
    assert done.returncode == 1, done.stderr  # stopped on the conflict
    assert b"<<<<<<<" in repo.read("app.py")
    report = take_snapshot(repo.path, data_dir, SnapshotOptions(build_command="exit 1"))
    (row,) = recorded(data_dir)
    # recorded against the commit being rebased onto, conflict markers and all
    onto = repo.vcs("log", "-r", "1", "-T", "{node}") if repo.kind == "hg" else None
    onto = onto or repo.vcs("rev-parse", "main").strip()
    assert row["base_rev"] == onto
    # hg also leaves its backup app.py.orig: a real untracked file, recorded as one
    expected = ["app.py", "app.py.orig"] if repo.kind == "hg" else ["app.py"]
    assert [f["path"] for f in row["files"]] == expected
    assert "+<<<<<<<" in row["diff"] and "+>>>>>>>" in row["diff"]
    assert report.build_status == "red"
