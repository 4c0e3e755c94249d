"""The red state of an episode: its base revision's tree plus the recorded files.

A snapshot row lists only the paths whose content differs from its base revision,
so the red state is ``base_rev``'s tree from the repository with each entry of the
red row's ``files`` laid over it: removed (status ``R``) or replaced by the
recorded blob.  An omitted entry (binary, too large, excluded) has no content in
the dataset: the base content stays and the path is named in ``omitted``.

The repository is ``--repo`` when given, else the recorded workspace when it is a
working copy of the recorded kind on this machine; a repository that does not hold
``base_rev`` counts as none (``repo`` is None: the episode is ``no_repo``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from miner.dataset import Dataset, SnapshotRow
from miner.errors import MinerError
from miner.record import Episode
from miner.verify.revision import has_revision, is_repository


class VerifyError(MinerError):
    """Episodes cannot be verified against this dataset (a red snapshot is missing)."""


@dataclass(frozen=True)
class RedState:
    episode_id: str
    vcs: str  # "git" or "hg"
    repo: Path | None  # repository holding base_rev; None -> no_repo
    base_rev: str
    files: Mapping[str, bytes | None]  # red content laid over the base; None: removed in red
    command: str  # the recorded build command of the red build
    red_fingerprint: str | None  # error fingerprint of the recorded red build
    # paths whose red content the dataset does not hold (their base content stays)
    omitted: tuple[str, ...] = ()


def red_states(
    data_dir: Path, episodes: Sequence[Episode], repo: Path | None = None
) -> dict[str, RedState]:
    """The red state of each episode, by ``episode_id``.

    ``repo`` overrides every episode's repository (a moved clone); without it the
    recorded workspace is used when it exists here.  Raises :class:`VerifyError`
    when the dataset lacks an episode's red snapshot (another dataset's episodes).
    """
    if not episodes:
        return {}
    with Dataset(data_dir) as dataset:
        rows = dataset.rows(e.red_id for e in episodes)
        missing = [e for e in episodes if e.red_id not in rows]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise VerifyError(
                f"{data_dir} has no snapshot {missing[0].red_id} of episode"
                f" {missing[0].episode_id[:12]}{more}: give the --data-dir the episodes"
                " were mined from"
            )
        wanted = {
            entry.blob
            for episode in episodes
            for entry in rows[episode.red_id].state.files.values()
            if entry.blob is not None and entry.omitted is None and entry.status != "R"
        }
        contents = dataset.contents(wanted)
    holds: dict[tuple[str, Path, str], bool] = {}
    states = {}
    for episode in episodes:
        row = rows[episode.red_id]
        vcs = row.vcs or episode.vcs or ""
        base_rev = row.state.base_rev or ""
        where = _repository(row, vcs, repo)
        if where is not None:
            key = (vcs, where, base_rev)
            if key not in holds:
                holds[key] = bool(base_rev) and has_revision(vcs, where, base_rev)
            if not holds[key]:
                where = None
        files, omitted = _red_files(row, contents)
        states[episode.episode_id] = RedState(
            episode_id=episode.episode_id,
            vcs=vcs,
            repo=where,
            base_rev=base_rev,
            files=files,
            command=(row.build.command if row.build is not None else None) or "",
            red_fingerprint=episode.error_fingerprint,
            omitted=omitted,
        )
    return states


def _repository(row: SnapshotRow, vcs: str, override: Path | None) -> Path | None:
    candidate = override if override is not None else Path(row.workspace or "")
    if not row.workspace and override is None:
        return None
    return candidate if is_repository(vcs, candidate) else None


def _red_files(
    row: SnapshotRow, contents: Mapping[str, bytes]
) -> tuple[dict[str, bytes | None], tuple[str, ...]]:
    files: dict[str, bytes | None] = {}
    omitted: list[str] = []
    for path, entry in sorted(row.state.files.items()):
        if entry.status == "R" or (entry.blob is None and entry.omitted is None):
            files[path] = None
        elif entry.omitted is None and entry.blob is not None and entry.blob in contents:
            files[path] = contents[entry.blob]
        else:
            omitted.append(path)
    return files, tuple(omitted)
