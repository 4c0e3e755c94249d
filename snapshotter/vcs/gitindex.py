"""Which paths Git's index tracks, read from ``.git/index`` itself, cached.

Any ``git`` command that asks the index a question reads all of it (50 ms
for 100,000 files), and the agent's tick only needs "is this new file
tracked?".  An index seen unchanged is parsed here once (keyed by its
inode, size and mtime), so ticks in between cost a set lookup; an index that
has just changed is searched for the few names asked about instead.
Versions 2, 3 and 4 (path prefix compression) with SHA-1 or SHA-256 object
ids are read; anything unexpected returns None and the caller asks ``git``.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Sequence
from pathlib import Path

_HEADER = struct.Struct(">4sII")
# ctime(8) mtime(8) dev ino mode uid gid size: 40 bytes before the object id
_STAT_BYTES = 40
_EXTENDED = 0x4000
_NAME_LENGTH = 0x0FFF
_MODES = frozenset({0o100644, 0o100755, 0o120000, 0o160000})
_MODE_AT = 24  # after ctime, mtime, dev and ino
# ~3 ms a name in a 100,000-entry index: past this many, one ``git ls-files``
# (~20 ms) or a cached parse is cheaper than a search per name
MAX_SEARCHED_NAMES = 6


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    # git's offset encoding (index v4): 7 bits a byte, +1 per continuation
    byte = data[pos]
    pos += 1
    value = byte & 0x7F
    while byte & 0x80:
        byte = data[pos]
        pos += 1
        value = ((value + 1) << 7) | (byte & 0x7F)
    return value, pos


def parse_index(data: bytes, oid_size: int = 20) -> frozenset[bytes] | None:
    """Paths of the stage entries in an index file's bytes, or None if not understood."""
    try:
        signature, version, count = _HEADER.unpack_from(data, 0)
        if signature != b"DIRC" or version not in (2, 3, 4):
            return None
        pos = _HEADER.size
        paths: set[bytes] = set()
        previous = b""
        for _ in range(count):
            start = pos
            flags_at = start + _STAT_BYTES + oid_size
            (flags,) = struct.unpack_from(">H", data, flags_at)
            pos = flags_at + 2
            if version >= 3 and flags & _EXTENDED:
                pos += 2
            if version == 4:
                strip, pos = _varint(data, pos)
                end = data.index(b"\0", pos)
                path = previous[: len(previous) - strip] + data[pos:end]
                pos = end + 1
            else:
                end = data.index(b"\0", pos)
                path = data[pos:end]
                # entries are padded with 1-8 NULs to a multiple of 8 bytes
                pos = start + ((end - start + 8) & ~7)
            paths.add(path)
            previous = path
        return frozenset(paths)
    except (struct.error, ValueError, IndexError):
        return None


def _entry_at(data: bytes | mmap.mmap, name_at: int, name: bytes, oid_size: int) -> bool:
    """Whether ``name`` found at ``name_at`` is the path of a v2/v3 index entry.

    Entries start 12 bytes into the file and are padded to multiples of 8, so
    a real entry's start is aligned, its flags hold the name's length and its
    mode is one git writes; a stray match (inside another path, an object id
    or an extension) fails these checks.
    """
    for flags_at in (name_at - 2, name_at - 4):  # without / with v3 extended flags
        start = flags_at - oid_size - _STAT_BYTES
        if start < _HEADER.size or (start - _HEADER.size) % 8:
            continue
        (flags,) = struct.unpack_from(">H", data, flags_at)
        if (flags_at == name_at - 4) != bool(flags & _EXTENDED):
            continue
        if flags & _NAME_LENGTH != min(len(name), _NAME_LENGTH):
            continue
        (mode,) = struct.unpack_from(">I", data, start + _MODE_AT)
        if mode in _MODES:
            return True
    return False


def search_index(
    data: bytes | mmap.mmap, names: Sequence[bytes], oid_size: int = 20
) -> set[bytes] | None:
    """Which of ``names`` an index file's bytes hold an entry for, or None if not understood.

    A substring search per name instead of a parse of every entry: ~3 ms for
    a name in a 100,000-entry index, against ~20 ms for ``git ls-files`` and
    ~160 ms for a parse in Python.  Version 4 compresses paths against the
    previous entry, so its names cannot be searched for (None).
    """
    try:
        signature, version, _count = _HEADER.unpack_from(data, 0)
    except struct.error:
        return None
    if signature != b"DIRC" or version not in (2, 3):
        return None
    found: set[bytes] = set()
    for name in names:
        at = data.find(name + b"\0")
        while at != -1:
            if _entry_at(data, at, name, oid_size):
                found.add(name)
                break
            at = data.find(name + b"\0", at + 1)
    return found


class IndexPaths:
    """The tracked paths of one repository's index, re-read only when the file changes.

    A tick asks about a few new files: ``tracked_among`` searches the file
    for them.  Parsing 100,000 entries in Python costs ~160 ms, eight times
    a ``git ls-files``; so for many names or a v4 index, an index that has
    just changed (the developer's git, an editor's git status) is answered
    by git (``get`` returns None), and only an index seen unchanged on a
    later call is parsed and then served from memory until it changes.
    """

    def __init__(self, git_dir: Path, oid_size: int = 20) -> None:
        self.path = git_dir / "index"
        self.oid_size = oid_size
        self._key: tuple[int, int, int] | None = None
        self._paths: frozenset[bytes] | None = None
        self._seen: tuple[int, int, int] | None = None

    def get(self) -> frozenset[bytes] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return frozenset()  # no index yet: nothing tracked
        except OSError:
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._key:
            if key != self._seen:
                self._seen = key  # just changed: let git answer this once
                return None
            try:
                data = self.path.read_bytes()
            except OSError:
                return None
            self._paths, self._key = parse_index(data, self.oid_size), key
        return self._paths

    def tracked_among(self, names: Sequence[bytes]) -> set[bytes] | None:
        """Which of ``names`` are tracked; None if neither a search nor a parse can tell.

        A few names are searched for in the file as it is (no parse: a tick
        never pays the ~160 ms of one); many names, or a v4 index, go to the
        cached parse of ``get``.
        """
        if len(names) <= MAX_SEARCHED_NAMES:
            found = self._search(names)
            if found is not None:
                return found
        paths = self.get()
        return None if paths is None else {n for n in names if n in paths}

    def _search(self, names: Sequence[bytes]) -> set[bytes] | None:
        try:
            with (
                open(self.path, "rb") as file,
                mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data,
            ):
                return search_index(data, names, self.oid_size)
        except FileNotFoundError:
            return set()
        except (OSError, ValueError):  # ValueError: an empty file cannot be mapped
            return None
