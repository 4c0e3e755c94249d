"""Turn detected episodes into :class:`~miner.record.Episode` records.

For a candidate (G0, first red, red, G1 of one stream) :func:`plan` resolves
three comparisons from the dataset's rows alone (:mod:`miner.states`):
red -> G1 (the fix), G0 -> first red (the break) and G0 -> G1 (to spot a fix
that undoes the break), and names the blobs the diffs will read.  It also lists
the workspace files the red build's diagnostics name (errors' files first) and
where their red-state content is: a file the red state changed has its blob in
the red row; any other file has its content at the red state's base revision,
which the dataset holds only if some row recorded that file under that base
(:meth:`Plan.base_lookups`, answered in bulk by
:meth:`~miner.dataset.Dataset.base_blobs` and folded in by
:func:`with_base_blobs`).  A file whose red content cannot be rebuilt that way is
left out of the context.

The caller fetches the blobs of many plans in one query, then :func:`finish`
fills the record: diffs and their sizes, the context (the files the fix
touches, as at red, then the other files the red diagnostics name while the
total stays within ``max_context_bytes``), the error, its fingerprint, how many
distinct errors the red builds went through, and the filters.  Description and
split come later, from other stages.

A fix that cannot be rebuilt (a blob or a base change missing from the
dataset) fails the ``unrebuildable`` filter; a break that cannot be rebuilt
costs only ``break_diff``.

Files that are never part of a fix (``MinerSettings.fix_exclude``: lock files,
vendored trees) are removed from the rebuilt fix before anything reads it, so
``fix_diff``, ``fix_lines``, ``fix_files``, ``context`` and the filters never see
them; the revert check alone looks at the whole fix, since it asks what the
states are.  ``break_diff`` is kept whole: it records what broke.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from miner.dataset import BuildResult, SnapshotRow
from miner.episodes import Candidate
from miner.filters import Evidence, failed_filters, is_kept
from miner.fingerprint import error_fingerprint
from miner.record import ContextFile, Episode, episode_id
from miner.related import workspace_file
from miner.settings import MinerSettings
from miner.states import (
    ContentRef,
    StateDiff,
    StateRow,
    UnrebuildableError,
    blobs_needed,
    compare_states,
    diff_states,
    rows_between,
    working_ref,
)
from snapshotter.textdiff import is_binary

Pairs = dict[str, tuple[ContentRef, ContentRef]]
_ERROR_SEVERITIES = frozenset({"error", "fatal error"})


def _compare(x: StateRow, y: StateRow, bases: Sequence[StateRow]) -> Pairs | None:
    try:
        return compare_states(x, y, rows_between(bases, x, y))
    except UnrebuildableError:
        return None


def _diff(pairs: Pairs | None, contents: Mapping[str, bytes]) -> StateDiff | None:
    if pairs is None:
        return None
    try:
        return diff_states(pairs, contents)
    except UnrebuildableError:
        return None


def error_paths(diagnostics: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The workspace files ``diagnostics`` name, each once: errors' files first."""
    errors: list[str] = []
    others: list[str] = []
    for d in diagnostics:
        path = workspace_file(d.get("file"))
        if path is not None:
            severity = (d.get("severity") or "").lower()
            (errors if severity in _ERROR_SEVERITIES else others).append(path)
    return tuple(dict.fromkeys(errors + others))


def _text(content: bytes | None) -> str | None:
    if content is None or is_binary(content):
        return None
    return content.decode("utf-8", errors="replace")


def without_excluded(fix: StateDiff, settings: MinerSettings) -> tuple[StateDiff, tuple[str, ...]]:
    """``fix`` without the files ``settings.fix_exclude`` names, and those files."""
    excluded = tuple(path for path in fix.paths if settings.excluded_from_fix(path))
    if not excluded:
        return fix, ()
    kept = tuple(change for change in fix.changes if change.path not in excluded)
    return StateDiff(kept), excluded


def _context(
    fix: StateDiff, named: Sequence[tuple[str, bytes | None]], limit: int
) -> tuple[ContextFile, ...]:
    files = []
    for change in fix.changes:
        text = _text(change.old_content) if change.old.omitted is None else None
        if text is not None:
            files.append(ContextFile(change.path, text))
    size = sum(len(f.content.encode()) for f in files)
    in_fix = set(fix.paths)
    for path, content in named:
        text = _text(content)
        if path in in_fix or text is None:
            continue
        cost = len(text.encode())
        if size + cost > limit:
            continue
        files.append(ContextFile(path, text))
        size += cost
    return tuple(files)


def count_errors(builds: Iterable[BuildResult]) -> int:
    """How many distinct errors (error fingerprints) ``builds`` reported."""
    fingerprints = {error_fingerprint(b.output, b.diagnostics) for b in builds}
    fingerprints.discard(None)
    return len(fingerprints)


@dataclass(frozen=True)
class Plan:
    """One candidate with its rows and resolved comparisons, before any blob is read."""

    candidate: Candidate
    red: SnapshotRow
    green: SnapshotRow
    fix: Pairs | None
    breakage: Pairs | None
    # G0 -> G1, for the revert check
    round_trip: Pairs | None
    # workspace files the red diagnostics name, and their red-state content where known
    error_paths: tuple[str, ...] = ()
    error_refs: Mapping[str, ContentRef] = field(default_factory=dict)

    @property
    def blobs(self) -> set[str]:
        refs = {path: (ref, ref) for path, ref in self.error_refs.items()}
        return blobs_needed(self.fix or {}) | blobs_needed(self.breakage or {}) | blobs_needed(refs)

    def base_lookups(self) -> set[tuple[str, str]]:
        """``(base_rev, path)`` for the named files whose red content is the base's."""
        base_rev = self.red.state.base_rev
        if base_rev is None:
            return set()
        return {
            (base_rev, path)
            for path in self.error_paths
            if path not in self.error_refs
            and path not in self.red.state.files
            and path not in (self.fix or {})
        }


def plan(candidate: Candidate, rows: Mapping[str, SnapshotRow], bases: Sequence[StateRow]) -> Plan:
    """Resolve ``candidate``'s comparisons; ``bases`` are its stream's ``base`` rows."""
    g0 = rows[candidate.green_before_id].state
    first_red = rows[candidate.first_red_id].state
    red = rows[candidate.red_id]
    green = rows[candidate.green_id]
    fix = _compare(red.state, green.state, bases)
    named = error_paths(red.build.diagnostics if red.build else ())
    # files the fix touches come with the fix; files the red state changed, from its row
    refs = {
        path: working_ref(red.state.files[path])
        for path in named
        if path in red.state.files and path not in (fix or {})
    }
    return Plan(
        candidate=candidate,
        red=red,
        green=green,
        fix=fix,
        breakage=_compare(g0, first_red, bases),
        round_trip=_compare(g0, green.state, bases),
        error_paths=named,
        error_refs=refs,
    )


def with_base_blobs(plan: Plan, base_blobs: Mapping[tuple[str, str], str]) -> Plan:
    """``plan`` with the base content found for its :meth:`Plan.base_lookups`."""
    found = {
        path: ContentRef(base_blobs[(base_rev, path)])
        for base_rev, path in plan.base_lookups()
        if (base_rev, path) in base_blobs
    }
    return replace(plan, error_refs={**plan.error_refs, **found}) if found else plan


def finish(
    plan: Plan,
    contents: Mapping[str, bytes],
    settings: MinerSettings,
    red_builds: Sequence[BuildResult] = (),
) -> Episode:
    """The record of ``plan``, its filters applied; ``contents`` holds ``plan.blobs``.

    ``red_builds`` are the usable red builds of the episode, first to last; without
    them only the last red's counts for ``error_count``.
    """
    candidate, red = plan.candidate, plan.red
    build = red.build
    error = build.output if build else None
    diagnostics = build.diagnostics if build else ()
    rebuilt_fix = _diff(plan.fix, contents)
    whole_fix = rebuilt_fix or StateDiff(())
    breakage = _diff(plan.breakage, contents) or StateDiff(())
    # a revert leaves G1 equal to G0 on every path the break or the fix touched
    touched = set(whole_fix.paths) | set(breakage.paths)
    reverts = plan.round_trip is not None and not touched & set(plan.round_trip)
    fix, excluded = without_excluded(whole_fix, settings)
    red_state_id = red.state.state_id
    named = [
        (path, contents.get(ref.blob) if ref.available and ref.blob else None)
        for path in plan.error_paths
        if (ref := plan.error_refs.get(path)) is not None
    ]
    in_context = [
        (path, content) for path, content in named if not settings.excluded_from_fix(path)
    ]
    evidence = Evidence(
        fix=fix,
        same_state=red_state_id is not None and red_state_id == plan.green.state.state_id,
        reverts_break=rebuilt_fix is not None and reverts,
        error=error,
        exit_code=build.exit_code if build else None,
        unrebuildable=rebuilt_fix is None,
        red_diagnostics=diagnostics,
        green_diagnostics=plan.green.build.diagnostics if plan.green.build else (),
        error_files={path: None for path in plan.error_paths} | dict(named),
        excluded=excluded,
    )
    filters = failed_filters(evidence, settings)
    return Episode(
        episode_id=episode_id(candidate.red_id, candidate.green_id),
        host=candidate.host,
        user=red.user,
        workspace=candidate.workspace,
        vcs=red.vcs,
        green_before_id=candidate.green_before_id,
        first_red_id=candidate.first_red_id,
        red_id=candidate.red_id,
        green_id=candidate.green_id,
        red_started_at=candidate.red_started_at,
        red_ended_at=candidate.red_ended_at,
        red_seconds=(candidate.red_ended_at - candidate.red_started_at).total_seconds(),
        red_snapshots=candidate.red_snapshots,
        error=error,
        diagnostics=diagnostics,
        error_fingerprint=error_fingerprint(error, diagnostics),
        fix_diff=fix.text,
        fix_lines=fix.added + fix.removed,
        fix_files=len(fix.changes),
        break_diff=breakage.text,
        context=_context(fix, in_context, settings.max_context_bytes),
        filters=filters,
        kept=is_kept(filters),
        fix_paths=tuple(fix.paths),
        error_count=count_errors(red_builds or ([build] if build else [])),
    )
