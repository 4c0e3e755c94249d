"""A stable fingerprint of a build error, to group episodes by the kind of error.

One diagnostic's fingerprint hashes its *normal form*: the error code, kept as is
(``E0308``, ``TS2322``, ``warning 8 [partial-match]``; gcc's ``-Werror=x`` read as
``-Wx``), and the summary of its message, masked.  The summary is the message's
first lines up to the source excerpt, a hint or a blank line (OCaml's two-line
type errors stay whole, rustc's ``-->`` block goes).  Masking replaces what differs
between two occurrences of the same error with placeholders and keeps the words
that say what is wrong:

    quoted text ``'x'`` "x" `x` ‘x’ `x'        -> <str>
    paths and file names                       -> <path>, <file>
    numbers (lines, columns, counts)           -> <n>
    the type after "has type", "of type" ...   -> <type>
    the name after "Unbound value", "undefined:", "unused variable", "call to" ...
    and identifier-shaped words (snake_case, CamelCase, a.b, a::b)  -> <id>

so ``Unbound value Geometry.sqare`` and ``Unbound value totl`` share a fingerprint,
and ``This expression has type float but an expression was expected of type int``
is one kind whatever the two types.  File, line and severity are not part of it:
the same error is the same error anywhere, as an error or as a warning.

An episode's ``error_fingerprint`` is the fingerprint of the first error
diagnostic of its red build; without one (old data, or no diagnostics), of the
output's first line that mentions an error, else its last line.  Two builds had
"the same error" when their fingerprints are equal; :func:`reported` tells whether
a later build still reports a given error, which is how the miner tells a green
state that fixed the red state's error from one that only silenced it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

_ERROR_SEVERITIES = frozenset({"error", "fatal", "fatal error"})
_QUOTED = re.compile(r"`[^`'\n]*'|\"[^\"\n]*\"|'[^'\n]*'|`[^`\n]*`|‘[^’\n]*’|“[^”\n]*”")
_PATH = re.compile(r"(?:[A-Za-z]:)?[\w.~+-]*(?:[/\\][\w.~+-]+)+")
_SOURCE_FILE = re.compile(
    r"\b[\w.+-]+\.(?:py|pyi|c|h|cc|cpp|cxx|hpp|hh|ml|mli|rs|go|java|kt|scala|js|jsx|ts|tsx"
    r"|rb|hs|cs|swift|m|mm|sh|php|lua|zig|nim|ex|exs|erl|clj|sql)\b"
)
# A type runs from "has type" (OCaml may put it on the next line) to the end of its
# line, or to the next word that goes on with the sentence.
_TYPE = re.compile(
    r"\b((?:has|of|is|the|to|expected|found|with|returns?|types?) type)[ \t]*\n?[ \t]*"
    r"(?!<type>)(?:(?![ \t]+(?i:but|and|is|it|was|with|instead|in|for|to|because)\b)[^.;,\n])+"
)
# Go's "have (int, string)" / "want (int)"
_SIGNATURE = re.compile(r"\b(have|want) \([^)\n]*\)")
_NAMED = re.compile(
    r"\b((?:Unbound|Unknown|Undefined|[Uu]nused|[Uu]ndeclared|[Uu]nresolved)"
    r"(?: record| instance| type)? (?:value|module|constructor|type|field|label|class|variable"
    r"|method|function|name|identifier|import|open) |undefined: |[Cc]annot find (?:name|value"
    r"|module|type|function) |call to |not used: |declared here: )(?!<)[^\s,;:()]+"
)
_DECLARED = re.compile(r"(?<![<\w])\w+(?= declared (?:but|and) not used)")
_IDENTIFIER = re.compile(
    r"(?<![<\w])(?:\w+(?:(?:\.|::)\w+)+|[a-z]+[A-Z]\w*|[A-Z][a-z0-9]+[A-Z]\w*|\w*_\w*)(?![\w>])"
)
_NUMBER = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")
_MENTIONS_ERROR = re.compile(r"error", re.IGNORECASE)

# Where a message's summary ends: the source excerpt, a hint, a note.
_EXCERPT = re.compile(r"\s*(?:\d+\s*)?[|│]|\s*(?:-->|:::)|[\s^~_+-]*[\^~][\s^~_+-]*$")
_ASIDE = re.compile(r"(?:hint|help|note|=|here is an example|did you mean|->|see )", re.IGNORECASE)
_SUMMARY_LINES = 4
MAX_NORMALISED = 1000


def error_line(output: str | None, diagnostics: Iterable[Mapping[str, Any]] = ()) -> str | None:
    """The one line of the error that identifies it (see the module docstring)."""
    first = first_error(diagnostics)
    if first is not None:
        code = first.get("code")
        message = summary(str(first["message"]))
        return f"{code}: {message}" if code else message
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    for line in lines:
        if _MENTIONS_ERROR.search(line):
            return line
    return lines[-1] if lines else None


def first_error(diagnostics: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first diagnostic with an error severity and a message."""
    for diagnostic in diagnostics:
        severity = (diagnostic.get("severity") or "").lower()
        if severity in _ERROR_SEVERITIES and diagnostic.get("message"):
            return diagnostic
    return None


def summary(message: str) -> str:
    """The lines of ``message`` that say what is wrong: no excerpt, no hints."""
    lines = message.splitlines()
    kept: list[str] = []
    for i, line in enumerate(lines):
        text = line.strip()
        if not text:
            if kept:
                break
            continue
        if kept and _ASIDE.match(text):
            break
        if _EXCERPT.match(line):
            break
        # clang prints the source line bare, then a line of carets under it
        if i + 1 < len(lines) and kept and _EXCERPT.fullmatch(lines[i + 1]):
            break
        kept.append(text)
        if len(kept) == _SUMMARY_LINES:
            break
    return "\n".join(kept)


def normalise_error(line: str) -> str:
    """``line`` with quoted text, paths, file names, numbers, types and names masked.

    Only the first :data:`MAX_NORMALISED` characters count: enough to name an error,
    and the masks stay cheap on any text.
    """
    line = line[:MAX_NORMALISED]
    line = _QUOTED.sub("<str>", line)
    line = _PATH.sub("<path>", line)
    line = _SOURCE_FILE.sub("<file>", line)
    line = _NUMBER.sub("<n>", line)
    line = _TYPE.sub(r"\1 <type>", line)
    line = _SIGNATURE.sub(r"\1 (<type>)", line)
    line = _NAMED.sub(r"\1<id>", line)
    line = _DECLARED.sub("<id>", line)
    line = _IDENTIFIER.sub("<id>", line)
    return _SPACE.sub(" ", line).strip()


def normalise_code(code: str | None) -> str:
    """The code as it identifies a check: gcc's ``-Werror=x`` is the warning ``-Wx``."""
    if not code:
        return ""
    return "-W" + code[len("-Werror=") :] if code.startswith("-Werror=") else code


def normal_form(diagnostic: Mapping[str, Any]) -> str:
    """What the fingerprint of one diagnostic hashes."""
    code = normalise_code(diagnostic.get("code"))
    text = normalise_error(summary(str(diagnostic.get("message") or "")))
    return f"{code}: {text}" if code else text


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def diagnostic_fingerprint(diagnostic: Mapping[str, Any]) -> str:
    """16 hex digits naming the kind of error one diagnostic reports."""
    return _digest(normal_form(diagnostic))


def error_fingerprint(
    output: str | None, diagnostics: Iterable[Mapping[str, Any]] = ()
) -> str | None:
    """The build's error: its first error diagnostic's fingerprint, else its output's.

    None when there is no error text at all.
    """
    diagnostics = tuple(diagnostics)
    first = first_error(diagnostics)
    if first is not None:
        return diagnostic_fingerprint(first)
    line = error_line(output, ())
    if line is None:
        return None
    return _digest(normalise_error(line))


def reported(fingerprint: str, file: str | None, diagnostics: Iterable[Mapping[str, Any]]) -> bool:
    """Whether ``diagnostics`` report the error ``fingerprint`` at ``file``, any severity.

    A file of None on either side matches any file.
    """
    for diagnostic in diagnostics:
        other = diagnostic.get("file")
        if file is not None and other is not None and other != file:
            continue
        if diagnostic_fingerprint(diagnostic) == fingerprint:
            return True
    return False
