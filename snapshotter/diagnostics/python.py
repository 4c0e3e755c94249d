"""The Python interpreter: tracebacks and ``py_compile`` errors.

    Traceback (most recent call last):
      File "main.py", line 3, in <module>
        helper.check(3)
      File "helper.py", line 2, in check
        raise ValueError(f'bad value {n}')
    ValueError: bad value 3

Frames (``  File "path", line N``) and their indented source lines, then,
unindented, the exception.  The diagnostic points at the innermost frame in the
user's own code (not the standard library, site-packages or ``<frozen ...>``); its
code is the exception's name and its message the exception's text plus any lines
that continue it, up to a blank line, a new traceback or a ``path:line`` location.
Chained tracebacks give one diagnostic each.  Old ``py_compile`` and ``compileall``
print ``Sorry: IndentationError: msg (path, line N)``.
"""

from __future__ import annotations

import re

from snapshotter.diagnostics.found import MAX_FOUND, NUM, Found, diagnostic, message
from snapshotter.diagnostics.output import Output

__all__ = ["parse_python"]

_START = re.compile(rf'^  File "[^"\n]+", line {NUM}(?:,|$)|^Sorry: ', re.MULTILINE)
_FRAME = re.compile(rf'  File "(?P<file>[^"]+)", line (?P<line>{NUM})(?:,|$)')
_EXCEPTION = re.compile(r"(?P<name>[A-Za-z_][\w.]*)(?:: (?P<msg>.*))?")
_SORRY = re.compile(r"Sorry: (?P<name>\w+): (?P<rest>.*\))")
_SORRY_WHERE = re.compile(rf"\((?P<file>[^()]+), line (?P<line>{NUM})\)")
_LIBRARY = re.compile(r"[/\\](?:site|dist)-packages[/\\]|[/\\]lib[/\\]python\d[\d.]*[/\\]")
# lines that end an exception's text: another traceback, or some tool's location
_NOT_CONTINUATION = re.compile(
    r"Traceback \(most recent call last\)|During handling of|The above exception"
    r"|  File \"|[^\s:][^:]*:\d+[:(]"
)
_MAX_CONTINUATION = 50


def _blame(frames: list[tuple[str, int]]) -> tuple[str, int]:
    # The innermost frame in the user's own code, else the innermost frame.
    for file, line in reversed(frames):
        if not file.startswith("<") and _LIBRARY.search(file) is None:
            return file, line
    return frames[-1]


def _sorry(index: int, text: str) -> Found | None:
    m = _SORRY.fullmatch(text)
    if m is None:
        return None
    rest = m["rest"]
    start = rest.rfind(" (")
    where = _SORRY_WHERE.fullmatch(rest, start + 1) if start >= 0 else None
    if where is None:
        return None
    d = diagnostic(
        where["file"], int(where["line"]), None, "error", m["name"], message(rest[:start])
    )
    return Found(index, index + 1, d)


def parse_python(out: Output) -> list[Found]:
    """A traceback or a ``py_compile`` error: one diagnostic per exception."""
    if 'File "' not in out.text and "Sorry: " not in out.text:
        return []
    lines = out.lines
    total = len(lines)
    found: list[Found] = []
    consumed = 0
    for index, _ in out.matches(_START):
        if index < consumed:
            continue
        if len(found) >= MAX_FOUND:
            break
        text = lines[index]
        if text.startswith("Sorry: "):
            sorry = _sorry(index, text)
            if sorry is not None:
                found.append(sorry)
            continue
        frames: list[tuple[str, int]] = []
        at = index
        while at < total:
            text = lines[at]
            frame = _FRAME.match(text)
            if frame is not None:
                frames.append((frame["file"], int(frame["line"])))
            elif text and not text.startswith(" "):
                break
            at += 1
        consumed = at
        exception = _EXCEPTION.fullmatch(lines[at]) if at < total else None
        if exception is None or not frames:
            continue
        end = at + 1
        while (
            end < total
            and end - at <= _MAX_CONTINUATION
            and lines[end].strip()
            and _NOT_CONTINUATION.match(lines[end]) is None
        ):
            end += 1
        file, line = _blame(frames)
        text = message(exception["msg"] or "", lines[at + 1 : end])
        found.append(
            Found(index, end, diagnostic(file, line, None, "error", exception["name"], text))
        )
        consumed = end
    return found
