"""Open a redgreen dataset in DuckDB and read what the miner needs from it.

The views come from :mod:`schemas.views` (the same SQL ``miner sql
--print-views`` prints), so the miner sees the dataset exactly as a person
querying it does.  Beyond the views this module only reads small things: the
few snapshot rows each episode names, the ``base`` rows (one per commit or
checkout, so few), and blob contents by hash.  Snapshot rows in bulk are
DuckDB's business (``episodes.sql``), never a Python loop's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pyarrow as pa

from miner.errors import DatasetError
from miner.states import FileEntry, StateRow
from schemas import views

Stream = tuple[str | None, str | None]

# The columns of a snapshot row the miner reads (never `diff`: it is rebuilt).
_ROW_COLUMNS = """
    snapshot_id, ts, host, "user", workspace, vcs, base_rev, state_id, reason,
    files, build.status, build.state_id, build.command, build.exit_code,
    build.output, build.diagnostics
"""


@dataclass(frozen=True)
class BuildResult:
    status: str | None
    state_id: str | None
    command: str | None
    exit_code: int | None
    output: str | None
    # as stored: dicts with the fields of schemas.v1.DIAGNOSTIC
    diagnostics: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class SnapshotRow:
    host: str | None
    user: str | None
    workspace: str | None
    vcs: str | None
    state: StateRow
    build: BuildResult | None

    @property
    def stream(self) -> Stream:
        return (self.host, self.workspace)


def _files(raw: list[dict[str, Any]] | None) -> dict[str, FileEntry]:
    entries = (
        FileEntry(f["path"], f["status"], f["blob"], f["base_blob"], f["omitted"])
        for f in raw or ()
    )
    return {entry.path: entry for entry in entries}


def _snapshot_row(raw: Sequence[Any]) -> SnapshotRow:
    (sid, ts, host, user, workspace, vcs, base_rev, state_id, reason, files) = raw[:10]
    (status, build_state, command, exit_code, output, diagnostics) = raw[10:]
    state = StateRow(sid, ts, base_rev, state_id, _files(files), reason)
    build = None
    if status is not None or build_state is not None:
        build = BuildResult(
            status, build_state, command, exit_code, output, tuple(diagnostics or ())
        )
    return SnapshotRow(host, user, workspace, vcs, state, build)


class Dataset:
    """A DuckDB connection with the dataset's views (and ``episodes`` with an out dir)."""

    def __init__(self, data_dir: Path, out_dir: Path | None = None, *, utc: bool = True) -> None:
        check_data_dir(data_dir)
        self.data_dir = data_dir
        self.con = duckdb.connect()
        try:
            if utc:
                # timestamps come back in UTC whatever the machine's zone: same run, same bytes
                self.con.execute("SET TimeZone = 'UTC'")
            self.con.execute(views.all_views(data_dir, out_dir))
        except duckdb.Error as exc:
            self.con.close()
            raise DatasetError(f"cannot read dataset {data_dir}: {first_line(exc)}") from exc

    def __enter__(self) -> Dataset:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def _one(self, sql: str) -> int:
        row = self.con.execute(sql).fetchone()
        return int(row[0]) if row else 0

    def snapshot_count(self) -> int:
        return self._one("SELECT count(*) FROM snapshots")

    def stream_count(self) -> int:
        return self._one("SELECT count(*) FROM (SELECT DISTINCT host, workspace FROM snapshots)")

    def rows(self, snapshot_ids: Iterable[str]) -> dict[str, SnapshotRow]:
        """The named snapshot rows, by id."""
        wanted = pa.table({"snapshot_id": pa.array(sorted(set(snapshot_ids)), pa.string())})
        self.con.register("_wanted_ids", wanted)
        try:
            raw = self.con.execute(
                f"SELECT {_ROW_COLUMNS} FROM snapshots"
                " WHERE snapshot_id IN (SELECT snapshot_id FROM _wanted_ids)"
            ).fetchall()
        finally:
            self.con.unregister("_wanted_ids")
        return {row.state.snapshot_id: row for row in map(_snapshot_row, raw)}

    def base_rows(self) -> dict[Stream, list[StateRow]]:
        """Every ``base`` row, per stream, in stream order."""
        raw = self.con.execute(
            f"SELECT {_ROW_COLUMNS} FROM snapshots WHERE reason = 'base' ORDER BY ts, snapshot_id"
        ).fetchall()
        streams: dict[Stream, list[StateRow]] = defaultdict(list)
        for row in map(_snapshot_row, raw):
            streams[row.stream].append(row.state)
        return dict(streams)

    def contents(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The content of each hash found in ``blobs`` (a blob may be stored twice)."""
        wanted = sorted(set(hashes))
        if not wanted:
            return {}
        raw = self.con.execute(
            "SELECT blob, any_value(content) FROM blobs WHERE blob IN (SELECT unnest($1))"
            " GROUP BY blob",
            [wanted],
        ).fetchall()
        return {blob: bytes(content) for blob, content in raw if content is not None}


def check_data_dir(data_dir: Path) -> None:
    if not data_dir.exists():
        raise DatasetError(f"data directory {data_dir} does not exist")
    if not data_dir.is_dir():
        raise DatasetError(f"data directory {data_dir} is not a directory")


def first_line(exc: BaseException) -> str:
    """An exception's message on one line, for a one-line CLI error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
