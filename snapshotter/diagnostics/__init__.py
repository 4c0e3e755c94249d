"""Turn a build's output into diagnostics (``schemas.v1.DIAGNOSTIC`` rows).

    parse_diagnostics(output, workspace, failed=...) -> [{file, line, col, severity, code, message}]

The output is cleaned once (:mod:`.output`: ANSI escapes, carriage-return
overwrites and build-tool noise removed).  Then every parser of :data:`PARSERS`, a
registry with one entry per output format, reads it and reports what it found with
the lines it found it on.  Results **merge**: one build may speak several dialects
(a Makefile running gcc, then pytest), and each distinct diagnostic is kept, in
output order.  When two parsers claim the same lines, the one earlier in the
registry wins, so specific formats come first and ``generic`` last.  A new format
is a new module and a new entry.

Paths are made relative to the workspace: relative paths are taken from the build's
directory (the workspace root), or from the directory make or dune said they
entered; dune's ``_build/default/`` prefix goes.  Paths outside the workspace stay
absolute.

A failed build always explains itself: when ``failed`` is true and no parser found
an error, one more diagnostic (no file, severity ``error``) holds the output's text
that no diagnostic covered (cleaned, trimmed, its last :data:`~.found.MAX_MESSAGE`
characters); output no parser knows thus gives exactly one diagnostic with the raw
text.  A green build's unknown output gives none.

Parsing never raises (a parser that fails is logged and skipped) and is linear in
the output: each parser runs its line-anchored patterns once over the text and
reads each line at most once more; at most :data:`MAX_DIAGNOSTICS` are kept,
errors first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable
from itertools import compress
from operator import not_
from pathlib import Path

from snapshotter.diagnostics.c import parse_gcc
from snapshotter.diagnostics.found import MAX_MESSAGE, Diagnostic, Found, diagnostic
from snapshotter.diagnostics.generic import parse_generic
from snapshotter.diagnostics.go import parse_go
from snapshotter.diagnostics.ocaml import parse_ocaml
from snapshotter.diagnostics.output import Output, clean, strip_ansi
from snapshotter.diagnostics.python import parse_python
from snapshotter.diagnostics.python_tools import parse_mypy, parse_pytest, parse_ruff
from snapshotter.diagnostics.rust import parse_rustc
from snapshotter.diagnostics.typescript import parse_tsc

__all__ = [
    "MAX_DIAGNOSTICS",
    "PARSERS",
    "Diagnostic",
    "Found",
    "Output",
    "parse_diagnostics",
    "strip_ansi",
]

log = logging.getLogger(__name__)

Parser = Callable[[Output], list[Found]]

# In priority order: the first parser to claim a line keeps it.
PARSERS: dict[str, Parser] = {
    "ocaml": parse_ocaml,
    "rustc": parse_rustc,
    "ruff": parse_ruff,
    "tsc": parse_tsc,
    "go": parse_go,
    "pytest": parse_pytest,
    "mypy": parse_mypy,
    "python": parse_python,
    "gcc": parse_gcc,
    "generic": parse_generic,
}

MAX_DIAGNOSTICS = 500

# dune builds in _build/default and reports some paths from there
_DUNE_BUILD_DIR = re.compile(r"(?:^|(?<=/))_build/default/")


def parse_diagnostics(
    output: str, workspace: Path | None = None, *, failed: bool = False
) -> list[Diagnostic]:
    """Diagnostics found in a build's output; paths under ``workspace`` made relative.

    ``failed``: the build was red, so the result holds at least one error when the
    output has any text.  Never raises: a parser that fails is logged and skipped,
    and a failure anywhere else gives no diagnostics.
    """
    try:
        return _parse(output, workspace, failed)
    except Exception:  # pragma: no cover - a bug; the build result must still be recorded
        log.exception("cannot parse build output")
        return []


def _parse(output: str, workspace: Path | None, failed: bool) -> list[Diagnostic]:
    out = clean(output)
    total = len(out.lines)
    found: list[Found] = []
    for name, parser in PARSERS.items():
        try:
            results = parser(out)
        except Exception:
            log.exception("diagnostics parser %s failed", name)
            continue
        for result in results:
            start = result.start
            if not 0 <= start < total or out.claimed[start]:
                continue
            out.claim(start, min(max(result.end, start + 1), total))
            found.append(result)
    found = _capped(sorted(found, key=lambda f: f.start))
    directories = out.directories()
    _relativise(found, directories, workspace)
    diagnostics = [f.diagnostic for f in found]
    if failed and not any(d["severity"] == "error" for d in diagnostics):
        for line, _ in directories:
            out.claim(line, line + 1)
        unexplained = _unexplained(out, output)
        if unexplained:
            diagnostics.append(diagnostic(None, None, None, "error", None, unexplained))
    return diagnostics


def _capped(found: list[Found]) -> list[Found]:
    """At most MAX_DIAGNOSTICS, errors first, in output order."""
    if len(found) <= MAX_DIAGNOSTICS:
        return found
    errors = [i for i, f in enumerate(found) if f.diagnostic["severity"] == "error"]
    keep = set(errors[:MAX_DIAGNOSTICS])
    for i in range(len(found)):
        if len(keep) >= MAX_DIAGNOSTICS:
            break
        keep.add(i)
    return [f for i, f in enumerate(found) if i in keep]


def _tail(text: str) -> str:
    text = text.strip()
    if len(text) <= MAX_MESSAGE:
        return text
    cut = text[-MAX_MESSAGE:]
    newline = cut.find("\n")
    return cut[newline + 1 :] if 0 <= newline < len(cut) - 1 else cut


def _unexplained(out: Output, raw: str) -> str:
    text = _tail("\n".join(compress(out.lines, map(not_, out.claimed))))
    # all of it was noise or claimed by warnings: fall back to the whole output
    return text or _tail(strip_ansi(raw))


def _relativise(
    found: list[Found], changes: list[tuple[int, str | None]], workspace: Path | None
) -> None:
    roots = _workspace_roots(workspace) if workspace is not None else []
    position, directory = 0, None
    for result in found:
        while position < len(changes) and changes[position][0] <= result.start:
            directory = changes[position][1]
            position += 1
        d = result.diagnostic
        if d["file"]:
            d["file"] = _relative(d["file"], directory, roots)


def _relative(file: str, directory: str | None, roots: list[str]) -> str:
    if file.startswith("<"):  # <stdin>, <frozen importlib._bootstrap>
        return file
    path = file
    if directory is not None and not os.path.isabs(path):
        path = os.path.join(directory, path)
    path = os.path.normpath(path)
    if os.path.isabs(path):
        for root in roots:
            if path.startswith(root):
                path = path[len(root) :]
                break
    return _DUNE_BUILD_DIR.sub("", path, count=1)


def _workspace_roots(workspace: Path) -> list[str]:
    # The path as given and as resolved (e.g. /tmp -> /private/tmp), each with a slash.
    roots = [os.path.abspath(workspace)]
    with contextlib.suppress(OSError, RuntimeError):
        roots.append(str(workspace.resolve()))
    return list(dict.fromkeys(os.path.join(root, "") for root in roots))
