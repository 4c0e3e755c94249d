"""The miner's funnel, overall and per host: how much of what was recorded became data.

    snapshots -> usable states -> episodes -> after each rejecting filter -> kept
                                                        kept -> verified, described

``snapshots`` counts every recorded row (state, build, heartbeat, start, stop
and base rows alike: what ``miner run`` reports as "snapshots read");
``usable states`` the rows whose build result is green or red and was computed
on the row's own state, ``base`` rows excluded (the rows ``episodes.sql``
detects episodes over).  Both come from the dataset directory; without one the
funnel starts at ``episodes`` and says why.  Everything else comes from
``OUT/episodes.parquet``.

The filter steps are sequential: an episode leaves the funnel at the first
rejecting filter it fails, in :data:`miner.filters.FILTERS` order, so each
step's ``removed`` counts the episodes it alone took out there (an episode
failing two filters is removed by the earlier one).  The filter names come
from ``FILTERS`` and from the data at run time: a name the data holds that
this version does not know is a rejecting step after the known ones.
Informational filters flag without rejecting; they are counted in ``flagged``.

``verified`` and ``described`` both count among the kept: ``verified`` are the
episodes ``miner verify`` reproduced, ``described`` the lines of
``train.jsonl`` (:attr:`Episode.usable`: an unverified episode is described
too, a disproved one is not).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from miner.dataset import Dataset, first_line
from miner.describe_stage import read_episodes
from miner.errors import DatasetError
from miner.filters import FILTERS, INFORMATIONAL
from miner.record import REPRODUCED, Episode
from schemas.files import Skipped

# Rows recorded, and usable states (the `usable` rows of episodes.sql), per host.
SNAPSHOTS_BY_HOST_SQL = "SELECT host, count(*) FROM snapshots GROUP BY host"
USABLE_STATES_BY_HOST_SQL = """
SELECT host, count(*) FROM (
    SELECT DISTINCT host, workspace, snapshot_id
    FROM snapshots
    WHERE build.state_id = state_id
      AND build.status IN ('green', 'red')
      AND reason IS DISTINCT FROM 'base'
)
GROUP BY host
"""


@dataclass(frozen=True)
class FilterStep:
    """One rejecting filter in the funnel: what it removed, what is left after it."""

    name: str
    removed: int
    remaining: int


@dataclass(frozen=True)
class Funnel:
    """The funnel of one host, or of all (``host`` None with ``overall`` set)."""

    host: str | None
    overall: bool
    # None: the dataset directory could not be read (see Stats.dataset_note)
    snapshots: int | None
    usable_states: int | None
    episodes: int
    filters: tuple[FilterStep, ...]
    kept: int
    verified: int
    described: int
    # informational filters: how many kept-or-not episodes each flags
    flagged: tuple[tuple[str, int], ...]

    @property
    def label(self) -> str:
        if self.overall:
            return "overall"
        return self.host if self.host is not None else "(no host)"

    def steps(self) -> list[tuple[str, int | None]]:
        """Every step as (name, count), in funnel order; the dataset steps only if known."""
        steps: list[tuple[str, int | None]] = []
        if self.snapshots is not None:
            steps += [("snapshots", self.snapshots), ("usable states", self.usable_states)]
        steps.append(("episodes", self.episodes))
        steps += [(f"after {step.name}", step.remaining) for step in self.filters]
        steps += [("kept", self.kept), ("verified", self.verified), ("described", self.described)]
        return steps

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {} if self.overall else {"host": self.host}
        document |= {
            "snapshots": self.snapshots,
            "usable_states": self.usable_states,
            "episodes": self.episodes,
            "filters": [
                {"name": s.name, "removed": s.removed, "remaining": s.remaining}
                for s in self.filters
            ],
            "kept": self.kept,
            "verified": self.verified,
            "described": self.described,
            "flagged": dict(self.flagged),
        }
        return document


@dataclass(frozen=True)
class Stats:
    overall: Funnel
    hosts: tuple[Funnel, ...]
    # the rejecting filters, in funnel order
    filter_names: tuple[str, ...]
    data_dir: Path | None
    # why the dataset steps are missing (None: they are there)
    dataset_note: str | None

    @property
    def funnels(self) -> tuple[Funnel, ...]:
        """Overall first, then each host."""
        return (self.overall, *self.hosts)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": {
                "data_dir": None if self.data_dir is None else str(self.data_dir),
                "note": self.dataset_note,
            },
            "filters": list(self.filter_names),
            "overall": self.overall.to_json(),
            "hosts": [funnel.to_json() for funnel in self.hosts],
        }


def rejecting_filters(episodes: Iterable[Episode]) -> tuple[str, ...]:
    """The rejecting filters in funnel order: FILTERS' order, then unknown names sorted."""
    known = [name for name in FILTERS if name not in INFORMATIONAL]
    seen = {name for e in episodes for name in e.filters}
    unknown = sorted(seen - set(FILTERS) - INFORMATIONAL)
    return (*known, *unknown)


def funnel(
    episodes: Sequence[Episode],
    filter_names: Sequence[str],
    *,
    host: str | None = None,
    overall: bool = False,
    snapshots: int | None = None,
    usable_states: int | None = None,
) -> Funnel:
    """The funnel of ``episodes`` through ``filter_names`` (rejecting, in order)."""
    position = {name: i for i, name in enumerate(filter_names)}
    removed_at: Counter[int] = Counter()
    for episode in episodes:
        failed = [position[name] for name in episode.filters if name in position]
        if failed:
            removed_at[min(failed)] += 1
    steps, remaining = [], len(episodes)
    for i, name in enumerate(filter_names):
        remaining -= removed_at[i]
        steps.append(FilterStep(name, removed_at[i], remaining))
    flags = Counter(name for e in episodes for name in set(e.filters) if name in INFORMATIONAL)
    return Funnel(
        host=host,
        overall=overall,
        snapshots=snapshots,
        usable_states=usable_states,
        episodes=len(episodes),
        filters=tuple(steps),
        kept=sum(e.kept for e in episodes),
        verified=sum(e.kept and e.verified == REPRODUCED for e in episodes),
        described=sum(e.usable for e in episodes),
        flagged=tuple(sorted(flags.items())),
    )


@dataclass(frozen=True)
class DatasetCounts:
    snapshots: dict[str | None, int]
    usable_states: dict[str | None, int]


def dataset_counts(
    data_dir: Path,
    *,
    strict: bool = False,
    on_skipped: Callable[[Skipped], None] | None = None,
) -> DatasetCounts:
    """Snapshots and usable states per host (raises DatasetError when unreadable)."""
    with Dataset(data_dir, strict=strict) as dataset:
        if on_skipped is not None:
            for skipped in dataset.skipped:
                on_skipped(skipped)
        try:
            snapshots = dict(dataset.con.execute(SNAPSHOTS_BY_HOST_SQL).fetchall())
            usable = dict(dataset.con.execute(USABLE_STATES_BY_HOST_SQL).fetchall())
        except duckdb.Error as exc:
            raise DatasetError(f"cannot read dataset {data_dir}: {first_line(exc)}") from exc
    return DatasetCounts(snapshots, usable)


def _host_key(host: str | None) -> tuple[bool, str]:
    return (host is None, host or "")


def compute_stats(
    out_dir: Path,
    data_dir: Path | None = None,
    *,
    strict: bool = False,
    on_skipped: Callable[[Skipped], None] | None = None,
    episodes: Sequence[Episode] | None = None,
) -> Stats:
    """The funnel of ``out_dir``'s episodes, starting at ``data_dir``'s snapshots if given.

    A missing or unreadable dataset leaves the dataset steps out, with the reason in
    ``dataset_note`` (with ``strict`` an unreadable file is still an error); a missing
    ``episodes.parquet`` is an OutputError.  ``episodes``: already read, to skip reading.
    """
    if episodes is None:
        episodes = read_episodes(out_dir)
    counts: DatasetCounts | None = None
    note = None
    if data_dir is None:
        note = "no dataset directory given"
    else:
        try:
            counts = dataset_counts(data_dir, strict=strict, on_skipped=on_skipped)
        except DatasetError as exc:
            if strict and data_dir.is_dir():
                raise
            note = str(exc)
    names = rejecting_filters(episodes)
    by_host: dict[str | None, list[Episode]] = {}
    for episode in episodes:
        by_host.setdefault(episode.host, []).append(episode)
    hosts = set(by_host)
    if counts is not None:
        hosts |= set(counts.snapshots)

    def steps(host: str | None) -> tuple[int | None, int | None]:
        if counts is None:
            return None, None
        return counts.snapshots.get(host, 0), counts.usable_states.get(host, 0)

    def make(group: Sequence[Episode], host: str | None, total: bool) -> Funnel:
        snapshots, usable = (
            (sum(counts.snapshots.values()), sum(counts.usable_states.values()))
            if counts is not None and total
            else steps(host)
        )
        return funnel(
            group,
            names,
            host=host,
            overall=total,
            snapshots=snapshots,
            usable_states=usable,
        )

    overall = make(episodes, None, True)
    per_host = tuple(make(by_host.get(h, []), h, False) for h in sorted(hosts, key=_host_key))
    return Stats(overall, per_host, names, data_dir, note)


def format_stats(stats: Stats) -> str:
    """The funnel as an aligned table: a row per step, a column per funnel (overall first).

    A filter row reads ``remaining (-removed)``.
    """
    funnels = stats.funnels
    header = ["step", *(f.label for f in funnels)]
    rows: list[list[str]] = []
    if stats.dataset_note is None:
        rows.append(["snapshots", *(str(f.snapshots) for f in funnels)])
        rows.append(["usable states", *(str(f.usable_states) for f in funnels)])
    rows.append(["episodes", *(str(f.episodes) for f in funnels)])
    for i, name in enumerate(stats.filter_names):
        cells = [f"{f.filters[i].remaining} (-{f.filters[i].removed})" for f in funnels]
        rows.append([f"  {name}", *cells])
    rows.append(["kept", *(str(f.kept) for f in funnels)])
    rows.append(["verified", *(str(f.verified) for f in funnels)])
    rows.append(["described", *(str(f.described) for f in funnels)])
    flagged = sorted({name for f in funnels for name, _ in f.flagged})
    for name in flagged:
        rows.append([f"flagged {name}", *(str(dict(f.flagged).get(name, 0)) for f in funnels)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    if stats.dataset_note is not None:
        lines.append(f"snapshots, usable states: not counted ({stats.dataset_note})")
    for row in [header, *rows]:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]).rstrip())
    return "\n".join(lines) + "\n"
