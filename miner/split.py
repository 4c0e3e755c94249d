"""The train/test split: held out by time per host, or by developer, never leaking.

Only kept episodes get a split; the others get none.  The split never cuts a
near-duplicate group (``dup_group``, :mod:`miner.hygiene`): every kept member of
a group lands where the group's earliest member (by ``red_ended_at``, then
``episode_id``) is placed.  After duplicate marking a group has at most one kept
member, but the split does not rely on that.

``time`` (the default): the test set is the future.  A model evaluated on the
latest episodes of each host was trained only on what came before them, as it
would be in use.  For each host, the kept episodes (a group counts at its
earliest member's host and time) are ordered by ``red_ended_at`` (ties by
``episode_id``) and the latest ``floor(n * fraction)`` go to ``test``, the rest
to ``train``; a group that reaches over that line goes to ``test`` whole.

``developer``: the test set is people the model never saw.  A developer is the
episode's ``user`` (else its host); whole developers are held out, in the order
of a hash of their names, until ``test`` holds ``floor(n * fraction)`` kept
episodes, so it can hold more.  Developers that share a near-duplicate group
are held out together, and one developer always stays in ``train`` unless the
fraction is 1.  No developer is in both splits.

The result depends only on the episodes, not on their order, so a rerun gives
the same split.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from miner.record import Episode
from miner.settings import SPLIT_BY_DEVELOPER, SPLIT_BY_TIME

TRAIN = "train"
TEST = "test"

# the epsilon keeps 0.3 * 10 at 3 despite binary floating point
_EPSILON = 1e-9

Unit = list[Episode]  # episodes that share a split: one, or the kept members of a group


def _order(episode: Episode) -> tuple[object, str]:
    return (episode.red_ended_at, episode.episode_id)


def _units(kept: Sequence[Episode]) -> list[Unit]:
    """The kept episodes by group (alone without one), each unit earliest first."""
    groups: dict[str, Unit] = defaultdict(list)
    units: list[Unit] = []
    for episode in kept:
        if episode.dup_group is None:
            units.append([episode])
        else:
            groups[episode.dup_group].append(episode)
    units.extend(groups.values())
    for unit in units:
        unit.sort(key=_order)
    units.sort(key=lambda unit: _order(unit[0]))
    return units


def _share(n: int, test_fraction: float) -> int:
    return math.floor(n * test_fraction + _EPSILON)


def _test_by_time(units: Sequence[Unit], test_fraction: float) -> list[Unit]:
    per_host: dict[str | None, list[Unit]] = defaultdict(list)
    for unit in units:
        per_host[unit[0].host].append(unit)
    held_out: list[Unit] = []
    for host_units in per_host.values():
        wanted = _share(sum(len(u) for u in host_units), test_fraction)
        taken = 0
        for unit in reversed(host_units):  # latest first
            if taken >= wanted:
                break
            held_out.append(unit)
            taken += len(unit)
    return held_out


def developer(episode: Episode) -> str:
    """Who the developer split holds out: the user, else the host."""
    return episode.user or episode.host or ""


def _test_by_developer(units: Sequence[Unit], test_fraction: float) -> list[Unit]:
    # developers who share a group are one cluster (union-find over their names)
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for unit in units:
        first = root(developer(unit[0]))
        for episode in unit[1:]:
            other = root(developer(episode))
            if other != first:
                parent[other] = first
    clusters: dict[str, list[Unit]] = defaultdict(list)
    names: dict[str, set[str]] = defaultdict(set)
    for unit in units:
        key = root(developer(unit[0]))
        clusters[key].append(unit)
        names[key].update(developer(e) for e in unit)

    def hash_order(key: str) -> str:
        return hashlib.sha256("\n".join(sorted(names[key])).encode()).hexdigest()

    wanted = _share(sum(len(u) for u in units), test_fraction)
    ordered = sorted(clusters, key=hash_order)
    held_out: list[Unit] = []
    taken = 0
    for index, key in enumerate(ordered):
        last = index == len(ordered) - 1
        if taken >= wanted or (last and test_fraction < 1.0):
            break
        held_out.extend(clusters[key])
        taken += sum(len(u) for u in clusters[key])
    return held_out


_HOLD_OUT = {SPLIT_BY_TIME: _test_by_time, SPLIT_BY_DEVELOPER: _test_by_developer}


def assign_splits(
    episodes: Sequence[Episode], test_fraction: float, split_by: str = SPLIT_BY_TIME
) -> list[Episode]:
    """``episodes`` in the same order, each with its split set (None: not kept)."""
    kept = [e for e in episodes if e.kept]
    held_out = _HOLD_OUT[split_by](_units(kept), test_fraction)
    test = {e.episode_id for unit in held_out for e in unit}
    splits = {e.episode_id: TEST if e.episode_id in test else TRAIN for e in kept}
    return [replace(e, split=splits.get(e.episode_id)) for e in episodes]
