"""Retention: keep a dataset within its age limit and its disk budget.

Whole dates go, oldest first: every date older than ``max_age_days``, then the
oldest dates until snapshots + blobs + spool fit ``max_bytes``; the newest
date always stays.  A date goes with all its partitions
(``snapshots/date=D/host=H/`` and ``blobs/date=D/host=H/``).

Blobs are stored once per dataset, so a blob in a doomed partition may be
referenced by a row that stays.  One round of :func:`collect`:

    plan     under the roll lock: the doomed dates; the doomed blobs that no
             remaining row references and no remaining file holds
    forget   those leave the spool's stored-blob set: from now on an append
             that meets one stores it again
    roll     rows spooled before the forget (which relied on the blob being
             stored) reach Parquet, where the next step sees them
    keep     under the roll lock: every doomed blob that a remaining row
             references, or that was not forgotten after all, is copied into
             one new file in the newest remaining blob partition (written
             whole, like a roll's files)
    delete   snapshot partitions first, then blob partitions, so a crash never
             leaves a row without its blobs

A round whose copies outweigh the estimate leaves the dataset over budget;
the next round takes the next oldest date.  The lock is the roll's
(``spool/roll.lock``), so gc never races a roll of any process.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
from ulid import ULID

from schemas.v1 import BLOBS
from schemas.views import quote_literal
from snapshotter.config import RetentionSettings
from snapshotter.errors import StorageError
from snapshotter.paths import blobs_dir, snapshots_dir, spool_dir
from snapshotter.roll import roll, roll_lock, write_parquet
from snapshotter.spool import Spool, fsync_dir, make_private_dirs

Kind = Literal["snapshots", "blobs"]

_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_HOST_DIR = re.compile(r"^host=(.+)$")
# Bounds the memory of a copy: a row group is written once this much is buffered.
_COPY_BATCH_BYTES = 64 * 1024 * 1024
_COPY_BATCH_ROWS = 10_000

# The SQL below runs in DuckDB over explicit file lists ({files}); it can be
# pasted into any DuckDB client with the list filled in.

# Every blob and base_blob a snapshot row references.  Omitted entries count
# too: their hashes are not stored, so they never match a stored blob, and
# keeping a blob too many is safe where keeping one too few is not.
REFERENCED_SQL = """\
SELECT DISTINCT hash FROM (
  SELECT unnest([f.blob, f.base_blob]) AS hash
  FROM (
    SELECT unnest(files) AS f
    FROM read_parquet({files}, union_by_name=true, hive_partitioning=true)
  )
)
WHERE hash IS NOT NULL
"""

# The blobs a set of blob files holds.
HELD_SQL = """\
SELECT DISTINCT blob AS hash
FROM read_parquet({files}, union_by_name=true, hive_partitioning=true)
"""

# Doomed blobs nothing needs: not referenced by a remaining row, not held elsewhere.
UNNEEDED_SQL = """\
SELECT hash FROM doomed
EXCEPT SELECT hash FROM referenced
EXCEPT SELECT hash FROM held_elsewhere
"""

# Doomed blobs to copy: held nowhere else, and either referenced or never forgotten.
TO_COPY_SQL = """\
SELECT hash FROM doomed
EXCEPT SELECT hash FROM held_elsewhere
EXCEPT (SELECT hash FROM forgotten EXCEPT SELECT hash FROM referenced)
"""

COPY_SQL = """\
SELECT blob, size, content
FROM read_parquet({files}, union_by_name=true, hive_partitioning=true)
WHERE blob IN (SELECT hash FROM to_copy)
"""


@dataclass(frozen=True)
class Partition:
    kind: Kind
    date: date
    host: str  # the directory's value (already made safe by the roll)
    path: Path
    size: int  # bytes of its files


@dataclass(frozen=True)
class GcReport:
    dry_run: bool
    max_bytes: int
    bytes_before: int
    bytes_after: int  # measured; estimated from partition sizes on a dry run
    dates: tuple[date, ...] = ()  # dates deleted (would be, on a dry run), oldest first
    partitions: tuple[Path, ...] = ()  # partition directories deleted
    blobs_copied: int = 0  # still-referenced blobs moved out of deleted partitions
    blobs_forgotten: int = 0  # blobs gone, to be stored again if they reappear

    @property
    def freed(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)


@dataclass
class _Round:
    dates: list[date] = field(default_factory=list)
    partitions: list[Path] = field(default_factory=list)
    copied: int = 0
    forgotten: int = 0


def collect(
    data_dir: Path,
    retention: RetentionSettings,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> GcReport:
    """Delete whole dates until the dataset fits ``retention``; what went and what it freed.

    ``now`` (default: the current time) decides which dates are too old;
    partition dates are UTC dates.  A dry run changes nothing (not even the
    spool) and estimates the result from partition sizes.
    """
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    before = dataset_bytes(data_dir)
    if not snapshots_dir(data_dir).is_dir() and not blobs_dir(data_dir).is_dir():
        return GcReport(dry_run, retention.max_bytes, before, before)
    if dry_run:
        parts = scan_partitions(data_dir)
        doomed = plan(parts, before, retention, today)
        freed = sum(p.size for p in parts if p.date in doomed)
        return GcReport(
            dry_run=True,
            max_bytes=retention.max_bytes,
            bytes_before=before,
            bytes_after=before - freed,
            dates=tuple(doomed),
            partitions=tuple(p.path for p in parts if p.date in doomed),
        )
    total = _Round()
    with Spool.open(data_dir) as spool:
        while True:
            done = _collect_round(spool, data_dir, retention, today)
            if not done.dates:
                break
            total.dates += done.dates
            total.partitions += done.partitions
            total.copied += done.copied
            total.forgotten += done.forgotten
    return GcReport(
        dry_run=False,
        max_bytes=retention.max_bytes,
        bytes_before=before,
        bytes_after=dataset_bytes(data_dir),
        dates=tuple(sorted(total.dates)),
        partitions=tuple(total.partitions),
        blobs_copied=total.copied,
        blobs_forgotten=total.forgotten,
    )


def plan(
    parts: Sequence[Partition], total_bytes: int, retention: RetentionSettings, today: date
) -> list[date]:
    """The dates to delete, oldest first: too old, then over budget; never the newest."""
    dates = sorted({p.date for p in parts})
    cutoff = today - timedelta(days=retention.max_age_days)
    size: dict[date, int] = {}
    for p in parts:
        size[p.date] = size.get(p.date, 0) + p.size
    doomed: list[date] = []
    for day in dates[:-1]:
        if day >= cutoff and total_bytes <= retention.max_bytes:
            break
        doomed.append(day)
        total_bytes -= size[day]
    return doomed


def scan_partitions(data_dir: Path) -> list[Partition]:
    """Every ``KIND/date=D/host=H`` directory of the dataset, with its size."""
    found: list[Partition] = []
    kinds: tuple[tuple[Kind, Path], ...] = (
        ("snapshots", snapshots_dir(data_dir)),
        ("blobs", blobs_dir(data_dir)),
    )
    for kind, root in kinds:
        for date_dir in _subdirs(root):
            match = _DATE_DIR.match(date_dir.name)
            if match is None:
                continue
            try:
                day = date.fromisoformat(match.group(1))
            except ValueError:
                continue
            for host_dir in _subdirs(date_dir):
                host = _HOST_DIR.match(host_dir.name)
                if host is not None:
                    found.append(Partition(kind, day, host.group(1), host_dir, _bytes(host_dir)))
    return found


def dataset_bytes(data_dir: Path) -> int:
    """Bytes of the dataset's files: snapshots, blobs and spool."""
    return sum(
        _bytes(d) for d in (snapshots_dir(data_dir), blobs_dir(data_dir), spool_dir(data_dir))
    )


def _collect_round(
    spool: Spool, data_dir: Path, retention: RetentionSettings, today: date
) -> _Round:
    with roll_lock(data_dir):
        parts = scan_partitions(data_dir)
        doomed = set(plan(parts, dataset_bytes(data_dir), retention, today))
        if not doomed:
            return _Round()
        with _Hashes(parts, doomed) as hashes:
            unneeded = hashes.column(UNNEEDED_SQL)
    spool.forget_blobs(unneeded)
    # What really left the set: a blob still pending in the spool, or stored
    # again by an append since, stays known, so it must stay in the dataset.
    forgotten = spool.missing_blobs(unneeded)
    roll(spool, data_dir)
    with roll_lock(data_dir):
        parts = scan_partitions(data_dir)  # the roll may have added files
        with _Hashes(parts, doomed) as hashes:
            hashes.table("forgotten", forgotten)
            copied = hashes.copy(_copy_destination(data_dir, parts, doomed))
        deleted = [p for p in parts if p.date in doomed]
        # rows first: a crash between the two leaves blobs without rows, never the reverse
        for kind in ("snapshots", "blobs"):
            for p in deleted:
                if p.kind == kind:
                    _remove_partition(p.path)
    return _Round(
        dates=sorted(doomed),
        partitions=[p.path for p in deleted],
        copied=copied,
        forgotten=len(forgotten),
    )


class _Hashes:
    """A DuckDB session holding the hash sets of one plan as tables.

    ``doomed`` (held by doomed blob files), ``held_elsewhere`` (held by the
    remaining blob files), ``referenced`` (referenced by remaining rows).
    """

    def __init__(self, parts: Sequence[Partition], doomed: set[date]) -> None:
        self.doomed_blob_files = _files(p for p in parts if p.kind == "blobs" and p.date in doomed)
        kept_blobs = _files(p for p in parts if p.kind == "blobs" and p.date not in doomed)
        kept_rows = _files(p for p in parts if p.kind == "snapshots" and p.date not in doomed)
        self.con = duckdb.connect()
        try:
            self._create("doomed", HELD_SQL, self.doomed_blob_files)
            self._create("held_elsewhere", HELD_SQL, kept_blobs)
            self._create("referenced", REFERENCED_SQL, kept_rows)
        except duckdb.Error as exc:
            self.con.close()
            raise StorageError(f"cannot read the dataset: {_first_line(exc)}") from exc

    def __enter__(self) -> _Hashes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()

    def _create(self, name: str, sql: str, files: list[Path]) -> None:
        if files:
            body = sql.format(files=_file_list(files))
        else:
            body = "SELECT CAST(NULL AS VARCHAR) AS hash WHERE false"
        self.con.execute(f"CREATE TEMP TABLE {name} AS {body}")

    def table(self, name: str, hashes: Iterable[str]) -> None:
        arrow = pa.table({"hash": pa.array(sorted(hashes), type=pa.string())})
        self.con.register(f"{name}_arrow", arrow)
        self.con.execute(f"CREATE TEMP TABLE {name} AS SELECT hash FROM {name}_arrow")
        self.con.unregister(f"{name}_arrow")

    def column(self, sql: str) -> list[str]:
        try:
            return [row[0] for row in self.con.execute(sql).fetchall()]
        except duckdb.Error as exc:
            raise StorageError(f"cannot read the dataset: {_first_line(exc)}") from exc

    def copy(self, destination: Path | None) -> int:
        """Write the blobs to keep into one new file in ``destination``; how many."""
        try:
            self.con.execute(f"CREATE TEMP TABLE to_copy AS {TO_COPY_SQL}")
            ((count,),) = self.con.execute("SELECT count(*) FROM to_copy").fetchall()
            if count == 0:
                return 0
            if destination is None:
                raise StorageError("no partition is left to keep still-referenced blobs in")
            reader = self.con.sql(
                COPY_SQL.format(files=_file_list(self.doomed_blob_files))
            ).to_arrow_reader(_COPY_BATCH_ROWS)
            final = destination / f"gc-{ULID()}.parquet"
            rows = ((blob, blob["size"] or 0) for batch in _unique_blobs(reader) for blob in batch)
            written = write_parquet(final, BLOBS, rows)
        except duckdb.Error as exc:
            raise StorageError(f"cannot copy blobs: {_first_line(exc)}") from exc
        if written != count:
            raise StorageError(f"copied {written} of {count} still-referenced blobs; none deleted")
        return written


def _unique_blobs(reader: pa.RecordBatchReader) -> Iterator[list[dict[str, Any]]]:
    """Batches of ``schemas.v1.BLOBS`` rows, each blob once."""
    seen: set[str] = set()
    batch: list[dict[str, Any]] = []
    size = 0
    for record_batch in reader:
        for row in record_batch.to_pylist():
            if row["blob"] in seen:
                continue
            seen.add(row["blob"])
            batch.append(row)
            size += len(row["content"] or b"")
            if size >= _COPY_BATCH_BYTES or len(batch) >= _COPY_BATCH_ROWS:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def _copy_destination(data_dir: Path, parts: Sequence[Partition], doomed: set[date]) -> Path | None:
    """The newest remaining blob partition; made at the newest remaining date if none."""
    blobs = [p for p in parts if p.kind == "blobs" and p.date not in doomed]
    if blobs:
        return max(blobs, key=lambda p: (p.date, p.host)).path
    rest = [p for p in parts if p.date not in doomed]
    if not rest:
        return None
    newest = max(rest, key=lambda p: (p.date, p.host))
    root = blobs_dir(data_dir)
    return make_private_dirs(
        root.parent, root.name, f"date={newest.date.isoformat()}", f"host={newest.host}"
    )


def _remove_partition(path: Path) -> None:
    date_dir = path.parent
    try:
        shutil.rmtree(path)
        with suppress(OSError):  # not empty: another host's partition of that date stays
            date_dir.rmdir()
    except OSError as exc:
        raise StorageError(f"cannot delete {path}: {exc.strerror or exc}") from exc
    fsync_dir(date_dir.parent if not date_dir.exists() else date_dir)


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(
            entry for entry in path.iterdir() if entry.is_dir() and not entry.is_symlink()
        )
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StorageError(f"cannot list {path}: {exc.strerror or exc}") from exc


def _bytes(path: Path) -> int:
    total = 0
    for directory, _dirs, names in os.walk(path):
        for name in names:
            with suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


def _files(parts: Iterable[Partition]) -> list[Path]:
    return sorted(file for p in parts for file in p.path.glob("*.parquet") if file.is_file())


def _file_list(files: Sequence[Path]) -> str:
    return "[" + ", ".join(quote_literal(str(f)) for f in files) + "]"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
