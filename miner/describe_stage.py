"""The describe stage as one typed call: episodes in, LLM-described episodes out.

``miner run --model`` calls :func:`describe_episodes` on freshly mined
episodes; ``miner describe`` calls :func:`redescribe`, which reads an
existing ``episodes.parquet``, describes the episodes it selects and writes
both output files again.  Only kept episodes go to the model: a filtered
episode is not a training example.  The answer cache lives in the output
directory, so a rerun, or a run after an interruption, sends only what is
not answered yet.  ``openai`` is imported here, lazily: the offline path
never loads it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow.parquet as pq

from miner.errors import OutputError
from miner.output import EPISODES_FILE, prepare_out_dir, write_episodes, write_train
from miner.prompt_filters import PromptLimits
from miner.record import DESCRIBE_FAILED, Episode
from schemas import v1
from schemas.files import Checker

if TYPE_CHECKING:  # imported for real only when a model is used: openai loads slowly
    from miner.llm.client import LLMOptions, Usage
    from miner.llm.describer import BatchSummary

ProgressCallback = Callable[[Episode], None]


@dataclass(frozen=True)
class DescribeReport:
    selected: int
    described: int
    failed: dict[str, int]  # by reason
    prompt_filtered: int
    candidates_filtered: dict[str, int]  # candidate requests, by prompt filter
    not_sent: int
    requests: int
    cache_hits: int
    tokens_in: int
    tokens_out: int
    seconds: float
    fallbacks: list[str] = field(default_factory=list)
    files: tuple[Path, ...] = ()


def describe_episodes(
    episodes: Sequence[Episode],
    options: LLMOptions,
    cache_dir: Path,
    *,
    select: Callable[[Episode], bool] = lambda e: e.kept,
    limit: int | None = None,
    limits: PromptLimits | None = None,
    on_done: ProgressCallback | None = None,
    on_start: Callable[[int], None] | None = None,
) -> tuple[list[Episode], DescribeReport]:
    """``episodes`` with the selected ones (at most ``limit``) described by the model."""
    from miner.llm.cache import CACHE_FILE, AnswerCache
    from miner.llm.client import LLMClient
    from miner.llm.describer import EpisodeDescriber, describe_batch

    chosen = [i for i, e in enumerate(episodes) if select(e)]
    if limit is not None:
        chosen = chosen[:limit]
    if on_start is not None:
        on_start(len(chosen))
    began = time.monotonic()
    cache = AnswerCache(cache_dir / CACHE_FILE)
    try:

        async def run() -> tuple[list[Episode], BatchSummary, Usage]:
            client = LLMClient(options, cache)
            try:
                describer = EpisodeDescriber(client, limits)
                done, summary = await describe_batch(
                    [episodes[i] for i in chosen], describer, on_done or (lambda _e: None)
                )
                return done, summary, client.usage
            finally:
                await client.aclose()

        described, summary, usage = asyncio.run(run())
    finally:
        cache.close()
    merged = list(episodes)
    for index, episode in zip(chosen, described, strict=True):
        merged[index] = episode
    report = DescribeReport(
        selected=len(chosen),
        described=summary.described,
        failed=dict(summary.failed.most_common()),
        prompt_filtered=summary.prompt_filtered,
        candidates_filtered=dict(summary.filtered.most_common()),
        not_sent=summary.not_sent,
        requests=usage.requests,
        cache_hits=usage.cache_hits,
        tokens_in=usage.tokens_in,
        tokens_out=usage.tokens_out,
        seconds=time.monotonic() - began,
        fallbacks=list(usage.fallbacks),
    )
    return merged, report


def read_episodes(out_dir: Path) -> list[Episode]:
    path = out_dir / EPISODES_FILE
    if path.exists() and (problem := Checker(v1.EPISODES).problem(path)) is not None:
        raise OutputError(f"cannot read {path}: {problem}")
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise OutputError(f"no {EPISODES_FILE} in {out_dir}: run `miner run` first") from None
    except (OSError, duckdb.Error, ValueError) as exc:
        raise OutputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    return [Episode.from_row(row) for row in table.to_pylist()]


def redescribe(
    out_dir: Path,
    options: LLMOptions,
    *,
    only_failed: bool = False,
    limit: int | None = None,
    limits: PromptLimits | None = None,
    on_done: ProgressCallback | None = None,
    on_start: Callable[[int], None] | None = None,
) -> DescribeReport:
    """``miner describe``: describe ``out_dir``'s episodes again and rewrite its files."""
    prepare_out_dir(out_dir)
    episodes = read_episodes(out_dir)

    def wanted(episode: Episode) -> bool:
        return episode.kept and (not only_failed or episode.description_status == DESCRIBE_FAILED)

    described, report = describe_episodes(
        episodes,
        options,
        out_dir,
        select=wanted,
        limit=limit,
        limits=limits,
        on_done=on_done,
        on_start=on_start,
    )
    if options.dry_run is not None:
        return report  # a dry run changes nothing: the requests are in the dry-run file
    files = (write_episodes(out_dir, described), write_train(out_dir, described))
    return replace(report, files=files)
