"""Filters: every reason an episode is not a good training example.

Each filter is a named predicate over the :class:`Evidence` of one episode;
:func:`failed_filters` returns the names of all that hold, sorted, and the
miner stores them in ``episodes.filters`` so a rejected episode keeps its
reasons (rule 6 of the design).  An episode is kept when it fails none but
the informational ones (``revert``: a fix that exactly undoes the break is
kept, but flagged; ``error_silenced``: the green build still reports the red
build's error, as a warning, so the "fix" may have turned the check off rather
than repaired the code).  Adding a filter is adding an entry to :data:`FILTERS`.

``fix_unrelated_to_error``: the red build's errors name files inside the
workspace, and none of them is plausibly related (:mod:`miner.related`) to any
file the fix touches.  Errors without a file, or with one outside the workspace,
say nothing either way; when no error names a workspace file the filter passes.

A fix whose rebuilt states are identical fails both ``flaky`` (the same state
was built red, then green) and ``empty_fix`` (nothing to learn): the list
holds every filter that fails, not just the first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from miner.fingerprint import error_fingerprint, first_error, reported
from miner.related import any_related, workspace_file
from miner.settings import MinerSettings
from miner.states import StateDiff

# The red build failed for a reason outside the code: the runner, the machine.
_NOT_CODE_OUTPUT = re.compile(
    r"\btimed?[ -]?out\b|command not found|\bnot found: \S+|out of memory|\bkilled\b"
    r"|MemoryError|Cannot allocate memory|No space left on device",
    re.IGNORECASE,
)
# 126 cannot execute, 127 not found, 137 = 128 + SIGKILL; -9 is SIGKILL as Python reports it
_NOT_CODE_EXIT = frozenset({126, 127, 137, -9})
_WHITESPACE = re.compile(rb"\s+")


@dataclass(frozen=True)
class Evidence:
    """What the filters look at for one episode."""

    fix: StateDiff
    # red and green rows carry the same state_id (or the fix is empty)
    same_state: bool
    # G1 equals G0 on every path the break or the fix touches
    reverts_break: bool
    error: str | None
    exit_code: int | None
    # the red or green state could not be rebuilt from the dataset
    unrebuildable: bool = False
    red_diagnostics: Sequence[Mapping[str, Any]] = ()
    green_diagnostics: Sequence[Mapping[str, Any]] = ()
    # red-state content of files the red diagnostics name; None: not rebuildable
    error_files: Mapping[str, bytes | None] = field(default_factory=dict)


def _empty_fix(e: Evidence, s: MinerSettings) -> bool:
    # no line changes; a change to an omitted or binary file is omitted_only's case
    if e.unrebuildable or any(change.opaque for change in e.fix.changes):
        return False
    return e.fix.added + e.fix.removed == 0


def _fix_too_large(e: Evidence, s: MinerSettings) -> bool:
    return e.fix.added + e.fix.removed > s.max_fix_lines or len(e.fix.changes) > s.max_fix_files


def _whitespace_only(e: Evidence, s: MinerSettings) -> bool:
    if not e.fix.changes or any(change.opaque for change in e.fix.changes):
        return False
    return all(
        _WHITESPACE.sub(b"", c.old_content or b"") == _WHITESPACE.sub(b"", c.new_content or b"")
        for c in e.fix.changes
    )


def _omitted_only(e: Evidence, s: MinerSettings) -> bool:
    return bool(e.fix.changes) and all(change.opaque for change in e.fix.changes)


def _flaky(e: Evidence, s: MinerSettings) -> bool:
    return e.same_state or (not e.fix.changes and not e.unrebuildable)


def _revert(e: Evidence, s: MinerSettings) -> bool:
    return e.reverts_break and bool(e.fix.changes)


def _not_code_error(e: Evidence, s: MinerSettings) -> bool:
    if e.exit_code in _NOT_CODE_EXIT:
        return True
    return bool(e.error and _NOT_CODE_OUTPUT.search(e.error))


def _unrebuildable(e: Evidence, s: MinerSettings) -> bool:
    return e.unrebuildable


def _fix_unrelated_to_error(e: Evidence, s: MinerSettings) -> bool:
    if e.unrebuildable or not e.fix.changes:
        return False
    files = [
        path
        for d in e.red_diagnostics
        if (d.get("severity") or "").lower() in ("error", "fatal error")
        and (path := workspace_file(d.get("file"))) is not None
    ]
    if not files:
        return False
    contents: dict[str, bytes | None] = dict(e.error_files)
    for change in e.fix.changes:
        contents[change.path] = change.old_content
    return not any_related(files, e.fix.paths, contents)


def _error_silenced(e: Evidence, s: MinerSettings) -> bool:
    first = first_error(e.red_diagnostics)
    fingerprint = error_fingerprint(e.error, e.red_diagnostics)
    if first is None or fingerprint is None:
        return False
    return reported(fingerprint, first.get("file"), e.green_diagnostics)


FILTERS: dict[str, Callable[[Evidence, MinerSettings], bool]] = {
    "empty_fix": _empty_fix,
    "fix_too_large": _fix_too_large,
    "whitespace_only": _whitespace_only,
    "omitted_only": _omitted_only,
    "flaky": _flaky,
    "revert": _revert,
    "not_code_error": _not_code_error,
    "unrebuildable": _unrebuildable,
    "fix_unrelated_to_error": _fix_unrelated_to_error,
    "error_silenced": _error_silenced,
}

# Filters that flag an episode without rejecting it.
INFORMATIONAL = frozenset({"revert", "error_silenced"})


def failed_filters(evidence: Evidence, settings: MinerSettings) -> tuple[str, ...]:
    """The names of every filter ``evidence`` fails, sorted."""
    return tuple(sorted(name for name, test in FILTERS.items() if test(evidence, settings)))


def is_kept(filters: Iterable[str]) -> bool:
    return all(name in INFORMATIONAL for name in filters)
