"""Capture a workspace state: base revision, changed files, their blobs, the diff.

The VCS backend says which paths *may* differ from the base; capture reads
each of them (never following symlinks: a link is recorded as its target
text), hashes the content and compares it with the base's, so a path is
recorded only when it really differs.  Content is kept only for text files
within the size limit; binary and large files are recorded with hash and
size and ``omitted`` set, and excluded paths (secrets) are never opened.  Kept content is redacted
(``snapshotter.redact``) before it is hashed, so blobs, diffs and state ids
never carry a secret; both sides of a path are redacted alike, so a change
to a secret's value alone is not a change of state.

Hostile working copies are met cheaply, on the tick path:

- a file over the size limit is never read, on either side (a sparse 2 GB
  file costs one ``lstat``): it is recorded by size with ``omitted =
  too_large`` and no blob, and its (size, mtime) stand in for its content in
  the state id, as an excluded file's do.  So a touch of such a file without
  a change can read as a change (``M``, size only);
- a file is read at most ``max_file_bytes + 1`` bytes, so one that grows
  between its ``lstat`` and its read is still not read whole;
- a file deleted between the VCS's listing and the read is simply absent; an
  unreadable one (permissions) is left out with one warning;
- a nested repository (a directory below the root holding ``.hg`` or
  ``.git``) is a working copy of its own: nothing below it is recorded as the
  outer one's, nor anything inside a ``.hg``/``.git`` directory;
- a workspace whose root went away raises ``WorkspaceError`` at once.

``state_id`` hashes (base rev, sorted (path, content hash)), so equal ids mean
equal content, whichever VCS and whichever order the files were seen in.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import logging
import os
import re
import stat
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snapshotter import pathnames
from snapshotter.errors import WorkspaceError
from snapshotter.redact import redact_bytes
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
        matcher = _globs_matcher(self.exclude)
        if matcher is None:
            return False
        name = path.rsplit("/", 1)[-1]
        return matcher.match(name) is not None or matcher.match(path) is not None


@functools.lru_cache(maxsize=16)
def _globs_matcher(globs: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for ``fnmatchcase`` against any of the globs: a branch switch asks per path."""
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(glob)})" for glob in globs))


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
    # mtime_ns of a file never read (excluded, too large): its stat stands in for its content
    id_hint: int = 0


@dataclass(frozen=True)
class Entry:
    """One path that differs: its record, its piece of the diff, its blobs.

    A state keeps its entries by raw path so that the next tick re-reads only
    the paths that changed and reuses the rest (cost follows change).
    """

    record: FileRecord
    diff: str
    added: int
    removed: int
    blobs: dict[str, bytes] = field(repr=False)
    # stands in for content in the state id when the content is never read
    id_extra: str | None = None


@dataclass(frozen=True)
class Changes:
    """Paths that differ between two sides, with their diff and the blobs to store."""

    files: tuple[FileRecord, ...]
    diff: str
    lines_added: int
    lines_removed: int
    blobs: dict[str, bytes] = field(repr=False)
    entries: dict[bytes, Entry] = field(repr=False, default_factory=dict)

    @classmethod
    def of(cls, entries: dict[bytes, Entry]) -> Changes:
        ordered = [entries[raw] for raw in sorted(entries)]
        blobs: dict[str, bytes] = {}
        for entry in ordered:
            blobs.update(entry.blobs)
        return cls(
            files=tuple(e.record for e in ordered),
            diff="".join(e.diff for e in ordered),
            lines_added=sum(e.added for e in ordered),
            lines_removed=sum(e.removed for e in ordered),
            blobs=blobs,
            entries=entries,
        )


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
    limit = settings.max_file_bytes
    try:
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            target = redact_bytes(os.readlink(full))
            return Content(sha256(target), len(target), True, target)
        if not stat.S_ISREG(st.st_mode):
            return None  # a directory (nested repository) or a special file
        if st.st_size > limit:
            # never read: hashing a 2 GB file would stall the tick for seconds
            return Content(None, st.st_size, False, None, "too_large", st.st_mtime_ns)
        with open(full, "rb") as f:
            data = f.read(limit + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None  # deleted (or its directory replaced) between listing and reading
    except OSError as exc:
        log.warning(
            "cannot read %s: %s; left out of this snapshot",
            full.decode(errors="replace"),
            exc.strerror,
        )
        raise _Unreadable from exc
    if len(data) > limit:  # grew between lstat and read: the rest stays unread
        return Content(None, max(len(data), st.st_size), False, None, "too_large", st.st_mtime_ns)
    if is_binary(data):
        return Content(sha256(data), len(data), False, None, "binary")
    # secrets never reach the spool: what is hashed, diffed and stored is redacted
    data = redact_bytes(data)
    return Content(sha256(data), len(data), False, data)


class _Unreadable(Exception):
    pass


def _too_large(revfile: RevFile, settings: CaptureSettings) -> bool:
    return not revfile.is_link and revfile.size > settings.max_file_bytes


def _rev_side(revfile: RevFile, data: bytes, settings: CaptureSettings) -> Content:
    if not revfile.is_link and is_binary(data):
        return Content(sha256(data), len(data), False, None, "binary")
    data = redact_bytes(data)
    return Content(sha256(data), len(data), revfile.is_link, data)


def _record_names(paths: Iterable[bytes]) -> dict[bytes, str]:
    """Each raw path's recorded name, worked out once: it is redacted, so not free."""
    return {raw: pathnames.to_record(raw) for raw in paths}


# paths asked of the backend at a time: it may hold on to each file between
# rev_files and rev_contents (hg keeps the filelog it opened to size the file,
# ~4 KB), so a branch switch of 100,000 files holds one batch's worth of them
_REV_BATCH = 2000


def _rev_sides(
    backend: VcsBackend,
    rev: str,
    paths: Sequence[bytes],
    settings: CaptureSettings,
    names: Mapping[bytes, str],
) -> dict[bytes, Content]:
    """Each path's side in ``rev``; excluded paths are listed but never read."""
    sides: dict[bytes, Content] = {}
    for start in range(0, len(paths), _REV_BATCH):
        batch = paths[start : start + _REV_BATCH]
        sides.update(_rev_batch_sides(backend, rev, batch, settings, names))
    return sides


def _rev_batch_sides(
    backend: VcsBackend,
    rev: str,
    paths: Sequence[bytes],
    settings: CaptureSettings,
    names: Mapping[bytes, str],
) -> dict[bytes, Content]:
    files = backend.rev_files(rev, paths)
    excluded = {p for p in files if settings.excluded(names[p])}
    readable = {p: f for p, f in files.items() if p not in excluded and not _too_large(f, settings)}
    # a file over the limit is not even fetched: its size is all the record keeps
    contents = backend.rev_contents(rev, readable.values())
    sides: dict[bytes, Content] = {}
    for path, revfile in files.items():
        if path in readable:
            sides[path] = _rev_side(revfile, contents[revfile.key], settings)
        elif path in excluded:
            sides[path] = Content(None, revfile.size, revfile.is_link, None, "excluded")
        else:
            sides[path] = Content(None, revfile.size, False, None, "too_large")
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


def _entry(path: str, old: Content | None, new: Content | None, tracked: bool) -> Entry | None:
    """The entry of the path recorded as ``path``, or None when its sides do not differ."""
    status = _status(old, new, tracked)
    if status is None:
        return None
    omitted = next((s.omitted for s in (new, old) if s is not None and s.omitted), None)
    record = FileRecord(
        path=path,
        status=status,
        blob=new.digest if new is not None else None,
        base_blob=old.digest if old is not None else None,
        size=new.size if new is not None else None,
        omitted=omitted,
    )
    # content never read: its stat stands in for it in the state id
    extra = (
        f"{path}\0{new.omitted}:{new.size}:{new.id_hint}"
        if new is not None and new.digest is None
        else None
    )
    if omitted == "excluded":
        # not even a "Binary files differ" line: the diff says nothing of it
        return Entry(record, "", 0, 0, {}, extra)
    blobs: dict[str, bytes] = {}
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
    return Entry(record, piece.text, piece.added, piece.removed, blobs, extra)


def compare(
    pairs: Iterable[tuple[bytes, Content | None, Content | None, bool]],
    names: Mapping[bytes, str],
) -> Changes:
    """Records, diff and blobs for (path, old side, new side, tracked) tuples.

    ``names`` maps each path to its recorded name (``_record_names``).
    """
    entries: dict[bytes, Entry] = {}
    for raw, old, new, tracked in pairs:
        entry = _entry(names[raw], old, new, tracked)
        if entry is not None:
            entries[raw] = entry
    return Changes.of(entries)


def capture(
    backend: VcsBackend,
    settings: CaptureSettings,
    *,
    since: State | None = None,
    paths: Collection[bytes] | None = None,
) -> State:
    """Read the workspace now: everything that differs from its base.

    With ``since`` (the last state) and ``paths`` (what the file monitor saw
    change since then), only those paths are asked about and re-read; the
    rest of ``since`` is reused.  A base change always means a full read.
    """
    if not os.path.isdir(backend.root):
        # checked first: each VCS fails in its own confusing way on a vanished root
        raise WorkspaceError(f"workspace {backend.root} is missing (deleted or unmounted)")
    backend.refresh()
    base = backend.base()
    read_at = datetime.now(UTC)
    if since is not None and paths is not None and since.base_rev == base.rev:
        wanted = _expand(backend, since, paths)
        entries = {raw: e for raw, e in since.changes.entries.items() if raw not in wanted}
        candidates = {c.path: c.tracked for c in backend.candidates(sorted(wanted))}
    else:
        entries = {}
        candidates = {c.path: c.tracked for c in backend.candidates()}
    candidates = _outside_nested(backend.root, candidates)
    entries.update(_read_entries(backend, base.rev, candidates, settings))
    changes = Changes.of(entries)
    extra = [e.id_extra for e in entries.values() if e.id_extra is not None]
    return State(
        vcs=backend.name,
        workspace=str(backend.root),
        base_rev=base.rev,
        branch=base.branch,
        read_at=read_at,
        changes=changes,
        state_id=compute_state_id(base.rev, changes.files, extra),
    )


def _outside_nested(root: Path, candidates: dict[bytes, bool]) -> dict[bytes, bool]:
    """The candidates that belong to this working copy, not to one nested in it.

    A Git repository inside a Mercurial one (or the other way round) shows
    up in the outer one's listing as untracked files, its ``.git``/``.hg``
    internals included.  Whatever lies below a directory holding ``.hg`` or
    ``.git`` is the nested repository's: one ``lstat`` pair per directory.
    """
    base = bytes(root)
    nested: dict[bytes, bool] = {b"": False}

    def is_nested(directory: bytes) -> bool:
        known = nested.get(directory)
        if known is None:
            parent = directory.rpartition(b"/")[0]
            known = is_nested(parent) or any(
                os.path.lexists(os.path.join(base, directory, marker))
                for marker in (b".hg", b".git")
            )
            nested[directory] = known
        return known

    kept: dict[bytes, bool] = {}
    for path, tracked in candidates.items():
        parts = path.split(b"/")
        if b".hg" in parts[:-1] or b".git" in parts[:-1] or is_nested(path.rpartition(b"/")[0]):
            continue
        kept[path] = tracked
    return kept


def _expand(backend: VcsBackend, since: State, paths: Collection[bytes]) -> set[bytes]:
    """The file paths behind what the monitor reported.

    A path ending in ``/`` is a directory: one that exists stands for the
    files in it, one that went away for what was tracked or changed below it.
    """
    root = bytes(backend.root)
    wanted: set[bytes] = set()
    gone_dirs: list[bytes] = []
    for reported in paths:
        raw = reported.rstrip(b"/")
        full = os.path.join(root, raw)
        try:
            is_dir = stat.S_ISDIR(os.lstat(full).st_mode)
        except OSError:
            is_dir = False
            if reported.endswith(b"/"):
                gone_dirs.append(raw)
                continue
        if is_dir:
            for top, dirs, files in os.walk(full):
                dirs[:] = [d for d in dirs if d not in (b".hg", b".git")]
                rel = os.path.relpath(top, root)
                prefix = b"" if rel == b"." else rel + b"/"
                wanted.update(prefix + f for f in files)
        else:
            wanted.add(raw)
    if gone_dirs:
        prefixes = tuple(d + b"/" for d in gone_dirs)
        wanted.update(p for p in since.changes.entries if p.startswith(prefixes))
        wanted.update(backend.tracked_under(gone_dirs))
    return wanted


def _read_entries(
    backend: VcsBackend, rev: str, candidates: dict[bytes, bool], settings: CaptureSettings
) -> dict[bytes, Entry]:
    paths = sorted(candidates)
    names = _record_names(paths)
    base_sides = _rev_sides(backend, rev, paths, settings, names)
    entries: dict[bytes, Entry] = {}
    for raw in paths:
        path = names[raw]
        old = base_sides.get(raw)
        if settings.excluded(path):
            working = _stat_only(backend.root, raw)
            new = (
                Content(None, working[0], False, None, "excluded", working[1])
                if working is not None
                else None
            )
            if old is not None and new is not None:
                old = Content(None, old.size, old.is_link, None, "excluded")
        else:
            try:
                new = _read_working(backend.root, raw, settings)
            except _Unreadable:
                continue
        entry = _entry(path, old, new, candidates[raw])
        if entry is not None:
            entries[raw] = entry
    return entries


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
    names = _record_names(paths)
    old_sides = _rev_sides(backend, old_rev, paths, settings, names)
    new_sides = _rev_sides(backend, new_rev, paths, settings, names)
    return compare(((p, old_sides.get(p), new_sides.get(p), True) for p in paths), names)
