"""Turn a build's output into diagnostics (``schemas.v1.DIAGNOSTIC`` rows).

    parse_diagnostics(output, workspace) -> [{file, line, col, severity, code, message}]

``PARSERS`` is an ordered registry of ``str -> list[Diagnostic]`` functions, one per
output format.  The output is stripped of ANSI escapes once, then each parser runs in
turn and the first one that finds anything wins: a build speaks one dialect, and two
parsers reading the same error twice would only add noise.  A new language is a new
function and a new entry, placed before ``generic``.  Every pattern is anchored at the
start of one line and has no nested quantifiers, so parsing is linear in the output.
Parsing never raises: output nobody understands gives ``[]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["PARSERS", "Diagnostic", "parse_diagnostics", "strip_ansi"]

log = logging.getLogger(__name__)

# Keys exactly as in schemas.v1.DIAGNOSTIC; values are str, int or None.
Diagnostic = dict[str, Any]
Parser = Callable[[str], list[Diagnostic]]

# CSI sequences (colours, cursor moves) and OSC sequences (gcc's hyperlinks).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")

# At most 9 digits: a line or column always fits the int32 columns.
_NUM = r"\d{1,9}"

# A trailing "[-Wflag]" (gcc, clang) or "[code]" (mypy) names the check.
_TRAILING_CODE = re.compile(r"-W[\w=+,.-]+|[a-z][a-z0-9-]*")

_SEVERITIES = {
    "error": "error",
    "fatal error": "error",
    "warning": "warning",
    "note": "note",
    "remark": "note",
}


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _diagnostic(
    file: str | None,
    line: int | None,
    col: int | None,
    severity: str,
    code: str | None,
    message: str,
) -> Diagnostic:
    return {
        "file": file,
        "line": line,
        "col": col,
        "severity": severity,
        "code": code,
        "message": message,
    }


def _split_code(message: str) -> tuple[str, str | None]:
    start = message.rfind(" [")
    if start < 0 or not message.endswith("]"):
        return message, None
    code = message[start + 2 : -1]
    if _TRAILING_CODE.fullmatch(code) is None:
        return message, None
    return message[:start].rstrip(), code


# path:line:col: severity: message  (the path has no colon and starts with no space)
_GCC = re.compile(
    rf"(?P<file>[^\s:][^:]*):(?P<line>{_NUM}):(?P<col>{_NUM}): "
    r"(?P<sev>fatal error|error|warning|note|remark): (?P<msg>.*)"
)


def parse_gcc(output: str) -> list[Diagnostic]:
    """gcc and clang: ``path:line:col: error|warning|fatal error|note: message``."""
    found = []
    for text in output.splitlines():
        m = _GCC.match(text)
        if m is None:
            continue
        message, code = _split_code(m["msg"].strip())
        found.append(
            _diagnostic(
                m["file"], int(m["line"]), int(m["col"]), _SEVERITIES[m["sev"]], code, message
            )
        )
    return found


_PY_FRAME = re.compile(rf'  File "(?P<file>[^"]+)", line (?P<line>{_NUM})(?:,|$)')
_PY_EXCEPTION = re.compile(r"(?P<name>[A-Za-z_][\w.]*)(?:: (?P<msg>.*))?")
# Older py_compile and compileall: "Sorry: IndentationError: msg (path, line N)".
_PY_SORRY = re.compile(r"Sorry: (?P<name>\w+): (?P<rest>.*\))")
_PY_SORRY_WHERE = re.compile(rf"\((?P<file>[^()]+), line (?P<line>{_NUM})\)")
_PY_LIBRARY = re.compile(r"[/\\](?:site|dist)-packages[/\\]|[/\\]lib[/\\]python\d[\d.]*[/\\]")


def _py_blame(frames: list[tuple[str, int]]) -> tuple[str, int]:
    # The innermost frame in the user's own code, else the innermost frame.
    for file, line in reversed(frames):
        if not file.startswith("<") and _PY_LIBRARY.search(file) is None:
            return file, line
    return frames[-1]


def _parse_sorry(text: str) -> Diagnostic | None:
    m = _PY_SORRY.fullmatch(text)
    if m is None:
        return None
    rest = m["rest"]
    start = rest.rfind(" (")
    where = _PY_SORRY_WHERE.fullmatch(rest, start + 1) if start >= 0 else None
    if where is None:
        return None
    return _diagnostic(
        where["file"], int(where["line"]), None, "error", m["name"], rest[:start].strip()
    )


def parse_python(output: str) -> list[Diagnostic]:
    """A Python traceback or ``py_compile`` error: one diagnostic per traceback.

    The frames (``  File "path", line N``) are followed by indented source lines and
    then, unindented, the exception: ``SyntaxError: invalid syntax``.
    """
    found = []
    frames: list[tuple[str, int]] = []
    for text in output.splitlines():
        sorry = _parse_sorry(text)
        if sorry is not None:
            found.append(sorry)
            frames = []
            continue
        frame = _PY_FRAME.match(text)
        if frame is not None:
            frames.append((frame["file"], int(frame["line"])))
            continue
        if not frames or text.startswith(" ") or not text:
            continue
        exc = _PY_EXCEPTION.fullmatch(text)
        if exc is not None:
            file, line = _py_blame(frames)
            found.append(
                _diagnostic(file, line, None, "error", exc["name"], (exc["msg"] or "").strip())
            )
        frames = []
    return found


# path:line[:col]: severity: message  (e.g. mypy, many linters, gcc without columns)
_GENERIC = re.compile(
    rf"(?P<file>[^\s:][^:]*):(?P<line>{_NUM}):(?:(?P<col>{_NUM}):)? ?"
    r"(?P<sev>fatal error|error|warning|note)(?:\[(?P<code>[\w.-]+)\])?: (?P<msg>.*)",
    re.IGNORECASE,
)


def parse_generic(output: str) -> list[Diagnostic]:
    """The common ``path:line: error: message`` shape, with an optional column."""
    found = []
    for text in output.splitlines():
        m = _GENERIC.match(text)
        if m is None:
            continue
        message, code = _split_code(m["msg"].strip())
        found.append(
            _diagnostic(
                m["file"],
                int(m["line"]),
                int(m["col"]) if m["col"] else None,
                _SEVERITIES[m["sev"].lower()],
                m["code"] or code,
                message,
            )
        )
    return found


# Tried in order; the first parser that finds anything wins.
PARSERS: dict[str, Parser] = {
    "gcc": parse_gcc,
    "python": parse_python,
    "generic": parse_generic,
}


def _relative_to(file: str, roots: list[str]) -> str:
    path = os.path.normpath(file)
    if os.path.isabs(path):
        for root in roots:
            if path.startswith(root):
                return path[len(root) :]
    return path


def parse_diagnostics(output: str, workspace: Path | None = None) -> list[Diagnostic]:
    """Diagnostics found in a build's output; paths under ``workspace`` made relative.

    Never raises: a parser that fails is logged and skipped.
    """
    text = strip_ansi(output)
    for name, parser in PARSERS.items():
        try:
            found = parser(text)
        except Exception:
            log.exception("diagnostics parser %s failed", name)
            continue
        if found:
            break
    else:
        return []
    if workspace is not None:
        roots = _workspace_roots(workspace)
        for diagnostic in found:
            if diagnostic["file"] is not None:
                diagnostic["file"] = _relative_to(diagnostic["file"], roots)
    return found


def _workspace_roots(workspace: Path) -> list[str]:
    # The path as given and as resolved (e.g. /tmp -> /private/tmp), each with a slash.
    roots = [os.path.abspath(workspace)]
    with contextlib.suppress(OSError, RuntimeError):
        roots.append(str(workspace.resolve()))
    return list(dict.fromkeys(os.path.join(root, "") for root in roots))
