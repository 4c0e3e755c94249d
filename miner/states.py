"""Rebuild two states of one stream from the dataset and diff them.

A snapshot row lists only the paths whose working content differs from its
base (``files``); every other path has the base's content.  A row with
``reason = 'base'`` records a change of base revision: its ``files`` are the
paths that differ between the previous base and the new one, ``base_blob``
the old content and ``blob`` the new.  So the content of any path in a state
X (row x) and a later state Y (row y) is known without the repository:

    P     = paths(x) | paths(y) | paths of every base row strictly between x and y
    X(p)  = x's blob                 if p in x.files
          = base_blob of the FIRST base row between touching p   (x's base content)
          = y's base_blob            if p in y.files             (x and y share that base)
          = unchanged                otherwise: p is dropped
    Y(p)  = y's blob                 if p in y.files
          = blob of the LAST base row between touching p         (y's base content)
          = x's base_blob                                        (x and y share that base)

Each side is a :class:`ContentRef` (a blob hash, or absent, or omitted);
:func:`compare_states` resolves the refs, :func:`diff_states` turns them into a
git-style diff once the caller has fetched the contents (one query for all of
an episode's blobs).  Equal refs mean equal content; two omitted sides whose
hash is unknown (excluded files) count as unchanged, since nothing can be said
about them and a fix never consists of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from miner.errors import MinerError
from snapshotter.textdiff import FileDiff, Side, file_diff, is_binary


class UnrebuildableError(MinerError):
    """A state cannot be rebuilt from the dataset (a blob or a base change is missing)."""


@dataclass(frozen=True)
class FileEntry:
    """One element of a snapshot row's ``files``."""

    path: str
    status: str | None
    blob: str | None
    base_blob: str | None
    omitted: str | None = None


@dataclass(frozen=True)
class StateRow:
    """What of a snapshot row the rebuilding needs."""

    snapshot_id: str
    ts: datetime
    base_rev: str | None
    state_id: str | None
    files: Mapping[str, FileEntry]
    reason: str | None = None

    @property
    def order(self) -> tuple[datetime, str]:
        """The row's place in its stream."""
        return (self.ts, self.snapshot_id)


@dataclass(frozen=True)
class ContentRef:
    """One side of a path in a state: content by hash, absent, or omitted."""

    blob: str | None
    omitted: str | None = None

    @property
    def absent(self) -> bool:
        return self.blob is None and self.omitted is None

    @property
    def available(self) -> bool:
        """Its content is in ``blobs``."""
        return self.blob is not None and self.omitted is None


ABSENT = ContentRef(None)

# statuses meaning "no content on this side" whatever the hash columns say
_NO_WORKING = frozenset({"R"})
_NO_BASE = frozenset({"A", "?"})


def _ref(blob: str | None, omitted: str | None, absent_by_status: bool) -> ContentRef:
    if omitted is None:
        return ContentRef(blob) if blob is not None else ABSENT
    # an omitted entry has no content in blobs on either side, but a removed
    # (or added) file is still absent on its empty side
    return ABSENT if absent_by_status else ContentRef(blob, omitted)


def working_ref(entry: FileEntry) -> ContentRef:
    """The entry's working content (for a base row: the content at the new base)."""
    return _ref(entry.blob, entry.omitted, entry.status in _NO_WORKING)


def base_ref(entry: FileEntry) -> ContentRef:
    """The entry's base content (for a base row: the content at the old base)."""
    return _ref(entry.base_blob, entry.omitted, entry.status in _NO_BASE)


def rows_between(rows: Iterable[StateRow], x: StateRow, y: StateRow) -> list[StateRow]:
    """The rows strictly between ``x`` and ``y`` in stream order, in that order."""
    return sorted((r for r in rows if x.order < r.order < y.order), key=lambda r: r.order)


def compare_states(
    x: StateRow, y: StateRow, bases: Sequence[StateRow]
) -> dict[str, tuple[ContentRef, ContentRef]]:
    """The paths whose content differs from state ``x`` to state ``y``, with both sides.

    ``bases`` are the ``base`` rows strictly between ``x`` and ``y``, in stream order.
    """
    if bases:
        if bases[-1].base_rev != y.base_rev:
            raise UnrebuildableError(
                f"base of {y.snapshot_id} ({y.base_rev}) is not the last recorded base change"
                f" ({bases[-1].base_rev})"
            )
    elif x.base_rev != y.base_rev:
        raise UnrebuildableError(
            f"no base change recorded between {x.snapshot_id} ({x.base_rev})"
            f" and {y.snapshot_id} ({y.base_rev})"
        )
    paths = set(x.files) | set(y.files)
    for row in bases:
        paths |= set(row.files)
    result: dict[str, tuple[ContentRef, ContentRef]] = {}
    for path in sorted(paths):
        in_x, in_y = x.files.get(path), y.files.get(path)
        touching = [row.files[path] for row in bases if path in row.files]
        if in_x is not None:
            old = working_ref(in_x)
        elif touching:
            old = base_ref(touching[0])
        elif in_y is not None:
            old = base_ref(in_y)
        else:  # pragma: no cover - path came from one of the three sources
            continue
        if in_y is not None:
            new = working_ref(in_y)
        elif touching:
            new = working_ref(touching[-1])
        elif in_x is not None:
            new = base_ref(in_x)
        else:  # pragma: no cover - as above
            continue
        if old != new:
            result[path] = (old, new)
    return result


def blobs_needed(pairs: Mapping[str, tuple[ContentRef, ContentRef]]) -> set[str]:
    """The hashes whose content :func:`diff_states` will read."""
    return {ref.blob for pair in pairs.values() for ref in pair if ref.available and ref.blob}


@dataclass(frozen=True)
class FileChange:
    """One changed path: both refs, the bytes where known, and its diff."""

    path: str
    old: ContentRef
    new: ContentRef
    old_content: bytes | None
    new_content: bytes | None
    diff: FileDiff

    @property
    def opaque(self) -> bool:
        """The change cannot be read as text: a side is omitted or binary."""
        if self.old.omitted is not None or self.new.omitted is not None:
            return True
        return any(c is not None and is_binary(c) for c in (self.old_content, self.new_content))


@dataclass(frozen=True)
class StateDiff:
    """The diff from one rebuilt state to another, path by path in sorted order."""

    changes: tuple[FileChange, ...]

    @property
    def text(self) -> str:
        return "".join(change.diff.text for change in self.changes)

    @property
    def added(self) -> int:
        return sum(change.diff.added for change in self.changes)

    @property
    def removed(self) -> int:
        return sum(change.diff.removed for change in self.changes)

    @property
    def paths(self) -> list[str]:
        return [change.path for change in self.changes]


def _content(path: str, ref: ContentRef, contents: Mapping[str, bytes]) -> bytes | None:
    if not ref.available or ref.blob is None:
        return None
    try:
        return contents[ref.blob]
    except KeyError:
        raise UnrebuildableError(f"blob {ref.blob} of {path} is not in blobs") from None


def _side(ref: ContentRef, content: bytes | None) -> Side:
    if ref.absent:
        return Side(None)
    if content is None:  # omitted: only its hash is known, diff it as binary
        return Side(b"", opaque=True)
    return Side(content)


def diff_states(
    pairs: Mapping[str, tuple[ContentRef, ContentRef]], contents: Mapping[str, bytes]
) -> StateDiff:
    """The git-style diff of ``pairs`` (from :func:`compare_states`), paths sorted."""
    changes = []
    for path in sorted(pairs):
        old, new = pairs[path]
        old_content, new_content = _content(path, old, contents), _content(path, new, contents)
        diff = file_diff(path, _side(old, old_content), _side(new, new_content))
        if diff.text:
            changes.append(FileChange(path, old, new, old_content, new_content, diff))
    return StateDiff(tuple(changes))
