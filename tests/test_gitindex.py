"""Git's index read by our own parser agrees with ``git ls-files``, in every index version."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from snapshotter.vcs.gitindex import IndexPaths, parse_index, search_index
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


@pytest.mark.parametrize("version", ["2", "3"])
def test_searched_names_equal_ls_files(tmp_path: Path, version: str) -> None:
    repo = Repo("git", tmp_path / "ws")
    tracked = ["a.py", "dir/a.py", "dir/sub/a.py"]
    for name in tracked:
        repo.write(name, "x\n")
    repo.commit()
    # a path past the flags' 12-bit length, too long for the disk: an index entry only
    long_dir = "/".join(["d" * 200] * 25)
    blob = repo.vcs("hash-object", "-w", "a.py").strip()
    repo.vcs("update-index", "--add", "--cacheinfo", f"100644,{blob},{long_dir}/x.txt")
    tracked.append(long_dir + "/x.txt")
    repo.write("intent.txt", "later\n")
    repo.vcs("add", "-N", "intent.txt")  # an extended-flags entry in v3
    repo.vcs("update-index", "--index-version", version)
    # names that occur inside tracked paths but are not entries themselves
    untracked = ["sub/a.py", "ir/a.py", "a.p", "txt", "dir", long_dir[-4000:] + "/x.txt"]
    asked = [n.encode() for n in [*tracked, "intent.txt", *untracked]]
    data = (repo.path / ".git" / "index").read_bytes()
    assert search_index(data, asked) == set(asked) & ls_files(repo)
    assert search_index(data, asked) == {n.encode() for n in [*tracked, "intent.txt"]}


def test_just_changed_index_is_searched_not_left_to_git(tmp_path: Path) -> None:
    repo = Repo("git", tmp_path / "ws")
    index = IndexPaths(repo.path / ".git")
    repo.write("a.txt", "a\n")
    repo.write("b.txt", "b\n")
    repo.add("a.txt")
    assert index.tracked_among([b"a.txt", b"b.txt"]) == {b"a.txt"}
    repo.vcs("update-index", "--index-version", "4")
    assert index.tracked_among([b"a.txt"]) is None  # v4 just changed: names not searchable
    assert index.tracked_among([b"a.txt"]) == {b"a.txt"}  # seen unchanged: parsed


def test_garbage_is_not_searched() -> None:
    assert search_index(b"", [b"a"]) is None
    assert search_index(os.urandom(200), [b"a"]) is None
