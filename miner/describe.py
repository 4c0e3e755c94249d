"""Describers: turn a mined episode into a description and a short prompt.

A describer is anything with a ``name`` (stored in ``episodes.describer``)
and a ``describe(episode)`` method; :data:`DESCRIBERS` maps a name to a
factory, so choosing one is data, not an ``if`` chain.  The ``offline``
describer is the embedded default: no network, only the diagnostics, the
error text and the names of the files the fix touches, e.g. ``Fix the syntax
error in calc.py``.  Every episode gets its description first; the LLM
describer (:mod:`miner.llm`, asynchronous and batched, so not one of these)
then describes the kept ones again when a model is configured.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from miner.errors import MinerError
from miner.fingerprint import error_line
from miner.record import Episode


@dataclass(frozen=True)
class Description:
    description: str
    prompt: str
    error_kind: str | None = None


class Describer(Protocol):
    @property
    def name(self) -> str: ...

    def describe(self, episode: Episode) -> Description: ...


# Error kinds, each recognised by the words compilers and interpreters use.
# The kind whose words appear first in the error text wins: the first error
# reported is usually the cause of the others.
ERROR_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        (
            "syntax error",
            r"SyntaxError|IndentationError|TabError|[Ss]yntax error|[Pp]arse error"
            r"|expected ['\"`‘][;:,)(}{\]\[]|unexpected token|unexpected EOF|unterminated",
        ),
        (
            "import error",
            r"ImportError|ModuleNotFoundError|No module named|[Cc]annot find module"
            r"|unresolved import|could not find module|fatal error: \S+: No such file",
        ),
        (
            "undefined name",
            r"NameError|undefined name|undeclared identifier|\bundeclared\b"
            r"|was not declared in this scope|is not defined|cannot find symbol"
            r"|cannot find value|Unbound value"
            r"|unresolved name|implicit declaration of function|undefined variable",
        ),
        (
            "type error",
            r"TypeError|[Tt]ype error|incompatible type|[Ii]ncompatible types|mismatched types"
            r"|type mismatch|This expression has type|cannot convert|invalid conversion"
            r"|is not assignable to|has no attribute|AttributeError",
        ),
        (
            "link error",
            r"undefined reference to|ld returned|unresolved external symbol|Undefined symbols",
        ),
        (
            "wrong number of arguments",
            r"applied to too many arguments|function application is partial|arguments? (?:are|is)"
            r" missing|[Tt]oo (?:many|few) arguments|not enough arguments|[Ee]xpected \d+"
            r" arguments?, but got|takes \d+ (?:positional )?arguments? but",
        ),
        (
            "non-exhaustive match",
            r"not exhaustive|non-exhaustive patterns|partial-match|[Nn]on-exhaustive",
        ),
        ("failing test", r"AssertionError|\bFAILED\b|[Tt]ests? failed|assertion failed"),
    )
)
DEFAULT_KIND = "build error"
_ERROR_SEVERITIES = frozenset({"error", "fatal", "fatal error"})


def error_kind(text: str) -> str:
    """The kind of error ``text`` reports first, or ``build error``."""
    best: tuple[int, str] | None = None
    for kind, pattern in ERROR_KINDS:
        match = pattern.search(text)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), kind)
    return best[1] if best else DEFAULT_KIND


def _first_error(diagnostics: tuple[Mapping[str, Any], ...]) -> Mapping[str, Any] | None:
    for diagnostic in diagnostics:
        if (diagnostic.get("severity") or "").lower() in _ERROR_SEVERITIES:
            return diagnostic
    return diagnostics[0] if diagnostics else None


def _same_file(diagnostic_file: str, path: str) -> bool:
    # diagnostics may name a file relative to another directory, or absolutely
    return diagnostic_file == path or diagnostic_file.endswith("/" + path)


def _files_phrase(paths: list[str]) -> str:
    if len(paths) == 1:
        return paths[0]
    if len(paths) == 2:
        return f"{paths[0]} and {paths[1]}"
    return f"{paths[0]} and {len(paths) - 1} other files"


class OfflineDescriber:
    """Describes an episode from its own data, with no model and no network."""

    name = "offline"

    def describe(self, episode: Episode) -> Description:
        first = _first_error(episode.diagnostics)
        # a diagnostic's message may go on over several lines: its first one says it
        message = str(first.get("message") or "").partition("\n")[0] if first else ""
        # without diagnostics, the output's telling line stands in for the message
        quoted = message or error_line(episode.error, episode.diagnostics) or ""
        code = str(first.get("code") or "") if first else ""
        kind = error_kind(f"{code} {message}") if message or code else DEFAULT_KIND
        if kind == DEFAULT_KIND:
            kind = error_kind(episode.error or "")
        paths = list(episode.fix_paths)
        where = str(first.get("file") or "") if first else ""
        # name the file the error points at first, when the fix touches it
        for path in paths:
            if where and _same_file(where, path):
                paths.remove(path)
                paths.insert(0, path)
                break
        if paths:
            prompt = f"Fix the {kind} in {_files_phrase(paths)}"
        elif where:
            prompt = f"Fix the {kind} in {where}"
        else:
            prompt = f"Fix the {kind}"
        sentences = [f"The build failed with a {kind}"]
        if where:
            line = first.get("line") if first else None
            sentences[0] += f" at {where}:{line}" if line else f" in {where}"
        if quoted:
            sentences[0] += f": {quoted.strip()}"
        sentences[0] += "."
        if episode.fix_paths:
            count = len(episode.fix_paths)
            noun = "file" if count == 1 else "files"
            sentences.append(
                f"The fix changes {episode.fix_lines} lines in {count} {noun}:"
                f" {', '.join(episode.fix_paths)}."
            )
        return Description(" ".join(sentences), prompt, kind)


DESCRIBERS: dict[str, Callable[..., Describer]] = {
    "offline": OfflineDescriber,
}


def get_describer(name: str, **options: Any) -> Describer:
    """The describer registered as ``name``, built with ``options``."""
    try:
        factory = DESCRIBERS[name]
    except KeyError:
        known = ", ".join(sorted(DESCRIBERS))
        raise MinerError(f"unknown describer {name!r} (known: {known})") from None
    return factory(**options)
