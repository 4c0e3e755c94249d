"""A revision's tree, exported from a repository without writing to it.

Git: ``git ls-tree -r`` names every file of the revision and one ``git cat-file
--batch`` streams their contents, so the tree is exactly the commit's (no
``.gitattributes`` export filters, which a plain ``git archive`` would apply),
and nothing is written under ``.git`` (optional locks off).  Mercurial:
``hg archive -r REV`` with the repository's own ``.hg/hgrc`` skipped, since a
file inside a repository must never decide what runs (a ``pre-archive`` hook).
Symlinks are exported as symlinks and executable bits are kept; submodules are
left out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from miner.errors import MinerError

_GIT_ENV = {
    **os.environ,
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}
_HG_ENV = {**os.environ, "HGPLAIN": "1", "HGRCSKIPREPO": "1"}
_HG = [sys.executable, "-m", "mercurial"]
_GIT = ["git", "-c", "core.fsmonitor=false"]
_ARCHIVAL = ".hg_archival.txt"


class ExportError(MinerError):
    """The revision's tree cannot be read from the repository."""


def is_repository(vcs: str, path: Path) -> bool:
    """Whether ``path`` is the root of a working copy (or bare repository) of kind ``vcs``."""
    if vcs == "hg":
        return (path / ".hg").is_dir()
    if vcs == "git":
        return (path / ".git").exists() or (
            (path / "HEAD").is_file() and (path / "objects").is_dir()
        )
    return False


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, stdin=subprocess.DEVNULL, check=False
        )
    except OSError as exc:
        raise ExportError(f"cannot run {args[0]}: {exc.strerror or exc}") from exc


def _first_line(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[0] if lines else "no message"


def has_revision(vcs: str, repo: Path, rev: str) -> bool:
    """Whether ``repo`` holds the revision ``rev`` (a full hash)."""
    try:
        if vcs == "git":
            done = _run([*_GIT, "cat-file", "-e", f"{rev}^{{commit}}"], repo, _GIT_ENV)
        elif vcs == "hg":
            done = _run([*_HG, "log", "-r", rev, "-T", "{node}"], repo, _HG_ENV)
            return done.returncode == 0 and done.stdout.decode().strip() == rev
        else:
            return False
    except ExportError:
        return False
    return done.returncode == 0


def export_revision(vcs: str, repo: Path, rev: str, dest: Path) -> None:
    """Write the tree of ``rev`` into the new directory ``dest``."""
    if vcs == "git":
        _export_git(repo, rev, dest)
    elif vcs == "hg":
        _export_hg(repo, rev, dest)
    else:
        raise ExportError(f"unknown version control system {vcs!r}")


def _export_hg(repo: Path, rev: str, dest: Path) -> None:
    done = _run(
        [*_HG, "--config", "ui.archivemeta=false", "archive", "-r", rev, "-t", "files", str(dest)],
        repo,
        _HG_ENV,
    )
    if done.returncode != 0:
        raise ExportError(f"hg archive -r {rev[:12]} failed in {repo}: {_first_line(done.stderr)}")
    (dest / _ARCHIVAL).unlink(missing_ok=True)


def _export_git(repo: Path, rev: str, dest: Path) -> None:
    listing = _run([*_GIT, "ls-tree", "-r", "-z", "--full-tree", rev], repo, _GIT_ENV)
    if listing.returncode != 0:
        raise ExportError(f"git ls-tree {rev[:12]} failed in {repo}: {_first_line(listing.stderr)}")
    entries: list[tuple[str, str, bytes]] = []  # mode, object id, path
    for record in listing.stdout.split(b"\0"):
        if not record:
            continue
        meta, path = record.split(b"\t", 1)
        mode, kind, oid = meta.decode().split()
        if kind == "blob":
            entries.append((mode, oid, path))
    batch = "".join(f"{oid}\n" for _mode, oid, _path in entries).encode()
    try:
        done = subprocess.run(
            [*_GIT, "cat-file", "--batch"],
            cwd=repo,
            env=_GIT_ENV,
            input=batch,
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise ExportError(f"cannot run git: {exc.strerror or exc}") from exc
    if done.returncode != 0:
        raise ExportError(f"git cat-file failed in {repo}: {_first_line(done.stderr)}")
    dest.mkdir(parents=True)
    out, at = done.stdout, 0
    for mode, _oid, path in entries:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        content = out[header_end + 1 : header_end + 1 + size]
        at = header_end + 1 + size + 1
        target = dest / os.fsdecode(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            os.symlink(os.fsdecode(content), target)
        else:
            target.write_bytes(content)
            if mode == "100755":
                target.chmod(0o755)
