"""``miner eval`` as one typed call: held-out episodes in, pass rates out.

    read OUT/episodes.parquet -> kept episodes of the split, by id
    -> the red state of each (miner.verify.states; no repository: no_repo)
    -> with a model: ask it for a diff of each (miner.eval.ask)
    -> every distinct (episode, diff) attempted once in warm workers
       (miner.verify.workers): lay the red state, apply, build, revert
    -> one row per way of answering: apply nothing, the recorded fix, the model
    -> OUT/eval/<row>.jsonl (per episode) and <row>.summary.json, summary.json

The two baselines are sanity checks of the engine, not of a model: applying
nothing must leave every episode red (0%), and the developer's own fix must
turn it green (about 100%; below that, the episodes do not replay here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from miner.describe_stage import read_episodes
from miner.eval.ask import AskReport, ModelAnswer, ask_model
from miner.eval.score import (
    DOES_NOT_APPLY,
    NO_DIFF,
    NO_REPO,
    NOT_SENT,
    REQUEST_FAILED,
    UNKNOWN_KIND,
    EpisodeResult,
    RowSummary,
    summarize,
)
from miner.output import atomic_write, prepare_out_dir
from miner.record import Episode
from miner.verify.states import RedState, red_states
from miner.verify.workers import Attempt, WorkerPool
from snapshotter.build import BuildLimits

if TYPE_CHECKING:
    from miner.llm.client import LLMOptions

EVAL_DIR = "eval"
SUMMARY_FILE = "summary.json"
SPLITS = ("test", "train", "all")
# the tail of each build's output, and the start of each reply, kept per episode
OUTPUT_TAIL = 4000
REPLY_HEAD = 4000

NOTHING = ("baseline-nothing", "apply nothing")
RECORDED = ("baseline-recorded-fix", "recorded fix")


@dataclass(frozen=True)
class EvalReport:
    split: str
    selected: int  # kept episodes of the split (after --limit)
    no_repo: int
    rows: list[RowSummary]
    ask: AskReport | None = None
    files: tuple[Path, ...] = ()
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "split": self.split,
            "episodes": self.selected,
            "no_repo": self.no_repo,
            "rows": [row.to_json() for row in self.rows],
        }
        if self.ask is not None:
            document["requests"] = {
                "sent": self.ask.requests,
                "cache_hits": self.ask.cache_hits,
                "tokens_in": self.ask.tokens_in,
                "tokens_out": self.ask.tokens_out,
            }
        return document


@dataclass
class _Row:
    name: str
    label: str
    kind: str
    results: list[EpisodeResult] = field(default_factory=list)


def model_row_name(model: str) -> str:
    """A file stem for ``model``: names like ``org/model:tag`` hold characters paths cannot."""
    return "model-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model")


def select_episodes(episodes: Sequence[Episode], split: str, limit: int | None) -> list[Episode]:
    """Kept episodes of ``split`` (``all``: both), by id, at most ``limit``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    chosen = sorted(
        (e for e in episodes if e.kept and e.fix_diff and (split == "all" or e.split == split)),
        key=lambda e: e.episode_id,
    )
    return chosen[:limit] if limit is not None else chosen


def _kind(episode: Episode) -> str:
    return episode.error_kind or UNKNOWN_KIND


def _built(episode: Episode, attempt: Attempt, answer: ModelAnswer | None = None) -> EpisodeResult:
    return EpisodeResult(
        episode_id=episode.episode_id,
        error_kind=_kind(episode),
        outcome=attempt.status if attempt.applied else DOES_NOT_APPLY,
        applied=attempt.applied,
        status=attempt.status,
        fingerprint=attempt.fingerprint,
        diff=answer.diff if answer else None,
        reply=_start(answer.reply) if answer else None,
        output=attempt.output[-OUTPUT_TAIL:] if attempt.output else None,
    )


def _start(reply: str | None) -> str | None:
    return reply[:REPLY_HEAD] if reply is not None else None


def _unbuilt(episode: Episode, answer: ModelAnswer) -> EpisodeResult:
    """The model row's result for an episode whose answer gave nothing to build."""
    if answer.failure == "not_sent":
        outcome = NOT_SENT
    elif answer.failure is not None:
        outcome = REQUEST_FAILED
    else:
        outcome = NO_DIFF
    return EpisodeResult(
        episode_id=episode.episode_id,
        error_kind=_kind(episode),
        outcome=outcome,
        failure=answer.failure if outcome == REQUEST_FAILED else None,
        detail=answer.detail,
        reply=_start(answer.reply),
    )


def evaluate(
    out_dir: Path,
    data_dir: Path,
    *,
    split: str = "test",
    repo: Path | None = None,
    jobs: int = 1,
    limit: int | None = None,
    options: LLMOptions | None = None,
    limits: BuildLimits | None = None,
    on_answer: Callable[[Episode, ModelAnswer], None] | None = None,
) -> EvalReport:
    """Evaluate the baselines (and the model of ``options``) on ``out_dir``'s episodes.

    Without ``options`` nothing is sent anywhere.  With a dry run the model's
    requests go to the dry-run file and nothing is built or written.
    """
    episodes = select_episodes(read_episodes(out_dir), split, limit)
    states = red_states(data_dir, episodes, repo)
    here = [e for e in episodes if states[e.episode_id].repo is not None]
    no_repo = len(episodes) - len(here)

    ask: AskReport | None = None
    if options is not None:
        prepare_out_dir(out_dir)  # the answer cache lives there
        ask = ask_model(here, options, out_dir, on_answer)
        if options.dry_run is not None:
            return EvalReport(split, len(episodes), no_repo, [], ask, dry_run=True)

    # every (episode, diff) the rows need, attempted once
    wanted: dict[tuple[str, str | None], tuple[RedState, str | None]] = {}
    for episode in here:
        state = states[episode.episode_id]
        candidates: list[str | None] = [None, episode.fix_diff]
        if ask is not None and (diff := ask.answers[episode.episode_id].diff) is not None:
            candidates.append(diff)
        for diff in candidates:
            wanted.setdefault((episode.episode_id, diff), (state, diff))
    keys = list(wanted)
    attempts: dict[tuple[str, str | None], Attempt] = {}
    if keys:
        with WorkerPool(jobs, limits or BuildLimits()) as pool:
            done = pool.attempt([wanted[key] for key in keys])
        attempts = dict(zip(keys, done, strict=True))

    rows = [_Row(*NOTHING, "baseline"), _Row(*RECORDED, "baseline")]
    if options is not None:
        rows.append(_Row(model_row_name(options.model), options.model, "model"))
    for episode in episodes:
        if states[episode.episode_id].repo is None:
            gone = EpisodeResult(episode.episode_id, _kind(episode), NO_REPO)
            for row in rows:
                row.results.append(gone)
            continue
        nothing, recorded = rows[0], rows[1]
        nothing.results.append(_built(episode, attempts[(episode.episode_id, None)]))
        fix = episode.fix_diff
        recorded.results.append(_built(episode, attempts[(episode.episode_id, fix)]))
        if ask is not None:
            answer = ask.answers[episode.episode_id]
            if answer.diff is None:
                rows[2].results.append(_unbuilt(episode, answer))
            else:
                attempt = attempts[(episode.episode_id, answer.diff)]
                rows[2].results.append(_built(episode, attempt, answer))

    summaries = [summarize(r.name, r.label, r.kind, r.results) for r in rows]
    report = EvalReport(split, len(episodes), no_repo, summaries, ask)
    return replace(report, files=write_results(out_dir, rows, report))


def _jsonl(results: Sequence[EpisodeResult]) -> bytes:
    lines = (
        json.dumps(r.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n" for r in results
    )
    return "".join(lines).encode("utf-8")


def _json(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False) + "\n").encode()


def _writer(data: bytes) -> Callable[[IO[bytes]], None]:
    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    return write


def write_results(out_dir: Path, rows: Sequence[_Row], report: EvalReport) -> tuple[Path, ...]:
    """Each row's per-episode results and summary, then the run's summary, each atomically."""
    directory = out_dir / EVAL_DIR
    prepare_out_dir(directory)
    written = []
    for row, summary in zip(rows, report.rows, strict=True):
        for target, data in (
            (directory / f"{row.name}.jsonl", _jsonl(row.results)),
            (directory / f"{row.name}.summary.json", _json(summary.to_json())),
        ):
            atomic_write(target, _writer(data))
            written.append(target)
    target = directory / SUMMARY_FILE
    atomic_write(target, _writer(_json(report.to_json())))
    written.append(target)
    return tuple(written)
