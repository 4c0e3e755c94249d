"""Python's checkers and test runner: mypy, ruff (and flake8), pytest.

mypy::

    app/calc.py:10: error: Incompatible types in assignment (...)  [assignment]
    app/calc.py:10:18: error: ...        (--show-column-numbers; --pretty wraps the
    "str", variable has type "int")  [assignment]      message and adds an excerpt)

ruff, concise (also flake8's shape) and full (rustc's block, see ``rust.py``)::

    app/calc.py:1:8: F401 [*] `os` imported but unused
    F401 [*] `os` imported but unused
     --> app/calc.py:1:8

pytest: each block of the FAILURES and ERRORS sections (``____ test_add ____``) gives
one diagnostic at the block's last location (``tests/x.py:5: AssertionError`` in the
long traceback style, ``tests/x.py:5: in test_add`` in the short one), whose code is
the exception's name and whose message is the block's ``E`` lines.  A line of the
short summary (``FAILED tests/x.py::test_y - AssertionError: ...``, ``ERROR ...``) adds
a diagnostic only for a test no block reported.
"""

from __future__ import annotations

import re

from snapshotter.diagnostics.found import (
    MAX_BLOCK_LINES,
    MAX_FOUND,
    NUM,
    SEVERITIES,
    Diagnostic,
    Found,
    diagnostic,
    message,
    split_code,
)
from snapshotter.diagnostics.output import Output
from snapshotter.diagnostics.rust import ARROW, arrow_blocks

__all__ = ["parse_mypy", "parse_pytest", "parse_ruff"]

_MYPY = re.compile(
    rf"^(?P<file>[^\s:][^:\n]*\.pyi?):(?P<line>{NUM}):(?:(?P<col>{NUM}):)? "
    r"(?P<sev>error|warning|note): (?P<msg>[^\n]*)$",
    re.MULTILINE,
)
_MYPY_MAX_WRAP = 8


def _mypy_message(lines: list[str], index: int, headline: str) -> tuple[int, str, str | None]:
    """The end of the diagnostic, its message and its code (``--pretty`` wraps both)."""
    total = len(lines)
    text, code = split_code(headline.strip())
    end = index + 1
    if code is None:
        # --pretty wraps a long message: unindented lines up to the one ending in [code]
        parts = [headline.strip()]
        at = end
        while at < total and at - end < _MYPY_MAX_WRAP:
            line = lines[at]
            if not line.strip() or line[:1] in (" ", "\t") or _MYPY.match(line):
                break
            parts.append(line.strip())
            at += 1
            joined, wrapped_code = split_code(" ".join(parts))
            if wrapped_code is not None:
                text, code, end = joined, wrapped_code, at
                break
    # --pretty's excerpt: indented lines
    excerpt = end
    while (
        end < total
        and end - excerpt < MAX_BLOCK_LINES
        and lines[end][:1] in (" ", "\t")
        and lines[end].strip()
    ):
        end += 1
    return end, message(text, lines[excerpt:end]), code


def parse_mypy(out: Output) -> list[Found]:
    """mypy: ``path.py:line[:col]: error|note: message  [code]``."""
    if ".py" not in out.text:
        return []
    found: list[Found] = []
    consumed = 0
    for index, m in out.matches(_MYPY):
        if index < consumed:
            continue
        if len(found) >= MAX_FOUND:
            break
        end, text, code = _mypy_message(out.lines, index, m["msg"])
        found.append(
            Found(
                index,
                end,
                diagnostic(
                    m["file"],
                    int(m["line"]),
                    int(m["col"]) if m["col"] else None,
                    SEVERITIES[m["sev"]],
                    code,
                    text,
                ),
            )
        )
        consumed = end
    return found


_RUFF_CODE = r"[A-Z]{1,6}\d{1,5}|[a-z]+(?:-[a-z]+)+"
_RUFF_CONCISE = re.compile(
    rf"^(?P<file>[^\s:][^:\n]*):(?P<line>{NUM}):(?P<col>{NUM}): "
    rf"(?P<code>{_RUFF_CODE})(?: \[\*\])?:? (?P<msg>[^\n]*)$",
    re.MULTILINE,
)
_RUFF_HEADLINE = re.compile(
    rf"^(?P<code>{_RUFF_CODE})(?: \[\*\])?:? (?P<msg>[^\n]*)${ARROW}", re.MULTILINE
)


def parse_ruff(out: Output) -> list[Found]:
    """ruff's concise and full formats (and flake8's ``path:line:col: F401 msg``)."""
    if ": " not in out.text and "-->" not in out.text:
        return []
    found = [
        Found(
            index,
            index + 1,
            diagnostic(
                m["file"], int(m["line"]), int(m["col"]), "error", m["code"], message(m["msg"])
            ),
        )
        for _, (index, m) in zip(range(MAX_FOUND), out.matches(_RUFF_CONCISE), strict=False)
    ]
    found += arrow_blocks(out, _RUFF_HEADLINE, lambda m, block: ("error", m["code"]))
    found.sort(key=lambda f: f.start)
    return found


_TITLE = re.compile(r"^_{2,} (?P<title>[^\n]*?) _{2,}$", re.MULTILINE)
_SECTION = re.compile(r"={3,}|_{2,} [^\n]*? _{2,}$")
_LOCATION = re.compile(
    rf"(?P<file>[^\s:][^:\n]*\.py):(?P<line>{NUM}): ?(?:in (?P<func>.*)|(?P<exc>[A-Za-z_][\w.]*))?"
)
_E_LINE = re.compile(r"E {1,12}")
_E_EXCEPTION = re.compile(
    r"(?P<name>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failed))(?::|$)"
)
_SUMMARY = re.compile(
    r"^(?P<kind>FAILED|ERROR) (?P<node>[^\s:][^\n]*?)(?: - (?P<msg>[^\n]*))?$", re.MULTILINE
)
_BLOCK_TEST = re.compile(r"ERROR (?:collecting|at setup of|at teardown of) (?P<test>.+)")


def _block(lines: list[str], start: int) -> tuple[int, Diagnostic | None]:
    """The diagnostic of the failure block whose title is at ``start``, and its end."""
    total = len(lines)
    end = start + 1
    location: re.Match[str] | None = None
    errors: list[str] = []
    while end < total and not _SECTION.match(lines[end]):
        text = lines[end]
        if text.startswith("E ") or text == "E":
            errors.append(text[1:])
        else:
            where = _LOCATION.fullmatch(text.rstrip())
            if where is not None:
                location = where
        end += 1
    if location is None and not errors:
        return end, None
    indent = min((len(e) - len(e.lstrip()) for e in errors if e.strip()), default=0)
    errors = [e[indent:] for e in errors]
    code = location["exc"] if location is not None and location["exc"] else None
    if code is None and errors:
        exc = _E_EXCEPTION.match(errors[0])
        code = (
            exc["name"] if exc else ("AssertionError" if errors[0].startswith("assert ") else None)
        )
    headline = errors[0] if errors else (code or "")
    if code and headline.startswith(code + ":"):
        # "ValueError: boom": the name is the code, the rest the message
        headline = headline[len(code) + 1 :]
    d = diagnostic(
        location["file"] if location else None,
        int(location["line"]) if location else None,
        None,
        "error",
        code,
        message(headline, errors[1:]),
    )
    return end, d


def _test_name(title: str) -> str:
    block = _BLOCK_TEST.fullmatch(title)
    return block["test"] if block else title


def parse_pytest(out: Output) -> list[Found]:
    """pytest's failure blocks and its short summary."""
    text = out.text
    if "__ " not in text and "FAILED " not in text and "ERROR " not in text:
        return []
    lines = out.lines
    found: list[Found] = []
    reported: set[str] = set()
    consumed = 0
    for index, m in out.matches(_TITLE):
        if index < consumed:
            continue
        if len(found) >= MAX_FOUND:
            break
        end, d = _block(lines, index)
        consumed = end
        if d is not None:
            found.append(Found(index, end, d))
            reported.add(_test_name(m["title"]))
    for index, m in out.matches(_SUMMARY):
        if len(found) >= 2 * MAX_FOUND:
            break
        node = m["node"]
        path, _, test = node.partition("::")
        if (test.replace("::", ".") if test else path) in reported:
            continue
        text = m["msg"] or ""
        exc = _E_EXCEPTION.match(text)
        code = exc["name"] if exc else None
        d = diagnostic(path, None, None, "error", code, message(text or node))
        found.append(Found(index, index + 1, d))
    found.sort(key=lambda f: f.start)
    return found
