"""The verify flow: replay each kept episode and record whether its fix holds.

For one episode, in a warm worker's scratch copy with the red state laid over
the base revision:

    build            must be red with the recorded error fingerprint   else not_red
    patch fix_diff   must apply cleanly                                 else does_not_apply
    build            must be green                                      else not_green
                                                                        -> reproduced

An episode whose base revision no repository here holds is ``no_repo``.  The
outcome and both builds' output (each bounded) go to ``verified`` and
``verify_output``; :func:`verify_out_dir` writes OUT/episodes.parquet and
train.jsonl again, atomically, and a disproved episode leaves train.jsonl
(:attr:`~miner.record.Episode.usable`).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from miner.describe_stage import read_episodes
from miner.output import prepare_out_dir, write_episodes, write_train
from miner.record import DOES_NOT_APPLY, NO_REPO, NOT_GREEN, NOT_RED, REPRODUCED, Episode
from miner.verify.states import RedState, red_states
from miner.verify.workers import Attempt, Laid, WorkerPool
from snapshotter.build import BuildLimits

# the outcomes in the order a summary lists them
OUTCOMES = (REPRODUCED, NOT_RED, DOES_NOT_APPLY, NOT_GREEN, NO_REPO)
# characters of each build's output kept in verify_output (its tail)
OUTPUT_KEEP = 16 * 1024


@dataclass(frozen=True)
class Verdict:
    verified: str
    output: str


@dataclass(frozen=True)
class VerifyReport:
    selected: int
    outcomes: dict[str, int]
    seconds: float
    files: tuple[Path, ...] = ()


def _tail(text: str) -> str:
    if len(text) <= OUTPUT_KEEP:
        return text
    return f"[redgreen: {len(text) - OUTPUT_KEEP} characters cut]\n" + text[-OUTPUT_KEEP:]


def _section(title: str, attempt: Attempt) -> str:
    fingerprint = f", error {attempt.fingerprint}" if attempt.fingerprint else ""
    body = _tail(attempt.output)
    if body and not body.endswith("\n"):
        body += "\n"
    return f"== {title} build: {attempt.status}{fingerprint}\n{body}"


def verify_laid(laid: Laid, fix_diff: str) -> Verdict:
    """The verdict on one red state laid in a scratch copy and its fix."""
    state = laid.state
    notes = ""
    if state.omitted:
        notes = f"== note: not in the dataset, base content used: {', '.join(state.omitted)}\n"
    red = laid.build()
    parts = [notes, _section("red", red)]
    if red.status != "red" or red.fingerprint != state.red_fingerprint:
        expected = state.red_fingerprint or "none"
        parts.append(f"== expected: red with error {expected}\n")
        return Verdict(NOT_RED, "".join(parts))
    problem = laid.apply(fix_diff)
    if problem is not None:
        parts.append(f"== fix diff does not apply\n{_tail(problem)}\n")
        return Verdict(DOES_NOT_APPLY, "".join(parts))
    green = laid.build()
    parts.append(_section("fix", green))
    return Verdict(REPRODUCED if green.status == "green" else NOT_GREEN, "".join(parts))


def verify_episodes(
    episodes: Sequence[Episode],
    states: dict[str, RedState],
    pool: WorkerPool,
    on_done: Callable[[Episode, Verdict], None] | None = None,
) -> list[Verdict]:
    """The verdict on each episode (whose red state is in ``states``), in order."""

    def job(laid: Laid, episode: Episode) -> Verdict:
        verdict = verify_laid(laid, episode.fix_diff)
        if on_done is not None:
            on_done(episode, verdict)
        return verdict

    by_id = {e.episode_id: e for e in episodes}

    def unavailable(state: RedState, why: str) -> Verdict:
        verdict = Verdict(NO_REPO, why + "\n")
        if on_done is not None:  # an episode without its repository is done too
            on_done(by_id[state.episode_id], verdict)
        return verdict

    items = [(states[e.episode_id], e) for e in episodes]
    return pool.run(items, job, unavailable)


def verify_out_dir(
    data_dir: Path,
    out_dir: Path,
    *,
    repo: Path | None = None,
    jobs: int | None = None,
    limit: int | None = None,
    limits: BuildLimits | None = None,
    refresh: bool = False,
    scratch_root: Path | None = None,
    on_done: Callable[[Episode, Verdict], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> VerifyReport:
    """``miner verify``: verify OUT's kept episodes and write its files again.

    Only episodes not verified yet, unless ``refresh``; at most ``limit``.  A
    refreshed episode whose repository is gone keeps its earlier verdict.
    ``on_start`` gets the number of episodes selected once their red states are read,
    before any is built; with none selected it is not called.
    """
    began = time.monotonic()
    prepare_out_dir(out_dir)
    episodes = read_episodes(out_dir)
    chosen = [i for i, e in enumerate(episodes) if e.kept and (refresh or e.verified is None)]
    if limit is not None:
        chosen = chosen[:limit]
    if not chosen:
        return VerifyReport(0, {}, time.monotonic() - began)
    selected = [episodes[i] for i in chosen]
    states = red_states(data_dir, selected, repo)
    if on_start is not None:  # after red_states, whose errors must come before any bar
        on_start(len(chosen))
    workers = jobs or os.cpu_count() or 1
    with WorkerPool(workers, limits or BuildLimits(), scratch_root) as pool:
        verdicts = verify_episodes(selected, states, pool, on_done)
    merged = list(episodes)
    for index, verdict in zip(chosen, verdicts, strict=True):
        earlier = episodes[index].verified
        if verdict.verified == NO_REPO and earlier not in (None, NO_REPO):
            # a --refresh away from the repository proves nothing: keep the replay's verdict
            continue
        merged[index] = replace(
            episodes[index], verified=verdict.verified, verify_output=verdict.output
        )
    files = (write_episodes(out_dir, merged), write_train(out_dir, merged))
    counts = Counter(v.verified for v in verdicts)
    outcomes = {name: counts[name] for name in OUTCOMES if counts[name]}
    return VerifyReport(len(chosen), outcomes, time.monotonic() - began, files)
