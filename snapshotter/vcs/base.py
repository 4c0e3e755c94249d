"""What capture needs from a version-control system, and the registry of backends.

A backend answers four questions about a working copy, all in raw bytes
paths relative to its root:

- which revision is the base (the working copy's parent) and on which branch;
- which paths *may* differ from the base (modified, added, removed, untracked
  and not ignored): the VCS knows its ignore rules and its stat cache;
- what a path looked like in a revision (size, link or not, content);
- which paths differ between two revisions (to record a base change).

Capture decides the rest (reading, hashing, classifying) the same way for
every backend, so hg and git states mean exactly the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from snapshotter.errors import WorkspaceError

NULL_REV = "0" * 40


@dataclass(frozen=True)
class BaseInfo:
    rev: str  # full hex hash; NULL_REV when the repository has no commit yet
    branch: str | None


@dataclass(frozen=True)
class Candidate:
    """A path that may differ from the base; ``tracked`` is False for untracked files."""

    path: bytes
    tracked: bool


@dataclass(frozen=True)
class RevFile:
    """A file as it is in a revision."""

    size: int
    is_link: bool
    key: bytes  # backend-specific handle to fetch the content (git oid, hg path)


class VcsBackend(Protocol):
    name: str
    root: Path

    def refresh(self) -> None:
        """Forget cached repository state; called at the start of every capture."""
        ...

    def base(self) -> BaseInfo: ...

    def candidates(self, paths: Sequence[bytes] | None = None) -> list[Candidate]:
        """Paths that may differ from the base; with ``paths``, only among those files.

        Asked with k paths it must cost O(k), not O(repository): this is the
        tick path.
        """
        ...

    def tracked_under(self, dirs: Sequence[bytes]) -> list[bytes]:
        """Tracked files below these directories (which may no longer exist)."""
        ...

    def ignored(self, paths: Sequence[bytes]) -> set[bytes]:
        """Which of these paths (files or directories) the VCS ignores."""
        ...

    def rev_files(self, rev: str, paths: Sequence[bytes]) -> dict[bytes, RevFile]: ...

    def rev_contents(self, rev: str, files: Iterable[RevFile]) -> dict[bytes, bytes]:
        """Content per ``RevFile.key``."""
        ...

    def changed_between(self, old_rev: str, new_rev: str) -> list[bytes] | None:
        """Paths that differ between two revisions; None when ``old_rev`` is unknown."""
        ...

    def close(self) -> None: ...


BackendFactory = Callable[[Path], VcsBackend]

# name -> factory; filled by the backend modules (see snapshotter.vcs.open_backend)
BACKENDS: dict[str, BackendFactory] = {}

# marker directory -> backend name, checked from the workspace upwards
MARKERS: dict[str, str] = {".hg": "hg", ".git": "git"}


def find_root(path: Path) -> tuple[Path, str]:
    """The working copy root containing ``path`` and the name of its VCS."""
    try:
        start = path.resolve(strict=True)
    except OSError as exc:
        raise WorkspaceError(f"workspace {path} does not exist or cannot be read") from exc
    if not start.is_dir():
        raise WorkspaceError(f"workspace {path} is not a directory")
    for candidate in (start, *start.parents):
        for marker, name in MARKERS.items():
            if (candidate / marker).exists():
                return candidate, name
    raise WorkspaceError(f"{path} is not inside a Mercurial or Git working copy")
