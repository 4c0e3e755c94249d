"""The common ``path:line[:col]: severity: message`` shape, tried last.

Many linters and older compilers print it (``lib/x.txt:10: Error: ...``,
``pkg/m.ts:8:5: ERROR[TS2322]: ...``).  Severity words in any case; a code either
in brackets after the severity or trailing the message.  One line each.
"""

from __future__ import annotations

import re

from snapshotter.diagnostics.found import (
    MAX_FOUND,
    NUM,
    SEVERITIES,
    Found,
    diagnostic,
    message,
    split_code,
)
from snapshotter.diagnostics.output import Output

__all__ = ["parse_generic"]

_LINE = re.compile(
    rf"^(?P<file>[^\s:][^:\n]*):(?P<line>{NUM}):(?:(?P<col>{NUM}):)? ?"
    r"(?P<sev>fatal error|error|warning|note)(?:\[(?P<code>[\w.-]+)\])?: (?P<msg>[^\n]*)",
    re.IGNORECASE | re.MULTILINE,
)


def parse_generic(out: Output) -> list[Found]:
    """``path:line[:col]: error|warning|note: message``, one line each."""
    lowered = out.text.lower()
    if not any(word in lowered for word in ("error", "warning", "note")):
        return []
    found: list[Found] = []
    for index, m in out.matches(_LINE):
        if len(found) >= MAX_FOUND:
            break
        headline, code = split_code(m["msg"].strip())
        found.append(
            Found(
                index,
                index + 1,
                diagnostic(
                    m["file"],
                    int(m["line"]),
                    int(m["col"]) if m["col"] else None,
                    SEVERITIES[m["sev"].lower()],
                    m["code"] or code,
                    message(headline),
                ),
            )
        )
    return found
