"""Write the miner's results: ``episodes.parquet`` and ``train.jsonl``.

Both files appear whole or not at all: each is written under a temporary
name in the output directory, fsynced, moved over the old one with
``os.replace`` and the directory fsynced (rule 3 of the design); temporaries
a killed run left behind are swept first.  Writing is deterministic: the same
episodes give byte-identical files.

``train.jsonl`` holds the kept episodes in the chat fine-tuning shape
``{"messages": [system, user, assistant], "metadata": {...}}``: the user
message is the context files, the build error and the prompt; the assistant
message is the fix diff.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from miner.errors import OutputError
from miner.record import Episode
from schemas.v1 import EPISODES

EPISODES_FILE = "episodes.parquet"
TRAIN_FILE = "train.jsonl"
_TEMP_MARK = ".tmp-"

SYSTEM_PROMPT = (
    "You are an expert software engineer. You are given files of a project, the output "
    "of its failing build and a request. Reply with a unified diff in git format that "
    "fixes the build, and nothing else."
)


def prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` if needed, check it is writable, sweep stale temporaries."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {out_dir}: {exc.strerror}") from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputError(f"output directory {out_dir} is not writable")
    try:
        for stale in out_dir.glob(f"{_TEMP_MARK}*"):
            stale.unlink()
    except OSError as exc:
        raise OutputError(f"cannot clean output directory {out_dir}: {exc.strerror}") from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``target`` through ``write`` so it appears whole or not at all."""
    temp = target.with_name(f"{_TEMP_MARK}{os.getpid()}-{target.name}")
    try:
        with open(temp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc


def episodes_table(episodes: Sequence[Episode]) -> pa.Table:
    return pa.Table.from_pylist([e.to_row() for e in episodes], schema=EPISODES)


def write_episodes(out_dir: Path, episodes: Sequence[Episode]) -> Path:
    table = episodes_table(episodes)
    target = out_dir / EPISODES_FILE
    atomic_write(target, lambda handle: pq.write_table(table, handle, compression="zstd"))
    return target


def _fence(text: str) -> str:
    # a fence longer than any backtick run inside, so the content cannot close it
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _block(text: str) -> str:
    fence = _fence(text)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{fence}\n{body}{fence}"


def user_message(episode: Episode) -> str:
    parts = [f"File {c.path}:\n{_block(c.content)}" for c in episode.context]
    parts.append(f"Build output:\n{_block(episode.error or '')}")
    parts.append(episode.prompt or "Fix the build.")
    return "\n\n".join(parts)


def chat_record(episode: Episode) -> dict[str, Any]:
    """One line of ``train.jsonl``."""
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_message(episode)},
            {"role": "assistant", "content": episode.fix_diff},
        ],
        "metadata": {
            "episode_id": episode.episode_id,
            "split": episode.split,
            "host": episode.host,
            "workspace": episode.workspace,
            "vcs": episode.vcs,
            "describer": episode.describer,
            "template_version": episode.template_version,
            "error_kind": episode.error_kind,
            "red_id": episode.red_id,
            "green_id": episode.green_id,
            "error_fingerprint": episode.error_fingerprint,
            "error_count": episode.error_count,
            "fix_lines": episode.fix_lines,
            "fix_files": episode.fix_files,
            "filters": list(episode.filters),
        },
    }


def train_lines(episodes: Iterable[Episode]) -> list[str]:
    return [
        json.dumps(chat_record(e), ensure_ascii=False, separators=(",", ":")) + "\n"
        for e in episodes
        if e.usable
    ]


def write_train(out_dir: Path, episodes: Sequence[Episode]) -> Path:
    data = "".join(train_lines(episodes)).encode("utf-8")
    target = out_dir / TRAIN_FILE

    def write(handle: IO[bytes]) -> None:
        handle.write(data)

    atomic_write(target, write)
    return target
