"""Near-duplicate episodes: grouped, one kept, the others flagged ``duplicate``.

A developer who makes the same slip twice, or two developers who fix the same
kind of error the same way, give episodes that teach a model one thing twice
and, split apart, let the test set leak into training.  Two episodes are
near-duplicates when they have the same ``error_fingerprint`` (already blind to
names, paths and numbers, :mod:`miner.fingerprint`) and the same *normalised
fix*:

    for each file of fix_diff: its extension (or its name, without one), then
    each added and removed line, sign kept, as masked tokens
    (:func:`miner.code_tokens.masked`: identifiers <id>, strings <str>,
    numbers <n>, keywords kept, whitespace gone); blank lines dropped;
    headers, hunk ranges and context lines ignored
    the files' blocks sorted, so file names and their order do not count

so renaming ``totl`` to ``total`` in ``report.py`` on one host and ``cnt`` to
``count`` in ``stats.py`` on another is one group.  The group's key, 16 hex
digits of a hash of the fingerprint and the normalised fix, is stored in
``dup_group`` for every episode whose fix is not empty (a singleton has one too,
so a later run's groups can be compared).

In each group, whatever the host, the representative is the earliest episode by
``(red_ended_at, episode_id)`` among those no other filter rejects; the others
get the ``duplicate`` filter and are no longer kept.  An episode that failed
other filters never represents its group, but is marked a duplicate of the one
that does.  A group with no kept member has no representative and no
duplicates.  The result depends only on the episodes, never on their order.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import PurePosixPath

from miner.code_tokens import masked
from miner.filters import DUPLICATE, is_kept
from miner.record import Episode

_FILE_HEADER = "diff --git "
_BINARY = "Binary files "


def _kind(path: str) -> str:
    name = PurePosixPath(path).name
    suffix = PurePosixPath(name).suffix
    return (suffix or name).lower()


def _file_blocks(fix_diff: str) -> list[list[str]]:
    """Per file of ``fix_diff``: its kind, then its normalised changed lines."""
    blocks: list[list[str]] = []
    in_hunk = False
    for line in fix_diff.splitlines():
        if line.startswith(_FILE_HEADER):
            path = line.rsplit(" b/", 1)[-1].strip('"')
            blocks.append([_kind(path)])
            in_hunk = False
        elif not blocks:
            continue
        elif line.startswith("@@"):
            in_hunk = True
        elif not in_hunk:
            # headers: ---/+++ (which a removed "-- x" line would look like), modes
            if line.startswith(_BINARY):
                blocks[-1].append("binary")
        elif line[:1] in ("+", "-"):
            text = " ".join(masked(line[1:]))
            if text:
                blocks[-1].append(line[0] + text)
    return blocks


def normalised_fix(fix_diff: str) -> str:
    """``fix_diff`` as near-duplicate grouping compares it (see the module docstring)."""
    return "\n\n".join(sorted("\n".join(block) for block in _file_blocks(fix_diff)))


def dup_group(error_fingerprint: str | None, fix_diff: str) -> str | None:
    """The near-duplicate group of an episode; None when its fix is empty."""
    if not fix_diff:
        return None
    key = f"{error_fingerprint or ''}\n{normalised_fix(fix_diff)}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _order(episode: Episode) -> tuple[object, str]:
    return (episode.red_ended_at, episode.episode_id)


def mark_duplicates(episodes: Sequence[Episode]) -> list[Episode]:
    """``episodes`` in the same order, with ``dup_group`` set and duplicates flagged."""
    grouped = [replace(e, dup_group=dup_group(e.error_fingerprint, e.fix_diff)) for e in episodes]
    members: dict[str, list[Episode]] = defaultdict(list)
    for episode in grouped:
        if episode.dup_group is not None:
            members[episode.dup_group].append(episode)
    representative: dict[str, str] = {}
    for group, group_members in members.items():
        # a rerun over already flagged episodes must pick the same one
        eligible = [e for e in group_members if is_kept(f for f in e.filters if f != DUPLICATE)]
        if eligible:
            representative[group] = min(eligible, key=_order).episode_id
    result = []
    for episode in grouped:
        filters = tuple(f for f in episode.filters if f != DUPLICATE)
        chosen = representative.get(episode.dup_group or "")
        if chosen is not None and chosen != episode.episode_id:
            filters = tuple(sorted((*filters, DUPLICATE)))
        result.append(replace(episode, filters=filters, kept=is_kept(filters)))
    return result
