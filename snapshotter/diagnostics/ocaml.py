"""OCaml compilers and dune.

    File "lib/shape.ml", line 7, characters 19-20:
    7 |   | Rect (w, h) -> w * h
                           ^
    Error: This expression has type float but an expression was expected of type
             int

A ``File`` header (``line N`` or ``lines N-M``, optional ``characters A-B``), the
source excerpt, then the severity line: ``Error:``, ``Error (warning 8
[partial-match]):`` (a warning made an error, as dune's dev profile does),
``Warning 26 [unused-var]:`` or ``Alert deprecated:``.  The message is the severity
line's text and every line after it up to a blank line or the next ``File`` header:
wrapped types, ``Hint:`` lines, the example of an unmatched case, dune's
``-> required by`` chain.  A header followed by indented text and no severity (the
second half of a syntax error: ``This '(' might be unmatched``) is a note.  Errors in
dune files have the same shape (``File "lib/dune", line 3, characters 0-0:``).

The code is the warning or alert as printed inside the parentheses, e.g.
``warning 8 [partial-match]``, the same whether the warning is an error or not.
OCaml counts characters from 0; ``col`` is 1-based like every other parser's.
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

__all__ = ["parse_ocaml"]

_HEADER = re.compile(
    rf'^File "(?P<file>[^"\n]+)", lines? (?P<line>{NUM})(?:-{NUM})?'
    rf"(?:, characters (?P<col>{NUM})-{NUM})?:[ \t]*$",
    re.MULTILINE,
)
_EXCERPT = re.compile(r"[ \t]*\d+ \||[ \t]*\^[\^ \t]*$|[ \t]*\.\.\.")
_SEVERITY = re.compile(
    r"(?P<kind>Error|Warning|Alert)"
    r"(?: \((?P<inner>(?:warning|alert) [\w-]+(?: \[[\w-]+\])?)\)"
    r"| (?P<number>\d{1,4}(?: \[[\w-]+\])?)"
    r"| (?P<alert>[\w-]+))?"
    r": ?(?P<msg>.*)"
)
_NOT_A_FILE = frozenset({"_none_", "//toplevel//"})


def _severity(kind: str, m: re.Match[str]) -> tuple[str, str | None]:
    if m["inner"]:
        code: str | None = m["inner"]
    elif m["number"]:
        code = f"warning {m['number']}"
    elif m["alert"]:
        code = f"alert {m['alert']}"
    else:
        code = None
    return ("error" if kind == "Error" else "warning"), code


def parse_ocaml(out: Output) -> list[Found]:
    """``File "x.ml", line 3, characters 8-11:`` blocks, from ocamlc, ocamlopt and dune."""
    if 'File "' not in out.text:
        return []
    lines = out.lines
    total = len(lines)
    found: list[Found] = []
    consumed = 0
    for index, m in out.matches(_HEADER):
        if index < consumed:
            continue
        if len(found) >= MAX_FOUND:
            break
        at = index + 1
        while at < total and at - index <= MAX_BLOCK_LINES and _EXCERPT.match(lines[at]):
            at += 1
        if at >= total or not lines[at].strip() or _HEADER.match(lines[at]):
            consumed = at
            continue
        severity_line = _SEVERITY.fullmatch(lines[at])
        if severity_line is not None:
            severity, code = _severity(severity_line["kind"], severity_line)
            headline = severity_line["msg"]
        else:
            severity, code, headline = "note", None, lines[at]
        end = at + 1
        while (
            end < total
            and end - at <= MAX_BLOCK_LINES
            and lines[end].strip()
            and not lines[end].startswith('File "')
        ):
            end += 1
        file = m["file"]
        col = m["col"]
        found.append(
            Found(
                index,
                end,
                diagnostic(
                    None if file in _NOT_A_FILE else file,
                    int(m["line"]),
                    int(col) + 1 if col is not None else None,
                    severity,
                    code,
                    message(headline, lines[at + 1 : end]),
                ),
            )
        )
        consumed = end
    return found
