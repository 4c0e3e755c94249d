"""gcc and clang (and the GNU linker's undefined references).

    src/a.c:4:3: error: use of undeclared identifier 'y'
        4 |   y = 2;
          |   ^

The header gives file, line, column and severity; a trailing ``[-Wflag]`` is the
code.  The message goes on with the source excerpt the compiler prints under it
(gcc's lines with a ``N |`` gutter, clang's source line and carets).  ``In function ...`` and
``In file included from`` lines belong to no diagnostic.
"""

from __future__ import annotations

import re

from snapshotter.diagnostics.found import (
    MAX_BLOCK_LINES,
    MAX_FOUND,
    NUM,
    SEVERITIES,
    Found,
    diagnostic,
    message,
    split_code,
)
from snapshotter.diagnostics.output import Output

__all__ = ["parse_gcc"]

_HEADER = re.compile(
    rf"^(?P<file>[^\s:][^:\n]*):(?P<line>{NUM}):(?P<col>{NUM}): "
    r"(?P<sev>fatal error|error|warning|note|remark): (?P<msg>[^\n]*)",
    re.MULTILINE,
)
# main.c:(.text+0x1a): undefined reference to `helper'
_LINKER = re.compile(
    r"^(?P<file>[^\s:][^:\n]*):\(\.[\w.$]*\+0x[0-9a-fA-F]{1,16}\): (?P<msg>[^\n]*)", re.MULTILINE
)
# one of these is in any output this parser reads something from
_WORDS = (": error: ", ": warning: ", ": note: ", ": fatal error: ", ": remark: ", "(.")
_MARKERS = re.compile(r"[ \t]*[\^~][\^~ \t]*")
_GUTTER = re.compile(r"[ \t]*\d*[ \t]*\|")


def _excerpt(lines: list[str], start: int) -> int:
    """The end of the source excerpt that begins at ``start``.

    gcc marks its excerpt with a ``N |`` gutter; clang prints the source line bare
    with a line of carets under it.  Anything else ends the excerpt.
    """
    end, total = start, len(lines)
    while end < total and end - start < MAX_BLOCK_LINES:
        text = lines[end]
        if _GUTTER.match(text) or _MARKERS.fullmatch(text):
            end += 1
        elif text.strip() and end + 1 < total and _MARKERS.fullmatch(lines[end + 1]):
            end += 2
        else:
            break
    return end


def parse_gcc(out: Output) -> list[Found]:
    """gcc and clang: ``path:line:col: error|warning|fatal error|note: message``."""
    if not any(word in out.text for word in _WORDS):
        return []
    lines = out.lines
    found: list[Found] = []
    for index, m in out.matches(_HEADER):
        if len(found) >= MAX_FOUND:
            break
        end = _excerpt(lines, index + 1)
        headline, code = split_code(m["msg"].strip())
        found.append(
            Found(
                index,
                end,
                diagnostic(
                    m["file"],
                    int(m["line"]),
                    int(m["col"]),
                    SEVERITIES[m["sev"]],
                    code,
                    message(headline, lines[index + 1 : end]),
                ),
            )
        )
    for index, m in out.matches(_LINKER):
        if len(found) >= MAX_FOUND:
            break
        found.append(
            Found(
                index,
                index + 1,
                diagnostic(m["file"], None, None, "error", None, message(m["msg"])),
            )
        )
    found.sort(key=lambda f: f.start)
    return found
