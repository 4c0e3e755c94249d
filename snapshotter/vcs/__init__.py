"""VCS backends behind one small protocol; ``open_backend`` picks by the working copy.

Backends are imported on first use: importing Mercurial costs about half a
second, which a Git-only user should never pay.
"""

from __future__ import annotations

from pathlib import Path

from snapshotter.vcs.base import BACKENDS, VcsBackend, find_root


def _git(root: Path) -> VcsBackend:
    from snapshotter.vcs.git import GitBackend

    return GitBackend(root)


def _hg(root: Path) -> VcsBackend:
    from snapshotter.vcs.hg import HgBackend

    return HgBackend(root)


BACKENDS.setdefault("git", _git)
BACKENDS.setdefault("hg", _hg)


def open_backend(workspace: Path) -> VcsBackend:
    root, name = find_root(workspace)
    return BACKENDS[name](root)


__all__ = ["BACKENDS", "VcsBackend", "open_backend"]
