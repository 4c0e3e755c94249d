"""Open a redgreen dataset in DuckDB and read what the miner needs from it.

The views come from :mod:`schemas.views` (the same SQL ``miner sql
--print-views`` prints), so the miner sees the dataset exactly as a person
querying it does.  Beyond the views this module only reads small things: the
few snapshot rows each episode names, the ``base`` rows (one per commit or
checkout, so few), blob contents by hash, the red builds inside given episodes,
and where a file's content at a base revision was recorded.  Snapshot rows in
bulk are DuckDB's business (``episodes.sql``), never a Python loop's.

A file a query cannot read is set aside, named, and the rest is read
(:mod:`schemas.files` checks each footer before the views are made); with
``strict`` it is an error instead.  A corrupt data page behind a good footer
shows only when a query meets it: :meth:`Dataset.set_aside_unreadable` then
reads the files whole to find it, and the caller runs its query again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pyarrow as pa

from miner.errors import DatasetError
from miner.states import FileEntry, StateRow
from schemas import views
from schemas.files import Skipped, read_problem

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


@dataclass(frozen=True)
class RedSpan:
    """The red run of one episode: its stream and its first and last red rows."""

    host: str | None
    workspace: str | None
    first_ts: datetime
    first_id: str
    last_ts: datetime
    last_id: str


# The usable red builds inside each span, in stream order (the rows detection counts).
_RED_BUILDS_SQL = """
SELECT s.last_id, r.build.output, r.build.diagnostics
FROM _red_spans s
JOIN snapshots r
  ON r.host IS NOT DISTINCT FROM s.host
 AND r.workspace IS NOT DISTINCT FROM s.workspace
 AND r.ts BETWEEN s.first_ts AND s.last_ts
WHERE r.build.state_id = r.state_id
  AND r.build.status = 'red'
  AND r.reason IS DISTINCT FROM 'base'
  AND (r.ts > s.first_ts OR r.snapshot_id >= s.first_id)
  AND (r.ts < s.last_ts OR r.snapshot_id <= s.last_id)
ORDER BY s.last_id, r.ts, r.snapshot_id
"""

# Where a file's content at a base revision was recorded: a row under that base that
# changed the file holds it as base_blob; a base row that moved to it holds it as blob.
_BASE_BLOBS_SQL = """
WITH entries AS (
  SELECT base_rev, reason, unnest(files) AS f
  FROM snapshots
  WHERE base_rev IN (SELECT base_rev FROM _wanted_base_paths)
)
SELECT e.base_rev, e.f.path,
       min(CASE WHEN e.reason = 'base' THEN e.f.blob ELSE e.f.base_blob END) AS blob
FROM entries e
JOIN _wanted_base_paths w ON e.base_rev = w.base_rev AND e.f.path = w.path
WHERE e.f.omitted IS NULL
  AND (CASE WHEN e.reason = 'base' THEN e.f.blob ELSE e.f.base_blob END) IS NOT NULL
  AND (e.reason = 'base' OR e.f.status NOT IN ('A', '?'))
  AND (e.reason IS DISTINCT FROM 'base' OR e.f.status IS DISTINCT FROM 'R')
GROUP BY e.base_rev, e.f.path
"""


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


# What DuckDB raises for a file it cannot decode (the base class for a bad page);
# a mistake in a query (parser, binder, catalog errors) is never the data's fault.
_DATA_ERRORS = (
    duckdb.IOException,
    duckdb.InvalidInputException,
    duckdb.InternalException,
    duckdb.SerializationException,
    duckdb.OutOfRangeException,
    duckdb.ConversionException,
)


def may_be_corrupt_data(exc: duckdb.Error) -> bool:
    """Could a file's bytes, rather than the query, have caused ``exc``?"""
    return type(exc) is duckdb.Error or isinstance(exc, _DATA_ERRORS)


def strict_error(skipped: Sequence[Skipped]) -> DatasetError:
    first = skipped[0]
    more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
    return DatasetError(
        f"cannot read {first.path}: {first.reason}{more}; without --strict such files are skipped"
    )


class Dataset:
    """A DuckDB connection with the dataset's views (and ``episodes`` with an out dir).

    ``skipped``: the files the views leave out, and why; ``strict`` makes any
    such file a :class:`DatasetError` instead.
    """

    def __init__(
        self,
        data_dir: Path,
        out_dir: Path | None = None,
        *,
        utc: bool = True,
        strict: bool = False,
    ) -> None:
        check_data_dir(data_dir)
        self.data_dir = data_dir
        self.out_dir = out_dir
        self.strict = strict
        self.skipped: tuple[Skipped, ...] = ()
        self.files: tuple[Path, ...] = ()
        # files found corrupt behind a good footer, left out of the views from then on
        self._excluded: list[Skipped] = []
        self.con = duckdb.connect()
        try:
            if utc:
                # timestamps come back in UTC whatever the machine's zone: same run, same bytes
                self.con.execute("SET TimeZone = 'UTC'")
            self._make_views(self._excluded)
        except duckdb.Error as exc:
            self.con.close()
            raise DatasetError(f"cannot read dataset {data_dir}: {first_line(exc)}") from exc
        except BaseException:
            self.con.close()
            raise

    def _make_views(self, exclude: Sequence[Skipped]) -> None:
        made = views.dataset_views(self.data_dir, self.out_dir, exclude=exclude)
        if self.strict and made.skipped:
            raise strict_error(made.skipped)
        self.con.execute(made.sql)
        self.files, self.skipped = made.files, made.skipped

    def set_aside_unreadable(self) -> tuple[Skipped, ...]:
        """After a query failed: find the files that cannot be read whole and remake
        the views without them.  Returns them (none: the files are not the cause).

        Reads every file in full, so only for a query that failed.
        """
        found = []
        for path in self.files:
            problem = read_problem(path)
            if problem is not None:
                found.append(Skipped(path, problem))
        if found:
            if self.strict:
                raise strict_error(found)
            self._excluded += found
            self._make_views(self._excluded)
        return tuple(found)

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

    def red_builds(self, spans: Iterable[RedSpan]) -> dict[str, list[BuildResult]]:
        """The usable red builds inside each span, first to last, by the span's ``last_id``."""
        spans = list(spans)
        if not spans:
            return {}
        table = pa.Table.from_pylist(
            [vars(span) for span in spans],
            schema=pa.schema(
                [
                    ("host", pa.string()),
                    ("workspace", pa.string()),
                    ("first_ts", pa.timestamp("us", tz="UTC")),
                    ("first_id", pa.string()),
                    ("last_ts", pa.timestamp("us", tz="UTC")),
                    ("last_id", pa.string()),
                ]
            ),
        )
        self.con.register("_red_spans", table)
        try:
            raw = self.con.execute(_RED_BUILDS_SQL).fetchall()
        finally:
            self.con.unregister("_red_spans")
        builds: dict[str, list[BuildResult]] = defaultdict(list)
        for last_id, output, diagnostics in raw:
            builds[last_id].append(
                BuildResult("red", None, None, None, output, tuple(diagnostics or ()))
            )
        return dict(builds)

    def base_blobs(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """For each ``(base_rev, path)``, the blob of ``path`` at that base, where recorded."""
        pairs = sorted(set(wanted))
        if not pairs:
            return {}
        table = pa.table(
            {
                "base_rev": pa.array([rev for rev, _ in pairs], pa.string()),
                "path": pa.array([path for _, path in pairs], pa.string()),
            }
        )
        self.con.register("_wanted_base_paths", table)
        try:
            raw = self.con.execute(_BASE_BLOBS_SQL).fetchall()
        finally:
            self.con.unregister("_wanted_base_paths")
        return {(rev, path): blob for rev, path, blob in raw if blob is not None}

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
