"""Which paths Git's index tracks, read from ``.git/index`` itself, cached.

Any ``git`` command that asks the index a question reads all of it (50 ms
for 100,000 files), and the agent's tick only needs "is this new file
tracked?".  The index file is parsed here once per change of the file (its
inode, size and mtime), so ticks in between cost a set lookup.  Versions 2,
3 and 4 (path prefix compression) with SHA-1 or SHA-256 object ids are
read; anything unexpected returns None and the caller asks ``git`` instead.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

_HEADER = struct.Struct(">4sII")
# ctime(8) mtime(8) dev ino mode uid gid size: 40 bytes before the object id
_STAT_BYTES = 40
_EXTENDED = 0x4000


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


class IndexPaths:
    """The tracked paths of one repository's index, re-read only when the file changes.

    Parsing 100,000 entries in Python costs ~160 ms, three times a ``git
    ls-files``; so an index that has just changed (the developer's git, an
    editor's git status) is answered by git (``get`` returns None), and only
    an index seen unchanged on a later call is parsed and then served from
    memory until it changes again.
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
