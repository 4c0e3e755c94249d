"""Unified diffs in git's format, computed in-process from two contents.

Both sides of redgreen need the same diff: the snapshotter writes the diff of
a state against its base, the miner writes the fix diff between two rebuilt
states.  Output follows ``git diff`` (``a/``/``b/`` prefixes, ``new file
mode``, ``\\ No newline at end of file``, ``Binary files ... differ``) so that
``git apply`` and ``patch -p1`` accept it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from snapshotter.pathnames import git_quote, to_bytes

CONTEXT_LINES = 3
REGULAR_MODE = "100644"
LINK_MODE = "120000"


@dataclass(frozen=True)
class Side:
    """One side of a file diff: its content, or ``None`` when the file is absent."""

    content: bytes | None
    is_link: bool = False
    # content not available (omitted from the dataset) or not text: diff as binary
    opaque: bool = False


ABSENT = Side(None)


@dataclass(frozen=True)
class FileDiff:
    text: str
    added: int
    removed: int


def is_binary(content: bytes) -> bool:
    """git's heuristic: a NUL byte in the first 8000 bytes."""
    return b"\0" in content[:8000]


def _split_lines(content: bytes) -> list[bytes]:
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
        return [line + b"\n" for line in lines]
    return [line + b"\n" for line in lines[:-1]] + [lines[-1]]


def _range(start: int, length: int) -> str:
    # git and difflib: a one-line range has no length, an empty one starts before it
    first = start + 1
    if length == 1:
        return f"{first}"
    if length == 0:
        first -= 1
    return f"{first},{length}"


def _line(prefix: str, raw: bytes) -> list[str]:
    text = raw.decode("utf-8", errors="replace")
    if text.endswith("\n"):
        return [prefix + text]
    return [prefix + text + "\n", "\\ No newline at end of file\n"]


def _hunks(old: bytes, new: bytes) -> tuple[list[str], int, int]:
    a, b = _split_lines(old), _split_lines(new)
    if not a or not b:
        return _one_sided_hunk(a, b)
    out: list[str] = []
    added = removed = 0
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(CONTEXT_LINES):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@\n")
        for tag, x1, x2, y1, y2 in group:
            if tag == "equal":
                for raw in a[x1:x2]:
                    out.extend(_line(" ", raw))
                continue
            for raw in a[x1:x2]:
                out.extend(_line("-", raw))
                removed += 1
            for raw in b[y1:y2]:
                out.extend(_line("+", raw))
                added += 1
    return out, added, removed


def _one_sided_hunk(a: list[bytes], b: list[bytes]) -> tuple[list[str], int, int]:
    """What difflib groups for an added or emptied file: one hunk of every line.

    Without the matcher, which costs more than the rest of the diff on the
    thousands of files a branch switch adds.
    """
    out = [f"@@ -{_range(0, len(a))} +{_range(0, len(b))} @@\n"]
    for raw in a:
        out.extend(_line("-", raw))
    for raw in b:
        out.extend(_line("+", raw))
    return out, len(b), len(a)


def file_diff(path: str, old: Side, new: Side) -> FileDiff:
    """The git-style diff turning ``old`` into ``new`` for one recorded path.

    Returns an empty diff when the two sides are equal.
    """
    if old.content == new.content and old.is_link == new.is_link and not (old.opaque or new.opaque):
        return FileDiff("", 0, 0)
    raw = to_bytes(path)
    a_name = git_quote(b"a/" + raw)
    b_name = git_quote(b"b/" + raw)
    old_mode = LINK_MODE if old.is_link else REGULAR_MODE
    new_mode = LINK_MODE if new.is_link else REGULAR_MODE
    head = [f"diff --git {a_name} {b_name}\n"]
    if old.content is None:
        head.append(f"new file mode {new_mode}\n")
    elif new.content is None:
        head.append(f"deleted file mode {old_mode}\n")
    elif old_mode != new_mode:
        head += [f"old mode {old_mode}\n", f"new mode {new_mode}\n"]
    from_name = "/dev/null" if old.content is None else a_name
    to_name = "/dev/null" if new.content is None else b_name
    old_bytes = old.content or b""
    new_bytes = new.content or b""
    if old.opaque or new.opaque or is_binary(old_bytes) or is_binary(new_bytes):
        head.append(f"Binary files {from_name} and {to_name} differ\n")
        return FileDiff("".join(head), 0, 0)
    if old_bytes == new_bytes:
        # only the mode changed (a file became a link with the same text)
        return FileDiff("".join(head), 0, 0)
    hunks, added, removed = _hunks(old_bytes, new_bytes)
    head += [f"--- {from_name}\n", f"+++ {to_name}\n"]
    return FileDiff("".join(head + hunks), added, removed)
