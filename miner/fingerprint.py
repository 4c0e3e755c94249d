"""A stable fingerprint of a build error, to group episodes by the error they fix.

The fingerprint hashes one normalised line: the first error diagnostic's
code and message, else the first output line that mentions "error", else the
output's last non-empty line.  Normalising masks what differs between two
occurrences of the same error: quoted strings, paths and file names, and
numbers (line numbers, addresses, counts).  Language-aware parsers (a later
issue) will refine :func:`normalise_error`; the hash stays a function of it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

_ERROR_SEVERITIES = frozenset({"error", "fatal", "fatal error"})
_QUOTED = re.compile(r"\"[^\"\n]*\"|'[^'\n]*'|`[^`\n]*`|‘[^’\n]*’|“[^”\n]*”")
_PATH = re.compile(r"(?:[A-Za-z]:)?[\w.~+-]*(?:[/\\][\w.~+-]+)+")
_SOURCE_FILE = re.compile(
    r"\b[\w.+-]+\.(?:py|pyi|c|h|cc|cpp|cxx|hpp|hh|ml|mli|rs|go|java|kt|scala|js|jsx|ts|tsx"
    r"|rb|hs|cs|swift|m|mm|sh|php|lua|zig|nim|ex|exs|erl|clj|sql)\b"
)
_NUMBER = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")
_MENTIONS_ERROR = re.compile(r"error", re.IGNORECASE)


def error_line(output: str | None, diagnostics: Iterable[Mapping[str, Any]] = ()) -> str | None:
    """The one line of the error that identifies it (see the module docstring)."""
    for diagnostic in diagnostics:
        severity = (diagnostic.get("severity") or "").lower()
        if severity in _ERROR_SEVERITIES and diagnostic.get("message"):
            code = diagnostic.get("code")
            message = str(diagnostic["message"])
            return f"{code}: {message}" if code else message
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    for line in lines:
        if _MENTIONS_ERROR.search(line):
            return line
    return lines[-1] if lines else None


def normalise_error(line: str) -> str:
    """``line`` with quoted strings, paths, file names and numbers masked."""
    line = _QUOTED.sub("<str>", line)
    line = _PATH.sub("<path>", line)
    line = _SOURCE_FILE.sub("<file>", line)
    line = _NUMBER.sub("<n>", line)
    return _SPACE.sub(" ", line).strip()


def error_fingerprint(
    output: str | None, diagnostics: Iterable[Mapping[str, Any]] = ()
) -> str | None:
    """16 hex digits naming the error, or None when there is no error text at all."""
    line = error_line(output, diagnostics)
    if line is None:
        return None
    return hashlib.sha256(normalise_error(line).encode()).hexdigest()[:16]
