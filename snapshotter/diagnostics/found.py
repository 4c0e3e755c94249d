"""What a parser returns: diagnostics and where in the output each one was found.

A :data:`Diagnostic` is a dict with exactly the keys of ``schemas.v1.DIAGNOSTIC``.
Its ``message`` starts with the headline (what the tool says is wrong, without the
location and severity words), followed by every further line the tool printed as
part of the same diagnostic *after* that headline: OCaml's wrapped types and hints,
rustc's ``-->`` block, gcc's source excerpt.  Lines printed *before* the headline
(OCaml's excerpt, Python's traceback frames) are the location part and are left out.
A message is bounded to :data:`MAX_MESSAGE` characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

__all__ = [
    "MAX_BLOCK_LINES",
    "MAX_FOUND",
    "MAX_MESSAGE",
    "NUM",
    "SEVERITIES",
    "Diagnostic",
    "Found",
    "diagnostic",
    "message",
]

Diagnostic = dict[str, Any]

# At most 9 digits: a line or column always fits the int32 columns.
NUM = r"\d{1,9}"
MAX_MESSAGE = 8 * 1024
# A parser reads at most this many lines after a headline as its continuation, and
# stops after MAX_FOUND diagnostics (more are cut by the caller's cap anyway): a
# megabyte of diagnostics parses in a fraction of a second.
MAX_BLOCK_LINES = 200
MAX_FOUND = 2000

SEVERITIES = {
    "error": "error",
    "fatal error": "error",
    "warning": "warning",
    "note": "note",
    "remark": "note",
    "message": "note",
}

# A trailing "[-Wflag]" (gcc, clang) or "[code]" (mypy) names the check.
_TRAILING_CODE = re.compile(r"-W[\w=+,.-]+|[a-z][a-z0-9-]*")


class Found(NamedTuple):
    """A diagnostic and the lines ``[start, end)`` of the output it was read from."""

    start: int
    end: int
    diagnostic: Diagnostic


def bounded(text: str) -> str:
    if len(text) <= MAX_MESSAGE:
        return text
    return text[: MAX_MESSAGE - 2].rstrip() + " …"


def message(headline: str, rest: Iterable[str] = ()) -> str:
    """The headline and the lines after it, right-trimmed, without trailing blank lines."""
    lines = [headline.strip()]
    size = len(lines[0])
    for line in rest:
        lines.append(line.rstrip())
        size += len(line) + 1
        if size > MAX_MESSAGE:
            break
    while len(lines) > 1 and not lines[-1]:
        lines.pop()
    return bounded("\n".join(lines))


def diagnostic(
    file: str | None,
    line: int | None,
    col: int | None,
    severity: str,
    code: str | None,
    text: str,
) -> Diagnostic:
    return {
        "file": file,
        "line": line,
        "col": col,
        "severity": severity,
        "code": code,
        "message": text,
    }


def number(text: str | None) -> int | None:
    return int(text) if text else None


def split_code(headline: str) -> tuple[str, str | None]:
    """``"msg [-Wflag]"`` -> ``("msg", "-Wflag")``; mypy's two-space ``"msg  [code]"`` too."""
    start = headline.rfind(" [")
    if start < 0 or not headline.endswith("]"):
        return headline, None
    code = headline[start + 2 : -1]
    if _TRAILING_CODE.fullmatch(code) is None:
        return headline, None
    return headline[:start].rstrip(), code
