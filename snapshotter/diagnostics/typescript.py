"""The TypeScript compiler, ``tsc``, plain and ``--pretty``.

    src/main.ts(6,7): error TS2322: Type '(x: string) => string' is not assignable ...
      Types of parameters 'x' and 'x' are incompatible.

    src/main.ts:4:5 - error TS2322: Type 'string' is not assignable to type 'number'.

    4 let total: number = "many";
          ~~~~~

Plain output continues a message on indented lines (the chain of reasons).  The
pretty form (the default on a terminal) follows the headline with the excerpt and
related locations, separated by blank lines, up to the next headline; its message
keeps them.  ``message`` (tsc's severity for suggestions) maps to ``note``.
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
)
from snapshotter.diagnostics.output import Output

__all__ = ["parse_tsc"]

_TAIL = r"(?P<sev>error|warning|message) (?P<code>TS\d{1,6}): (?P<msg>[^\n]*)$"
_PLAIN = re.compile(rf"^(?P<file>[^\s(][^\n(]*)\((?P<line>{NUM}),(?P<col>{NUM})\): {_TAIL}", re.M)
_PRETTY = re.compile(
    rf"^(?P<file>[^\s:][^:\n]*):(?P<line>{NUM}):(?P<col>{NUM}) - {_TAIL}", re.MULTILINE
)
# what the pretty form prints after a headline: blank lines, indented lines, excerpts
_PRETTY_BODY = re.compile(r"$|[ \t]|\d+ ")


def _pretty_end(lines: list[str], start: int) -> int:
    end = start
    while (
        end < len(lines)
        and end - start < MAX_BLOCK_LINES
        and _PRETTY_BODY.match(lines[end])
        and not _PRETTY.match(lines[end])
    ):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def _plain_end(lines: list[str], start: int) -> int:
    end = start
    while (
        end < len(lines)
        and end - start < MAX_BLOCK_LINES
        and lines[end][:1] in (" ", "\t")
        and lines[end].strip()
    ):
        end += 1
    return end


def parse_tsc(out: Output) -> list[Found]:
    """``file(line,col): error TSnnnn: msg`` and ``file:line:col - error TSnnnn: msg``."""
    if " TS" not in out.text:
        return []
    lines = out.lines
    found: list[Found] = []
    for pattern, block_end in ((_PLAIN, _plain_end), (_PRETTY, _pretty_end)):
        for index, m in out.matches(pattern):
            if len(found) >= MAX_FOUND:
                break
            end = block_end(lines, index + 1)
            found.append(
                Found(
                    index,
                    end,
                    diagnostic(
                        m["file"],
                        int(m["line"]),
                        int(m["col"]),
                        SEVERITIES[m["sev"]],
                        m["code"],
                        message(m["msg"], lines[index + 1 : end]),
                    ),
                )
            )
    found.sort(key=lambda f: f.start)
    return found
