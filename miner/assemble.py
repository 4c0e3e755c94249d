"""Turn detected episodes into :class:`~miner.record.Episode` records.

For a candidate (G0, first red, red, G1 of one stream) :func:`plan` resolves
three comparisons from the dataset's rows alone (:mod:`miner.states`):
red -> G1 (the fix), G0 -> first red (the break) and G0 -> G1 (to spot a fix
that undoes the break), and names the blobs the diffs will read.  The caller
fetches the blobs of many plans in one query, then :func:`finish` fills the
record: diffs and their sizes, the context (files the fix touches, as at
red), the error and its fingerprint, and the filters.  Description and split
come later, from other stages.

A fix that cannot be rebuilt (a blob or a base change missing from the
dataset) fails the ``unrebuildable`` filter; a break that cannot be rebuilt
costs only ``break_diff``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from miner.dataset import SnapshotRow
from miner.episodes import Candidate
from miner.filters import Evidence, failed_filters, is_kept
from miner.fingerprint import error_fingerprint
from miner.record import ContextFile, Episode, episode_id
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
)
from snapshotter.textdiff import is_binary

Pairs = dict[str, tuple[ContentRef, ContentRef]]


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


def _context(fix: StateDiff) -> tuple[ContextFile, ...]:
    files = []
    for change in fix.changes:
        content = change.old_content
        if content is None or change.old.omitted is not None or is_binary(content):
            continue
        files.append(ContextFile(change.path, content.decode("utf-8", errors="replace")))
    return tuple(files)


@dataclass(frozen=True)
class Plan:
    """One candidate with its rows and resolved comparisons, before any blob is read."""

    candidate: Candidate
    red: SnapshotRow
    green_state_id: str | None
    fix: Pairs | None
    breakage: Pairs | None
    # G0 -> G1, for the revert check
    round_trip: Pairs | None

    @property
    def blobs(self) -> set[str]:
        return blobs_needed(self.fix or {}) | blobs_needed(self.breakage or {})


def plan(candidate: Candidate, rows: Mapping[str, SnapshotRow], bases: Sequence[StateRow]) -> Plan:
    """Resolve ``candidate``'s comparisons; ``bases`` are its stream's ``base`` rows."""
    g0 = rows[candidate.green_before_id].state
    first_red = rows[candidate.first_red_id].state
    red = rows[candidate.red_id]
    g1 = rows[candidate.green_id].state
    return Plan(
        candidate=candidate,
        red=red,
        green_state_id=g1.state_id,
        fix=_compare(red.state, g1, bases),
        breakage=_compare(g0, first_red, bases),
        round_trip=_compare(g0, g1, bases),
    )


def finish(plan: Plan, contents: Mapping[str, bytes], settings: MinerSettings) -> Episode:
    """The record of ``plan``, its filters applied; ``contents`` holds ``plan.blobs``."""
    candidate, red = plan.candidate, plan.red
    build = red.build
    error = build.output if build else None
    diagnostics = build.diagnostics if build else ()
    rebuilt_fix = _diff(plan.fix, contents)
    fix = rebuilt_fix or StateDiff(())
    breakage = _diff(plan.breakage, contents) or StateDiff(())
    # a revert leaves G1 equal to G0 on every path the break or the fix touched
    touched = set(fix.paths) | set(breakage.paths)
    reverts = plan.round_trip is not None and not touched & set(plan.round_trip)
    red_state_id = red.state.state_id
    evidence = Evidence(
        fix=fix,
        same_state=red_state_id is not None and red_state_id == plan.green_state_id,
        reverts_break=rebuilt_fix is not None and reverts,
        error=error,
        exit_code=build.exit_code if build else None,
        unrebuildable=rebuilt_fix is None,
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
        context=_context(fix),
        filters=filters,
        kept=is_kept(filters),
        fix_paths=tuple(fix.paths),
    )
