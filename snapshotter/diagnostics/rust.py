"""rustc and cargo, and the same block shape where other tools copied it (ruff).

    error[E0308]: mismatched types
     --> src/main.rs:5:18
      |
    5 |     let x: i32 = "seven";
      |            ---   ^^^^^^^ expected `i32`, found `&str`

A headline, then the location on the next line (`` --> file:line:col``), then the
excerpt, notes and help, up to the first blank line.  The message is the headline
and that whole block: rustc's labels (``expected `i32`, found `&str```) live in the
excerpt.  A headline with a code (``error[E0601]``) needs no location; one with
neither is some other tool's ``error:`` line and is left alone.  Warnings take their
lint as the code (``= note: `#[warn(unused_variables)]` on by default``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from snapshotter.diagnostics.found import (
    MAX_BLOCK_LINES,
    MAX_FOUND,
    NUM,
    Found,
    diagnostic,
    message,
)
from snapshotter.diagnostics.output import Output

__all__ = ["ARROW", "arrow_blocks", "parse_rustc"]

# The location line, as the (optional) tail of a headline pattern, and as a lookahead.
ARROW = rf"\n[ \t]*--> (?P<file>[^\n]+?):(?P<line>{NUM}):(?P<col>{NUM})[ \t]*$"
_ANY_ARROW = rf"\n[ \t]*--> [^\n]+?:{NUM}:{NUM}[ \t]*$"

# A headline with a code, or one followed by a location: nothing else matches, so
# other tools' "error: ..." lines never reach Python.
_HEADLINE = re.compile(
    rf"^(?P<sev>error|warning)(?=\[|: [^\n]*{_ANY_ARROW})"
    rf"(?:\[(?P<code>[\w:-]{{1,64}})\])?: (?P<msg>[^\n]*)$(?:{ARROW})?",
    re.MULTILINE,
)
_LINT = re.compile(r"#\[(?:warn|deny|forbid)\((?P<lint>[\w:]{1,100})\)\]")

# (headline match, block lines after the headline) -> (severity, code)
Classify = Callable[[re.Match[str], list[str]], tuple[str, str | None]]


def arrow_blocks(out: Output, headline: re.Pattern[str], classify: Classify) -> list[Found]:
    """Blocks of a headline (whose pattern may end in :data:`ARROW`) up to a blank line."""
    lines = out.lines
    total = len(lines)
    found: list[Found] = []
    consumed = 0
    for index, m in out.matches(headline):
        if index < consumed:
            continue
        end = index + 1
        while end < total and end - index <= MAX_BLOCK_LINES and lines[end].strip():
            end += 1
        block = lines[index + 1 : end]
        severity, code = classify(m, block)
        located = m["file"] is not None
        found.append(
            Found(
                index,
                end,
                diagnostic(
                    m["file"],
                    int(m["line"]) if located else None,
                    int(m["col"]) if located else None,
                    severity,
                    code,
                    message(m["msg"], block),
                ),
            )
        )
        consumed = end
        if len(found) >= MAX_FOUND:
            break
    return found


def _rustc_kind(m: re.Match[str], block: list[str]) -> tuple[str, str | None]:
    code = m["code"]
    if code is None and m["sev"] == "warning":
        for text in block:
            lint = _LINT.search(text)
            if lint is not None:
                code = lint["lint"]
                break
    return m["sev"], code


def parse_rustc(out: Output) -> list[Found]:
    """rustc, cargo and clippy: ``error[E0308]: msg`` then `` --> src/main.rs:3:5``."""
    if "error" not in out.text and "warning" not in out.text:
        return []
    return arrow_blocks(out, _HEADLINE, _rustc_kind)
