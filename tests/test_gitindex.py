"""Git's index read by our own parser agrees with ``git ls-files``, in every index version."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from snapshotter.vcs.gitindex import IndexPaths, parse_index
from tests.repos import Repo


def ls_files(repo: Repo) -> frozenset[bytes]:
    out = subprocess.run(
        ["git", "-C", str(repo.path), "ls-files", "-z"], capture_output=True, check=True
    ).stdout
    return frozenset(p for p in out.split(b"\0") if p)


@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_parsed_paths_equal_ls_files(tmp_path: Path, version: str) -> None:
    repo = Repo("git", tmp_path / "ws")
    for name in ("a.txt", "dir/b c.txt", "dir/sub/deeper/long-name.py", "naïve.txt"):
        repo.write(name, "x\n")
    repo.write(b"raw-\xff.txt", "y\n")
    repo.commit()
    repo.write("intent.txt", "later\n")
    repo.vcs("add", "-N", "intent.txt")  # an extended-flags entry (index v3+)
    repo.vcs("update-index", "--index-version", version)
    parsed = parse_index((repo.path / ".git" / "index").read_bytes())
    assert parsed == ls_files(repo) and b"intent.txt" in parsed


def test_cache_follows_the_index_file(tmp_path: Path) -> None:
    repo = Repo("git", tmp_path / "ws")
    index = IndexPaths(repo.path / ".git")
    assert index.get() == frozenset()  # no index yet
    repo.write("a.txt", "a\n")
    repo.add("a.txt")
    assert index.get() is None  # just changed: git answers this time
    assert index.get() == {b"a.txt"}  # unchanged since: parsed, then from memory
    assert index.get() == {b"a.txt"}
    repo.write("b.txt", "b\n")
    repo.add("b.txt")
    assert index.get() is None
    assert index.get() == {b"a.txt", b"b.txt"}


def test_garbage_is_not_understood() -> None:
    assert parse_index(b"") is None
    assert parse_index(b"DIRC\x00\x00\x00\x09" + bytes(8)) is None
    assert parse_index(os.urandom(200)) is None
