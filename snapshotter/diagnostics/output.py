"""Build output as the parsers read it: plain text, one list of lines, noise removed.

:func:`clean` runs once per output, with whole-text substitutions (C speed, linear):

- ANSI escapes go (colours, cursor moves, gcc's hyperlinks);
- carriage returns are resolved as a terminal shows them: ``\\r\\n`` ends a line, and
  a line rewritten in place (``Done: 3/9\\r...\\rFile "x.ml"``) keeps what was written
  last, so progress bars and spinners disappear;
- whole lines of build-tool noise are dropped (:data:`NOISE`): make's
  ``make: *** [...] Error 1``, dune's ``(cd _build/default && ...)`` command lines,
  cargo's ``Compiling``/``error: could not compile``, summaries like ``Found 3 errors``.

Noise is chatter about the build, never a diagnostic: a line that might be the only
explanation of a failure (``make: *** No rule to make target``) stays.
``Entering directory`` lines stay too: they say which directory the relative paths
that follow are relative to (:meth:`Output.directories`).

Parsers find their lines with :meth:`Output.matches`, one ``finditer`` of a
line-anchored pattern over the whole text, so a parser's Python code runs only where
its pattern matched and never once per line of a long output.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["MAX_CANDIDATES", "NOISE", "Output", "clean", "strip_ansi"]

MAX_CANDIDATES = 20_000

# CSI sequences (colours, cursor moves), OSC sequences (hyperlinks; never past a line
# end, so a stray ESC ] cannot swallow the output), and two-byte escapes.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"
    r"|\x1b[()][0-9A-Za-z]|\x1b[@-Z\\^_=>78]"
)
# Everything up to the last carriage return of a line was overwritten on screen.
_OVERWRITTEN = re.compile(r"^[^\n]*\r", re.MULTILINE)

_CARGO_STATUS = (
    "Compiling|Checking|Fresh|Documenting|Downloaded|Downloading|Locking|Adding|Updating"
    "|Packaging|Verifying|Installing|Replacing|Removing|Scraping"
)
NOISE = re.compile(
    # the lookahead lists every first character below: most lines fail at once
    r"^(?=[ \t(\[\dgmnceDCFLAUPVIRSBw])(?:"
    # make: the recipe failed (the reason is above it)
    r"(?:g?make|mingw32-make)(?:\[\d+\])?: \*\*\* "
    r"(?:\[[^\n]*\] (?:Error \d+|Killed|Segmentation fault|Interrupt)[^\n]*"
    r"|Waiting for unfinished jobs\.\.\.\.)"
    # dune: the command it ran, and the short form of a failed one
    r"|\(cd [^\n]*"
    r"|[ \t]+[\w.-]+ [^\n]* \(exit \d+\)"
    r"|Done: \d+/\d+[^\n]*"
    # cargo and rustc
    rf"|[ \t]{{0,12}}(?:{_CARGO_STATUS}) [\w.-]+ v\d[^\n]*"
    r"|[ \t]{0,12}(?:Finished|Running|Blocking|Building) [^\n]*(?:target\(s\)|`|file lock|\])[^\n]*"
    r"|error: could not compile `[^\n]*"
    r"|error: aborting due to [^\n]*"
    r"|warning: `[^`\n]*` \([^\n]*\) generated \d+ warnings?[^\n]*"
    r"|warning: build failed, waiting for other jobs to finish\.\.\."
    r"|Some errors have detailed explanations: [^\n]*"
    r"|For more information about (?:this|an) error, try `[^\n]*"
    # summaries: tsc, mypy, ruff, clang, gcc, ninja
    r"|Found \d+ errors?(?: in [^\n]*|\.)?"
    r"|\[\*\] \d+ fixable [^\n]*"
    r"|Success: no issues found[^\n]*"
    r"|\d+ warnings? (?:and \d+ errors? )?generated\."
    r"|\d+ errors? generated\."
    r"|compilation terminated\."
    r"|ninja: [^\n]*"
    r"|\[\d+/\d+\] [^\n]*"
    r")[ \t]*(?:\n|\Z)",
    re.MULTILINE,
)

# make[1]: Entering directory '/x'   dune: Entering directory '/x'   (quotes vary)
_DIRECTORY = re.compile(
    r"^(?:[\w.+-]+(?:\[\d+\])?: )?(?P<verb>Entering|Leaving) directory "
    r"[`'‘\"](?P<dir>[^'’\"\n]+)['’\"][ \t]*$",
    re.MULTILINE,
)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text


class Output:
    """Cleaned build output: ``text``, its ``lines`` (``text.split("\\n")``) and claims.

    ``claimed`` marks the lines a diagnostic was already read from (by a parser
    earlier in the registry); :meth:`matches` skips them.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        self.claimed = bytearray(len(self.lines))

    def matches(self, pattern: re.Pattern[str]) -> Iterator[tuple[int, re.Match[str]]]:
        """``(line index, match)`` for each match of ``pattern`` on an unclaimed line.

        ``pattern`` must be compiled with ``re.MULTILINE`` and start with ``^``; a
        match's line is the line it starts on (it may go on over the next lines with
        an explicit ``\\n``).  Counting newlines between consecutive matches keeps the
        walk linear.  At most :data:`MAX_CANDIDATES` matches are given: a build's
        output is capped far below that (64 KiB by default), so only pathological
        input reaches it, and for that the time stays bounded.
        """
        line, position = 0, 0
        text, claimed = self.text, self.claimed
        given = 0
        for match in pattern.finditer(text):
            start = match.start()
            line += text.count("\n", position, start)
            position = start
            if not claimed[line]:
                yield line, match
                given += 1
                if given >= MAX_CANDIDATES:
                    return

    def claim(self, start: int, end: int) -> None:
        self.claimed[start:end] = b"\x01" * (end - start)

    def directories(self) -> list[tuple[int, str | None]]:
        """``(line, directory)`` where the directory relative paths start from changes.

        ``None`` means back to the build's own directory.  Make and dune print
        ``Entering directory`` / ``Leaving directory``; nested entries form a stack.
        """
        changes: list[tuple[int, str | None]] = []
        stack: list[str] = []
        if "directory" not in self.text:
            return changes
        for line, match in self.matches(_DIRECTORY):
            if match["verb"] == "Entering":
                stack.append(match["dir"])
            elif stack:
                stack.pop()
            changes.append((line, stack[-1] if stack else None))
        return changes


def clean(output: str) -> Output:
    text = strip_ansi(output)
    if "\r" in text:
        text = _OVERWRITTEN.sub("", text.replace("\r\n", "\n"))
    return Output(NOISE.sub("", text))
