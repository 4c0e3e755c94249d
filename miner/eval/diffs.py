"""The diff in a model's reply, however the model wrapped it.

Models asked for "a unified diff and nothing else" still answer in several
shapes: a fenced block (```diff, ```patch, or a bare fence), bare diff text,
either of them with prose before and after, or several blocks, one a file.
:func:`extract_diff` returns the diff text from any of these (blocks joined in
order), or None when the reply holds no diff at all: an evaluation counts
that as a diff that does not apply.  It never repairs a diff (hunk counts,
missing ``a/`` ``b/`` prefixes): what the model wrote is what is applied.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<ticks>`{3,}|~{3,})(?P<info>[^`]*)$")
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")
# lines a git-style diff is made of, outside the hunks' bodies
_HEADER_PREFIXES = (
    "diff --git ",
    "index ",
    "--- ",
    "+++ ",
    "new file mode",
    "deleted file mode",
    "old mode",
    "new mode",
    "similarity index",
    "dissimilarity index",
    "rename from",
    "rename to",
    "copy from",
    "copy to",
    "Binary files",
    "GIT binary patch",
)


def _starts_diff(lines: list[str], at: int) -> bool:
    """A diff starts at line ``at``: a ``diff --git`` line, or ``---`` followed by ``+++``."""
    line = lines[at]
    if line.startswith("diff --git "):
        return True
    return line.startswith("--- ") and at + 1 < len(lines) and lines[at + 1].startswith("+++ ")


def _diff_line(line: str) -> bool:
    # "" stands for a context line whose single space the model (or its chat UI) dropped
    return (
        line == ""
        or line[0] in " +-\\"
        or line.startswith("@@")
        or line.startswith(_HEADER_PREFIXES)
    )


def _looks_like_diff(text: str) -> bool:
    lines = text.splitlines()
    has_start = any(_starts_diff(lines, i) for i in range(len(lines)))
    has_hunk = any(_HUNK.match(line) for line in lines)
    return has_start and (has_hunk or any(line.startswith("diff --git ") for line in lines))


def _fenced_blocks(reply: str) -> list[str]:
    """The body of each fenced block, in order; an unclosed fence runs to the end."""
    blocks = []
    lines = reply.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        ticks = opening["ticks"]
        body = []
        i += 1
        while i < len(lines):
            closing = _FENCE.match(lines[i])
            # closed by a bare fence of the same character, at least as long
            if (
                closing is not None
                and not closing["info"].strip()
                and closing["ticks"][0] == ticks[0]
                and len(closing["ticks"]) >= len(ticks)
            ):
                break
            body.append(lines[i])
            i += 1
        blocks.append("\n".join(body))
        i += 1
    return blocks


def _bare_diff(text: str) -> str | None:
    """The diff lines of ``text`` from its first diff header to the first line of prose."""
    lines = text.splitlines()
    pieces: list[str] = []
    i = 0
    while i < len(lines):
        if not _starts_diff(lines, i):
            i += 1
            continue
        end = i
        while end < len(lines) and _diff_line(lines[end]):
            end += 1
        piece = lines[i:end]
        while piece and piece[-1] == "":  # blank lines before the prose after it
            piece.pop()
        pieces.append("\n".join(piece))
        i = max(end, i + 1)
    found = "\n".join(pieces)
    return found if pieces and _looks_like_diff(found) else None


def _finish(diff: str) -> str:
    return diff.strip("\n") + "\n"


def extract_diff(reply: str) -> str | None:
    """The diff ``reply`` holds, ending in a newline, or None if it holds none."""
    diffs = []
    for body in _fenced_blocks(reply):
        found = _bare_diff(body)  # whatever the fence's language says: its content decides
        if found is not None:
            diffs.append(found)
    if diffs:
        return _finish("\n".join(diffs))
    found = _bare_diff(reply)
    return _finish(found) if found is not None else None
