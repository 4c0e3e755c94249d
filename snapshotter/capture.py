"""Capture a workspace state: base revision, changed files, their blobs, the diff.

The VCS backend says which paths *may* differ from the base; capture reads
each of them (never following symlinks: a link is recorded as its target
text), hashes the content and compares it with the base's, so a path is
recorded only when it really differs.  Content is kept only for text files
within the size limit; binary and large files are recorded with hash and
size and ``omitted`` set, and excluded paths (secrets) are never opened.

``state_id`` hashes (base rev, sorted (path, content hash)), so equal ids mean
equal content, whichever VCS and whichever order the files were seen in.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snapshotter import pathnames
from snapshotter.textdiff import Side, file_diff, is_binary
from snapshotter.vcs.base import RevFile, VcsBackend

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".env*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_ed25519*",
    "id_ecdsa*",
    ".netrc",
    ".pgpass",
    "*.p12",
    "*.pfx",
)


@dataclass(frozen=True)
class CaptureSettings:
    max_file_bytes: int = MIB
    # globs matched against the file name and against the whole relative path
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES

    def excluded(self, path: str) -> bool:
        name = path.rsplit("/", 1)[-1]
        return any(
            fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(path, pattern)
            for pattern in self.exclude
        )


@dataclass(frozen=True)
class FileRecord:
    """One entry of a snapshot's ``files`` list."""

    path: str
    status: str  # M, A, R, ?
    blob: str | None
    base_blob: str | None
    size: int | None
    omitted: str | None

    def as_row(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "blob": self.blob,
            "base_blob": self.base_blob,
            "size": self.size,
            "omitted": self.omitted,
        }


@dataclass(frozen=True)
class Content:
    """What capture learned about one side of a path."""

    digest: str | None  # sha256 hex; None when not looked at (excluded)
    size: int
    is_link: bool
    data: bytes | None  # kept bytes; None when omitted
    omitted: str | None = None


@dataclass(frozen=True)
class Changes:
    """Paths that differ between two sides, with their diff and the blobs to store."""

    files: tuple[FileRecord, ...]
    diff: str
    lines_added: int
    lines_removed: int
    blobs: dict[str, bytes] = field(repr=False)


@dataclass(frozen=True)
class State:
    vcs: str
    workspace: str
    base_rev: str
    branch: str | None
    read_at: datetime
    changes: Changes
    state_id: str

    @property
    def files(self) -> tuple[FileRecord, ...]:
        return self.changes.files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compute_state_id(base_rev: str, files: Iterable[FileRecord], extra: Iterable[str] = ()) -> str:
    h = hashlib.sha256(base_rev.encode())
    for record in sorted(files, key=lambda r: r.path):
        h.update(b"\n" + record.path.encode() + b"\0" + (record.blob or "-").encode())
    for item in sorted(extra):
        h.update(b"\n" + item.encode())
    return h.hexdigest()


def _read_working(root: Path, raw: bytes, settings: CaptureSettings) -> Content | None:
    """The working copy's side of a path, or None when there is no file there."""
    full = os.path.join(bytes(root), raw)
    try:
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(full)
            return Content(sha256(target), len(target), True, target)
        if not stat.S_ISREG(st.st_mode):
            return None  # a directory (nested repository) or a special file
        if st.st_size > settings.max_file_bytes:
            h = hashlib.sha256()
            size = 0
            with open(full, "rb") as f:
                while chunk := f.read(MIB):
                    h.update(chunk)
                    size += len(chunk)
            return Content(h.hexdigest(), size, False, None, "too_large")
        with open(full, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None  # deleted between listing and reading
    except OSError as exc:
        log.warning(
            "cannot read %s: %s; left out of this snapshot",
            full.decode(errors="replace"),
            exc.strerror,
        )
        raise _Unreadable from exc
    if len(data) > settings.max_file_bytes:  # grew while we read it
        return Content(sha256(data), len(data), False, None, "too_large")
    if is_binary(data):
        return Content(sha256(data), len(data), False, None, "binary")
    return Content(sha256(data), len(data), False, data)


class _Unreadable(Exception):
    pass


def _rev_side(revfile: RevFile, data: bytes, settings: CaptureSettings) -> Content:
    if not revfile.is_link and len(data) > settings.max_file_bytes:
        return Content(sha256(data), len(data), False, None, "too_large")
    if not revfile.is_link and is_binary(data):
        return Content(sha256(data), len(data), False, None, "binary")
    return Content(sha256(data), len(data), revfile.is_link, data)


def _rev_sides(
    backend: VcsBackend, rev: str, paths: Sequence[bytes], settings: CaptureSettings
) -> dict[bytes, Content]:
    """Each path's side in ``rev``; excluded paths are listed but never read."""
    files = backend.rev_files(rev, paths)
    readable = {p: f for p, f in files.items() if not settings.excluded(pathnames.to_record(p))}
    contents = backend.rev_contents(rev, readable.values())
    sides: dict[bytes, Content] = {}
    for path, revfile in files.items():
        if path in readable:
            sides[path] = _rev_side(revfile, contents[revfile.key], settings)
        else:
            sides[path] = Content(None, revfile.size, revfile.is_link, None, "excluded")
    return sides


def _status(old: Content | None, new: Content | None, tracked: bool) -> str | None:
    if old is None and new is None:
        return None
    if old is None:
        return "A" if tracked else "?"
    if new is None:
        return "R"
    if old.digest is not None and old.digest == new.digest and old.is_link == new.is_link:
        return None
    return "M"


def _side(content: Content | None) -> Side:
    if content is None:
        return Side(None)
    if content.data is None:
        return Side(b"", is_link=content.is_link, opaque=True)
    return Side(content.data, is_link=content.is_link)


def compare(
    pairs: Iterable[tuple[bytes, Content | None, Content | None, bool]],
) -> Changes:
    """Records, diff and blobs for (path, old side, new side, tracked) tuples."""
    records: list[FileRecord] = []
    blobs: dict[str, bytes] = {}
    diff_parts: list[str] = []
    added = removed = 0
    for raw, old, new, tracked in sorted(pairs, key=lambda item: item[0]):
        status = _status(old, new, tracked)
        if status is None:
            continue
        path = pathnames.to_record(raw)
        omitted = next((s.omitted for s in (new, old) if s is not None and s.omitted), None)
        records.append(
            FileRecord(
                path=path,
                status=status,
                blob=new.digest if new is not None else None,
                base_blob=old.digest if old is not None else None,
                size=new.size if new is not None else None,
                omitted=omitted,
            )
        )
        if omitted == "excluded":
            continue  # not even a "Binary files differ" line: the diff says nothing of it
        if omitted is None:
            for side in (old, new):
                if side is not None and side.digest is not None and side.data is not None:
                    blobs[side.digest] = side.data
            piece = file_diff(path, _side(old), _side(new))
        else:
            piece = file_diff(
                path,
                Side(None) if old is None else Side(b"", old.is_link, opaque=True),
                Side(None) if new is None else Side(b"", new.is_link, opaque=True),
            )
        diff_parts.append(piece.text)
        added += piece.added
        removed += piece.removed
    return Changes(tuple(records), "".join(diff_parts), added, removed, blobs)


def capture(backend: VcsBackend, settings: CaptureSettings) -> State:
    """Read the workspace now: everything that differs from its base."""
    backend.refresh()
    base = backend.base()
    read_at = datetime.now(UTC)
    candidates = {c.path: c.tracked for c in backend.candidates()}
    paths = sorted(candidates)
    base_sides = _rev_sides(backend, base.rev, paths, settings)
    pairs: list[tuple[bytes, Content | None, Content | None, bool]] = []
    extra: list[str] = []
    for raw in paths:
        path = pathnames.to_record(raw)
        if settings.excluded(path):
            working = _stat_only(backend.root, raw)
            if working is not None:
                # never opened; its stat stands in for content in the state id
                extra.append(f"{path}\0excluded:{working[0]}:{working[1]}")
                new: Content | None = Content(None, working[0], False, None, "excluded")
            else:
                new = None
            old = base_sides.get(raw)
            if old is not None and new is not None:
                old = Content(None, old.size, old.is_link, None, "excluded")
        else:
            try:
                new = _read_working(backend.root, raw, settings)
            except _Unreadable:
                continue
            old = base_sides.get(raw)
        pairs.append((raw, old, new, candidates[raw]))
    changes = compare(pairs)
    # an excluded file present on both sides is "M" even if unchanged: we cannot know
    return State(
        vcs=backend.name,
        workspace=str(backend.root),
        base_rev=base.rev,
        branch=base.branch,
        read_at=read_at,
        changes=changes,
        state_id=compute_state_id(base.rev, changes.files, extra),
    )


def _stat_only(root: Path, raw: bytes) -> tuple[int, int] | None:
    try:
        st = os.lstat(os.path.join(bytes(root), raw))
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def base_change(
    backend: VcsBackend, old_rev: str, new_rev: str, settings: CaptureSettings
) -> Changes | None:
    """What changed between two base revisions, so states on both sides stay rebuildable.

    None when ``old_rev`` is no longer known to the repository.
    """
    paths = backend.changed_between(old_rev, new_rev)
    if paths is None:
        return None
    old_sides = _rev_sides(backend, old_rev, paths, settings)
    new_sides = _rev_sides(backend, new_rev, paths, settings)
    return compare((p, old_sides.get(p), new_sides.get(p), True) for p in paths)
