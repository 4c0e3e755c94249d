"""Capture against real hg and git working copies: what differs from the base, exactly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from snapshotter.capture import CaptureSettings, State, capture
from snapshotter.errors import WorkspaceError
from snapshotter.pathnames import to_bytes
from snapshotter.vcs import open_backend
from snapshotter.vcs.base import NULL_REV
from tests.repos import Repo


def snap(repo: Repo, settings: CaptureSettings | None = None) -> State:
    backend = open_backend(repo.path)
    try:
        return capture(backend, settings or CaptureSettings())
    finally:
        backend.close()


def by_path(state: State) -> dict[str, tuple[str, str | None]]:
    return {f.path: (f.status, f.omitted) for f in state.files}


def apply_to_base(repo: Repo, state: State, dest: Path) -> Path:
    """Rebuild ``state`` from its base tree and its diff, with git apply."""
    repo.export_base(dest)
    subprocess.run(
        ["git", "apply", "--whitespace=nowarn", "-"],
        cwd=dest,
        input=state.changes.diff.encode(),
        check=True,
        capture_output=True,
    )
    return dest


def test_modified_added_removed_untracked(repo: Repo, tmp_path: Path) -> None:
    repo.write("keep.py", "print('keep')\n")
    repo.write("edit.py", "x = 1\n")
    repo.write("gone.py", "y = 2\n")
    base = repo.commit("base")
    repo.write("edit.py", "x = 10\n")
    repo.remove("gone.py")
    repo.write("added.py", "z = 3\n")
    repo.add("added.py")
    repo.write("untracked.py", "w = 4\n")

    state = snap(repo)

    assert state.base_rev == base
    assert state.vcs == repo.kind
    assert by_path(state) == {
        "edit.py": ("M", None),
        "gone.py": ("R", None),
        "added.py": ("A", None),
        "untracked.py": ("?", None),
    }
    gone = next(f for f in state.files if f.path == "gone.py")
    assert gone.blob is None and gone.base_blob in state.changes.blobs
    assert state.changes.lines_added == 3 and state.changes.lines_removed == 2
    rebuilt = apply_to_base(repo, state, tmp_path / "rebuilt")
    for name in ("keep.py", "edit.py", "added.py", "untracked.py"):
        assert (rebuilt / name).read_bytes() == repo.read(name)
    assert not (rebuilt / "gone.py").exists()


def test_ignored_files_are_not_recorded(repo: Repo) -> None:
    repo.ignore("_build", "*.o")
    repo.write("main.c", "int main(void) { return 0; }\n")
    repo.commit()
    repo.write("_build/out.txt", "generated\n")
    repo.write("main.o", b"\x7fELF")
    repo.write("note.txt", "hello\n")
    assert set(by_path(snap(repo))) == {"note.txt"}


def test_repository_without_commits(repo: Repo, tmp_path: Path) -> None:
    repo.write("first.py", "print(1)\n")
    state = snap(repo)
    assert state.base_rev == NULL_REV
    assert by_path(state) == {"first.py": ("?", None)}
    assert "new file mode 100644" in state.changes.diff


def test_unchanged_tree_is_empty_and_stable(repo: Repo) -> None:
    repo.write("a.py", "a = 1\n")
    repo.commit()
    first, second = snap(repo), snap(repo)
    assert first.files == () and first.changes.diff == ""
    assert first.state_id == second.state_id
    repo.write("a.py", "a = 2\n")
    changed = snap(repo)
    assert changed.state_id != first.state_id
    repo.write("a.py", "a = 1\n")  # back to the base: same state as before
    assert snap(repo).state_id == first.state_id


def test_touched_but_identical_file_is_not_a_change(repo: Repo) -> None:
    repo.write("a.py", "a = 1\n")
    repo.commit()
    path = repo.path / "a.py"
    os.utime(path, (1, 1))  # stat differs from the VCS's cache, content does not
    assert snap(repo).files == ()


def test_awkward_file_names(repo: Repo, tmp_path: Path) -> None:
    repo.write("base.txt", "base\n")
    repo.commit()
    repo.write("with space.py", "a = 1\n")
    repo.write("naïve_ünïcode.py", "b = 2\n")
    raw = b"latin1-\xe9t\xe9.txt"
    repo.write(raw, "c = 3\n")
    state = snap(repo)
    paths = {f.path for f in state.files}
    assert "with space.py" in paths and "naïve_ünïcode.py" in paths
    weird = next(p for p in paths if p.startswith("latin1-"))
    assert to_bytes(weird) == raw
    rebuilt = apply_to_base(repo, state, tmp_path / "rebuilt")
    assert (rebuilt / os.fsdecode(raw)).read_bytes() == b"c = 3\n"
    assert (rebuilt / "naïve_ünïcode.py").read_text() == "b = 2\n"


def test_symlinks_are_recorded_as_links_not_followed(repo: Repo) -> None:
    repo.write("target.txt", "x" * 10)
    repo.commit()
    big = repo.path.parent / f"outside-{repo.kind}.bin"
    big.write_bytes(b"\0" * 4096)
    os.symlink(str(big), repo.path / "outside")
    os.symlink("loop-b", repo.path / "loop-a")
    os.symlink("loop-a", repo.path / "loop-b")
    state = snap(repo)
    records = {f.path: f for f in state.files}
    outside = records["outside"]
    assert outside.size == len(str(big)) and outside.omitted is None
    assert state.changes.blobs[outside.blob or ""] == os.fsencode(str(big))
    assert {"loop-a", "loop-b"} <= set(records)
    assert "new file mode 120000" in state.changes.diff


def test_binary_and_large_files_are_hashed_not_kept(repo: Repo) -> None:
    repo.write("small.txt", "fine\n")
    repo.commit()
    repo.write("image.png", b"\x89PNG\r\n\x1a\n\0\0\0")
    big = "line of text\n" * 2000  # 26 KB
    repo.write("big.txt", big)
    state = snap(repo, CaptureSettings(max_file_bytes=10_000))
    records = {f.path: f for f in state.files}
    assert records["image.png"].omitted == "binary"
    assert records["big.txt"].omitted == "too_large"
    assert records["big.txt"].size == len(big)
    # over the limit: never read, so recorded by size only (no hash)
    assert records["big.txt"].blob is None
    assert records["image.png"].blob not in state.changes.blobs
    assert "Binary files /dev/null and b/image.png differ" in state.changes.diff
    assert "line of text" not in state.changes.diff
    # with the default 1 MiB limit the same text file is kept
    assert next(f for f in snap(repo).files if f.path == "big.txt").omitted is None


def test_excluded_paths_are_never_opened(repo: Repo) -> None:
    repo.write("app.py", "print(1)\n")
    repo.commit()
    secret = repo.write(".env", "AWS_SECRET_ACCESS_KEY=abc123\n")
    repo.write("server.pem", "-----BEGIN PRIVATE KEY-----\n")
    opened: list[str] = []
    watched = {os.fsencode(secret), os.fsencode(repo.path / "server.pem")}

    def hook(event: str, args: tuple[object, ...]) -> None:
        path = args[0] if event == "open" and args else None
        if isinstance(path, str | bytes) and os.fsencode(path) in watched:
            opened.append(os.fsdecode(path))

    sys.addaudithook(hook)
    try:
        state = snap(repo)
    finally:
        watched.clear()  # audit hooks cannot be removed: disarm it
    assert opened == []
    records = {f.path: f for f in state.files}
    assert records[".env"].omitted == "excluded" and records[".env"].blob is None
    assert records["server.pem"].omitted == "excluded"
    assert "AWS_SECRET" not in state.changes.diff and "PRIVATE KEY" not in state.changes.diff
    assert all(b"AWS_SECRET" not in blob for blob in state.changes.blobs.values())


def test_merge_in_progress_is_diffed_against_first_parent(repo: Repo) -> None:
    repo.write("shared.txt", "one\ntwo\nthree\n")
    base = repo.commit("base")
    if repo.kind == "hg":
        repo.write("other.txt", "from the other head\n")
        repo.commit("other head")
        repo.vcs("update", "-r", base)
        repo.write("mine.txt", "mine\n")
        repo.commit("my head")
        mine = repo.vcs("log", "-r", ".", "-T", "{node}").strip()
        repo.vcs("merge", "-r", "1")
    else:
        repo.vcs("checkout", "-q", "-b", "other")
        repo.write("other.txt", "from the other head\n")
        repo.commit("other head")
        repo.vcs("checkout", "-q", "main")
        repo.write("mine.txt", "mine\n")
        mine = repo.commit("my head")
        repo.vcs("merge", "--no-commit", "--no-ff", "other")
    state = snap(repo)
    assert state.base_rev == mine
    assert by_path(state) == {"other.txt": ("A", None)}


def test_not_a_working_copy(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not inside a Mercurial or Git working copy"):
        open_backend(tmp_path)
    with pytest.raises(WorkspaceError, match="does not exist"):
        open_backend(tmp_path / "missing")


def test_rename_is_recorded_as_remove_plus_add(repo: Repo, tmp_path: Path) -> None:
    repo.write("old_name.py", "def f():\n    return 1\n")
    repo.commit()
    repo.vcs("mv", "old_name.py", "new_name.py")  # same verb in hg and git
    state = snap(repo)
    assert by_path(state) == {"old_name.py": ("R", None), "new_name.py": ("A", None)}
    rebuilt = apply_to_base(repo, state, tmp_path / "rebuilt")
    assert not (rebuilt / "old_name.py").exists()
    assert (rebuilt / "new_name.py").read_text() == "def f():\n    return 1\n"


def incremental(repo: Repo, since: State, paths: list[str]) -> State:
    backend = open_backend(repo.path)
    try:
        return capture(backend, CaptureSettings(), since=since, paths=[p.encode() for p in paths])
    finally:
        backend.close()


def same_state(a: State, b: State) -> None:
    assert a.state_id == b.state_id
    assert a.files == b.files
    assert a.changes.diff == b.changes.diff


def test_incremental_capture_matches_a_full_one(repo: Repo) -> None:
    repo.ignore("_build")
    repo.write("src/a.py", "a = 1\n")
    repo.write("src/b.py", "b = 1\n")
    repo.write("lib/c.py", "c = 1\n")
    repo.write("lib/d.py", "d = 1\n")
    repo.commit()
    state = snap(repo)
    steps: list[tuple[list[str], Any]] = [
        (["src/a.py"], lambda: repo.write("src/a.py", "a = 2\n")),
        (["src/new.py"], lambda: repo.write("src/new.py", "n = 1\n")),
        (["_build/out.o"], lambda: repo.write("_build/out.o", "ignored\n")),
        (["src/a.py"], lambda: repo.write("src/a.py", "a = 1\n")),  # back to base
        (["lib/"], lambda: shutil.rmtree(repo.path / "lib")),  # a whole directory goes
        (["pkg/"], lambda: (repo.write("pkg/x.py", "x = 1\n"), repo.write("pkg/y.py", "y\n"))),
        (["src/b.py"], lambda: repo.remove("src/b.py")),
    ]
    for paths, edit in steps:
        edit()
        state = incremental(repo, state, paths)
        same_state(state, snap(repo))
    assert {f.path for f in state.files} == {
        "src/new.py",
        "lib/c.py",
        "lib/d.py",
        "pkg/x.py",
        "pkg/y.py",
        "src/b.py",
    }


def test_incremental_capture_of_unlisted_paths_keeps_the_old_view(repo: Repo) -> None:
    repo.write("a.py", "a = 1\n")
    repo.commit()
    state = snap(repo)
    repo.write("a.py", "a = 2\n")
    # the monitor reported nothing: the state is reused as it was (no VCS walk)
    assert incremental(repo, state, []).state_id == state.state_id


def test_ignored_paths_and_directories(repo: Repo) -> None:
    repo.ignore("_build", "*.o")
    repo.write("main.c", "int x;\n")
    repo.commit()
    repo.write("_build/deep/out.txt", "x\n")
    repo.write("main.o", "x\n")
    backend = open_backend(repo.path)
    try:
        ignored = backend.ignored([b"_build", b"_build/deep/out.txt", b"main.o", b"main.c"])
        assert ignored == {b"_build", b"_build/deep/out.txt", b"main.o"}
        assert backend.tracked_under([b"nothing-here"]) == []
    finally:
        backend.close()


def test_incremental_capture_knows_added_from_untracked(repo: Repo) -> None:
    repo.write("base.py", "b = 1\n")
    repo.commit()
    state = snap(repo)
    repo.write("staged.py", "s = 1\n")
    repo.add("staged.py")
    repo.write("loose.py", "l = 1\n")
    state = incremental(repo, state, ["staged.py", "loose.py"])
    assert by_path(state) == {"staged.py": ("A", None), "loose.py": ("?", None)}
    same_state(state, snap(repo))


@pytest.mark.parametrize("setup", ["loose", "packed", "detached", "unborn"])
def test_git_base_read_from_files_matches_git(tmp_path: Path, setup: str) -> None:
    from snapshotter.vcs.git import GitBackend

    repo = Repo("git", tmp_path / "ws")
    if setup != "unborn":
        repo.write("a.txt", "a\n")
        first = repo.commit()
        repo.write("a.txt", "b\n")
        repo.commit()
    if setup == "packed":
        repo.vcs("pack-refs", "--all")
    if setup == "detached":
        repo.vcs("checkout", "-q", first)
    backend = GitBackend(repo.path.resolve())
    from_files = backend._base_from_files()
    assert from_files is not None
    assert from_files == backend._base_from_git()
