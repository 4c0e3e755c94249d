"""The Go toolchain: ``go build``, ``go vet``, ``go test``.

    ./main.go:12:23: not enough arguments in call to shapes.Area
        have (number)
        want (float64, float64)
        main_test.go:7: add(1, 2) = -1, want 3

A ``path.go:line[:col]: message`` line (``vet:`` may prefix it); the lines after it
indented deeper than it (tab-indented ``have``/``want``) continue the message.  A
failing test's ``t.Errorf`` lines are indented under ``--- FAIL:``.  Go has no
severities or codes: every such line is an error.
"""

from __future__ import annotations

import re

from snapshotter.diagnostics.found import (
    MAX_BLOCK_LINES,
    MAX_FOUND,
    NUM,
    Found,
    diagnostic,
    message,
)
from snapshotter.diagnostics.output import Output

__all__ = ["parse_go"]

_LOCATION = re.compile(
    rf"^(?P<indent>[ \t]*)(?:vet: )?(?P<file>[^\s:][^:\n]*\.go):(?P<line>{NUM})"
    rf"(?::(?P<col>{NUM}))?: (?P<msg>[^\n]*)$",
    re.MULTILINE,
)


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" \t"))


def parse_go(out: Output) -> list[Found]:
    """``./main.go:3:5: undefined: x`` and its indented continuation lines."""
    if ".go:" not in out.text:
        return []
    lines = out.lines
    found: list[Found] = []
    consumed = 0
    for index, m in out.matches(_LOCATION):
        if index < consumed:
            continue
        if len(found) >= MAX_FOUND:
            break
        depth = len(m["indent"])
        end = index + 1
        while (
            end < len(lines)
            and end - index <= MAX_BLOCK_LINES
            and lines[end].strip()
            and _indent(lines[end]) > depth
        ):
            end += 1
        found.append(
            Found(
                index,
                end,
                diagnostic(
                    m["file"],
                    int(m["line"]),
                    int(m["col"]) if m["col"] else None,
                    "error",
                    None,
                    message(m["msg"], lines[index + 1 : end]),
                ),
            )
        )
        consumed = end
    return found
