"""A scratch tree that remembers what it changed, so it can be put back.

A warm worker keeps one copy of a base revision with its build products, and
moves it from episode to episode.  Every change goes through :class:`ScratchTree`:
the first time a path is written, removed or named by a diff, its original
(content and mode, a symlink's target, or absence) is remembered; :meth:`revert`
restores exactly those paths and removes the directories the changes created.
Build products are never touched, so the next build is incremental.

Writes replace the file (never write through a symlink) and give it a fresh
mtime, so make and dune see the change.  A path that would leave the tree
(absolute, ``..``, or under a symlinked directory) is refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# a patch that hangs (it never should) must not hang a worker
_PATCH_TIMEOUT_S = 60


@dataclass(frozen=True)
class _Original:
    """A path's state before the first change: a file, a symlink, or nothing."""

    content: bytes | None  # file bytes or symlink target; None: the path did not exist
    mode: int = 0o644
    link: bool = False


class UnsafePathError(ValueError):
    """A path that would leave the scratch tree."""


class ScratchTree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._originals: dict[str, _Original] = {}
        self._made_dirs: list[Path] = []

    @property
    def changed(self) -> bool:
        return bool(self._originals)

    def _target(self, path: str) -> Path:
        parts = Path(path).parts
        if not parts or Path(path).is_absolute() or ".." in parts:
            raise UnsafePathError(f"path leaves the scratch tree: {path!r}")
        target = self.root.joinpath(*parts)
        real_parent = os.path.realpath(target.parent)
        real_root = os.path.realpath(self.root)
        if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
            raise UnsafePathError(f"path leaves the scratch tree: {path!r}")
        return target

    def _remember(self, path: str) -> Path:
        target = self._target(path)
        if path not in self._originals:
            self._originals[path] = _read(target)
        return target

    def write(self, path: str, content: bytes | None) -> None:
        """Give ``path`` this content (None: remove it)."""
        target = self._remember(path)
        _clear(target)
        if content is None:
            return
        self._make_parents(target.parent)
        target.write_bytes(content)

    def lay(self, files: Mapping[str, bytes | None]) -> None:
        for path, content in files.items():
            self.write(path, content)

    def _make_parents(self, directory: Path) -> None:
        for made in reversed(_missing_ancestors(directory)):
            made.mkdir()
            self._made_dirs.append(made)

    def apply(self, diff: str) -> str | None:
        """Apply a git-style diff with ``patch``; None when it applied, else why not.

        Every path the diff names is remembered first; a diff that fails leaves
        the tree as it was (a dry run goes first).
        """
        try:
            for path in diff_paths(diff):
                self._remember(path)
        except UnsafePathError as exc:
            return str(exc)
        # directories that do not exist yet: patch may create them for new files
        missing = [
            directory
            for path, original in self._originals.items()
            if original.content is None
            for directory in _missing_ancestors(self._target(path).parent)
        ]
        base = ["patch", "-p1", "--batch", "--forward", "--silent", "--no-backup-if-mismatch"]
        for extra in (["--dry-run"], ["--reject-file=-"]):
            try:
                done = subprocess.run(
                    [*base, *extra],
                    cwd=self.root,
                    input=diff.encode(),
                    capture_output=True,
                    timeout=_PATCH_TIMEOUT_S,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"cannot run patch: {exc}"
            if done.returncode != 0:
                message = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
                return f"patch failed ({done.returncode}): {message}"
        self._made_dirs.extend(d for d in dict.fromkeys(missing) if d.is_dir())
        return None

    def revert(self) -> None:
        """Put every changed path back as it was; remove the directories changes made."""
        for path, original in self._originals.items():
            target = self._target(path)
            if _read(target) == original:
                continue
            _clear(target)
            if original.content is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if original.link:
                os.symlink(os.fsdecode(original.content), target)
            else:
                target.write_bytes(original.content)
                target.chmod(original.mode)
        for directory in sorted(set(self._made_dirs), key=lambda d: len(d.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty: build products may live there
        self._originals.clear()
        self._made_dirs.clear()


def _missing_ancestors(directory: Path) -> list[Path]:
    """``directory`` and its parents that do not exist, deepest first."""
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        directory = directory.parent
    return missing


def _read(target: Path) -> _Original:
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return _Original(None)
    if stat.S_ISLNK(info.st_mode):
        return _Original(os.fsencode(os.readlink(target)), link=True)
    if stat.S_ISDIR(info.st_mode):
        return _Original(None)  # a directory where the state wants a file: not ours to keep
    return _Original(target.read_bytes(), stat.S_IMODE(info.st_mode))


def _clear(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)


_HEADER = re.compile(r"^diff --git (\"?a/.*) (\"?b/.*)$", re.MULTILINE)
_FILE_LINE = re.compile(r"^(?:---|\+\+\+) (\"?[ab]/[^\t\n]*)", re.MULTILINE)
_RENAME = re.compile(r"^(?:rename|copy) (?:from|to) (.*)$", re.MULTILINE)


def diff_paths(diff: str) -> list[str]:
    """Every path a git-style diff names, old and new sides, without ``a/`` ``b/``."""
    found: dict[str, None] = {}
    names: Iterable[str] = [
        *(name for match in _HEADER.finditer(diff) for name in match.groups()),
        *_FILE_LINE.findall(diff),
    ]
    for name in names:
        plain = _unquote(name)
        if plain.startswith(("a/", "b/")):
            found[plain[2:]] = None
    for name in _RENAME.findall(diff):
        found[_unquote(name)] = None
    return list(found)


def _unquote(name: str) -> str:
    """A path as git prints it, quoted C-style when it has unusual bytes."""
    if not (len(name) >= 2 and name.startswith('"') and name.endswith('"')):
        return name
    raw = name[1:-1].encode("latin-1", "backslashreplace")
    decoded = raw.decode("unicode_escape").encode("latin-1")
    return decoded.decode("utf-8", "surrogateescape")
