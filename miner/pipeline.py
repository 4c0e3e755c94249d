"""``miner run`` as a typed function: dataset in, episodes and training file out.

    open dataset (views) -> detect episodes (SQL) -> load their rows and the
    base rows -> plan each (resolve states) -> per batch: find the base content
    of the files the errors name, the red builds of each episode, then the
    blobs, each in one query -> finish each (diff without lock files and
    vendored trees, context, error count, filters) -> describe -> sort ->
    mark near-duplicates (across all episodes) -> split -> episodes.parquet +
    train.jsonl

Everything a run decides depends only on the dataset and the settings, so the
same input gives the same ids and byte-identical files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb

from miner.assemble import Plan, finish, plan, with_base_blobs
from miner.dataset import Dataset, RedSpan, first_line, may_be_corrupt_data
from miner.describe import Describer, OfflineDescriber
from miner.describe_stage import DescribeReport
from miner.episodes import detect
from miner.errors import DatasetError
from miner.hygiene import mark_duplicates
from miner.output import prepare_out_dir, write_episodes, write_train
from miner.record import DESCRIBED, Episode
from miner.settings import MinerSettings
from miner.split import TEST, TRAIN, assign_splits
from schemas.files import Skipped
from schemas.views import SNAPSHOTS_GLOB

# Episodes whose blobs are fetched together: few queries, bounded memory.
BLOB_BATCH = 256


@dataclass(frozen=True)
class Summary:
    snapshots: int
    streams: int
    episodes: int
    kept: int
    train: int
    test: int
    # how many episodes fail each filter, most frequent first
    filters: list[tuple[str, int]] = field(default_factory=list)
    files: tuple[Path, ...] = ()
    llm: DescribeReport | None = None
    # dataset files left out as unreadable (strict=False), each with why
    skipped: tuple[Skipped, ...] = ()


def _sort_key(episode: Episode) -> tuple[str, str, object, str]:
    return (episode.host or "", episode.workspace or "", episode.red_ended_at, episode.episode_id)


def _span(one: Plan) -> RedSpan:
    c = one.candidate
    return RedSpan(
        c.host, c.workspace, c.red_started_at, c.first_red_id, one.red.state.ts, c.red_id
    )


def mine_episodes(dataset: Dataset, settings: MinerSettings, describer: Describer) -> list[Episode]:
    """Every episode of ``dataset``: assembled, described, deduplicated, split; output order."""
    candidates = detect(dataset.con)
    wanted = {
        sid for c in candidates for sid in (c.green_before_id, c.first_red_id, c.red_id, c.green_id)
    }
    rows = dataset.rows(wanted)
    bases = dataset.base_rows() if candidates else {}
    episodes = []
    for start in range(0, len(candidates), BLOB_BATCH):
        plans = [
            plan(candidate, rows, bases.get((candidate.host, candidate.workspace), []))
            for candidate in candidates[start : start + BLOB_BATCH]
        ]
        found = dataset.base_blobs(set().union(*(p.base_lookups() for p in plans)))
        plans = [with_base_blobs(p, found) for p in plans]
        red_builds = dataset.red_builds(_span(p) for p in plans)
        # one blobs query per batch: each query scans the blob files once
        contents = dataset.contents(set().union(*(p.blobs for p in plans)))
        for one in plans:
            episode = finish(one, contents, settings, red_builds.get(one.candidate.red_id, []))
            described = describer.describe(episode)
            episodes.append(
                replace(
                    episode,
                    description=described.description,
                    prompt=described.prompt,
                    describer=describer.name,
                    description_status=DESCRIBED,
                    error_kind=described.error_kind,
                )
            )
    episodes.sort(key=_sort_key)
    # duplicates need every episode finished; the split needs their groups
    episodes = mark_duplicates(episodes)
    return assign_splits(episodes, settings.test_fraction, settings.split_by)


def _mine(
    dataset: Dataset, settings: MinerSettings, describer: Describer
) -> tuple[int, int, list[Episode]]:
    """The snapshot count, the stream count and the episodes of ``dataset``."""
    snapshots = dataset.snapshot_count()
    if snapshots == 0:
        unreadable = ""
        if dataset.skipped:
            unreadable = f"; {len(dataset.skipped)} unreadable file(s) skipped"
        raise DatasetError(
            f"no snapshots in {dataset.data_dir} (looked for {SNAPSHOTS_GLOB}{unreadable})"
        )
    return snapshots, dataset.stream_count(), mine_episodes(dataset, settings, describer)


# the LLM describe stage: (episodes, output directory) -> (episodes, its report)
LLMStage = Callable[[list[Episode], Path], tuple[list[Episode], DescribeReport]]


def run(
    data_dir: Path,
    out_dir: Path,
    settings: MinerSettings | None = None,
    describer: Describer | None = None,
    llm_stage: LLMStage | None = None,
    write: bool = True,
    *,
    strict: bool = False,
    on_skipped: Callable[[Skipped], None] | None = None,
) -> Summary:
    """Mine ``data_dir`` into ``out_dir``/episodes.parquet and train.jsonl.

    Every episode is described offline; with ``llm_stage`` the kept ones are
    then described by the model.  ``write=False`` (a dry run) writes nothing.
    A dataset file that cannot be read is left out and given to ``on_skipped``
    as soon as it is found (``strict``: a :class:`DatasetError` instead).
    """
    settings = settings or MinerSettings()
    describer = describer or OfflineDescriber()
    prepare_out_dir(out_dir)
    reported: set[Path] = set()

    def report_skipped(dataset: Dataset) -> None:
        for skipped in dataset.skipped:
            if skipped.path not in reported:
                reported.add(skipped.path)
                if on_skipped is not None:
                    on_skipped(skipped)

    with Dataset(data_dir, strict=strict) as dataset:
        report_skipped(dataset)
        while True:
            try:
                snapshots, streams, episodes = _mine(dataset, settings, describer)
                break
            except duckdb.Error as exc:
                # a bad data page behind a good footer: set its file aside and mine again
                if not (may_be_corrupt_data(exc) and dataset.set_aside_unreadable()):
                    raise DatasetError(
                        f"cannot read dataset {data_dir}: {first_line(exc)}"
                    ) from exc
                report_skipped(dataset)
        skipped = dataset.skipped
    report = None
    if llm_stage is not None:
        episodes, report = llm_stage(episodes, out_dir)
    files = (write_episodes(out_dir, episodes), write_train(out_dir, episodes)) if write else ()
    counts = Counter(name for e in episodes for name in e.filters)
    splits = Counter(e.split for e in episodes)
    return Summary(
        snapshots=snapshots,
        streams=streams,
        episodes=len(episodes),
        kept=sum(e.kept for e in episodes),
        train=splits[TRAIN],
        test=splits[TEST],
        filters=sorted(counts.items(), key=lambda item: (-item[1], item[0])),
        files=files,
        llm=report,
        skipped=skipped,
    )
