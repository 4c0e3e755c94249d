"""The crash-safe spool: where snapshot rows and blobs wait until a roll.

One SQLite database, ``DATA_DIR/spool/spool.sqlite3``, in WAL mode with
``synchronous=FULL``: an :meth:`Spool.append` that returned survives kill -9
and power loss, and one that did not left nothing behind.

    rows           pending snapshot rows, as JSON (timestamps as {"$ts": µs})
    pending_blobs  content of blobs not yet rolled into Parquet
    stored_blobs   every blob hash ever stored in this dataset (dedupe set)
    rolls          rolls begun and not yet finished (see ``roll.py``)
    memory         what was last recorded per workspace
    meta           small facts, e.g. the last roll id handed out

A roll runs in three steps, so a kill at any point is repaired by redoing
the unfinished roll: :meth:`Spool.begin_roll` assigns every unassigned row
and blob to a new roll id in one transaction; ``roll.py`` writes Parquet
files named after the roll id (a redo overwrites them);
:meth:`Spool.finish_roll` deletes the roll's rows, blob content and record
in one transaction.  Blob hashes stay in ``stored_blobs``, so a blob is
stored once per dataset (until ``gc`` deletes it and forgets its hash).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from ulid import ULID

from schemas.v1 import SNAPSHOTS
from snapshotter.errors import StorageError
from snapshotter.paths import PRIVATE_FILE_MODE, blobs_dir, ensure_private_dir, spool_dir

logger = logging.getLogger(__name__)

SPOOL_FILE = "spool.sqlite3"
RollKind = Literal["snapshots", "blobs"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TS_KEY = "$ts"
_COLUMNS = frozenset(SNAPSHOTS.names)
_REQUIRED = tuple(field.name for field in SNAPSHOTS if not field.nullable)
# Keeps a page of a roll's rows (and its blob content) modest in memory.
_PAGE_ROWS = 256
_PAGE_BLOBS = 32
# Bounded by SQLite's host-parameter limit (999 in old builds).
_IN_CHUNK = 500

# Named, ordered schema steps; PRAGMA user_version counts those applied.
_MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "create spool tables",
        (
            """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
            """CREATE TABLE rolls (
                seq INTEGER PRIMARY KEY,
                roll_id TEXT NOT NULL UNIQUE
            )""",
            """CREATE TABLE rows (
                seq INTEGER PRIMARY KEY,
                date TEXT NOT NULL,
                host TEXT,
                roll_id TEXT,
                data TEXT NOT NULL
            )""",
            """CREATE INDEX rows_by_roll ON rows (roll_id, date, host, seq)""",
            """CREATE TABLE pending_blobs (
                seq INTEGER PRIMARY KEY,
                blob TEXT NOT NULL UNIQUE,
                date TEXT NOT NULL,
                host TEXT,
                size INTEGER NOT NULL,
                content BLOB NOT NULL,
                roll_id TEXT
            )""",
            """CREATE INDEX pending_blobs_by_roll ON pending_blobs (roll_id, date, host, seq)""",
            """CREATE TABLE stored_blobs (blob TEXT PRIMARY KEY) WITHOUT ROWID""",
            """CREATE TABLE memory (
                workspace TEXT PRIMARY KEY,
                base_rev TEXT NOT NULL,
                state_id TEXT NOT NULL,
                build_key TEXT,
                ts_us INTEGER NOT NULL
            )""",
        ),
    ),
)


@dataclass(frozen=True)
class WorkspaceMemory:
    """What was last recorded for a workspace, so unchanged ticks add nothing."""

    workspace: str
    base_rev: str
    state_id: str
    build_key: str | None  # opaque fingerprint of the last recorded build result
    ts: datetime  # UTC, of the last recorded row


class Spool:
    """Append-only store of rows and blobs waiting to be rolled into Parquet.

    One instance may be shared by threads; several processes may open the same
    spool (SQLite serialises their writes, ``roll.py`` serialises their rolls).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()

    @classmethod
    def open(cls, data_dir: Path) -> Spool:
        """Open (creating if needed) the spool of the dataset at ``data_dir``."""
        directory = make_private_dirs(data_dir, *spool_dir(data_dir).relative_to(data_dir).parts)
        path = directory / SPOOL_FILE
        try:
            _create_private_database(path)
            conn = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open spool {path}: {_reason(exc)}") from exc
        try:
            _configure(conn, path)
            _migrate(conn, path, data_dir)
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot open spool {path}: {_reason(exc)}") from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- recording ---------------------------------------------------------

    def append(
        self,
        rows: Sequence[dict[str, Any]],
        blobs: Mapping[str, bytes],
        memory: Sequence[WorkspaceMemory] = (),
    ) -> None:
        """Record rows, new blobs and workspace memory in one transaction.

        Blobs already stored in this dataset are skipped; new ones get the
        partition (date, host) of ``rows[0]``.  Rows that pyarrow would refuse
        raise ValueError here, not at roll time, so they cannot wedge a roll.
        """
        if not rows and blobs:
            raise ValueError("blobs must come with the rows that reference them")
        _check_against_schema(rows)
        encoded = [_encode_row(row) for row in rows]
        for digest, content in blobs.items():
            if hashlib.sha256(content).hexdigest() != digest:
                raise ValueError(f"blob {digest!r} is not the sha256 of its content")
        for item in memory:
            _to_micros(item.ts)
        blob_date, blob_host = (encoded[0][0], encoded[0][1]) if encoded else ("", None)
        with self._transaction("append to"):
            self._conn.executemany("INSERT INTO rows (date, host, data) VALUES (?, ?, ?)", encoded)
            # batched, not two statements a blob: a branch switch brings thousands
            stored = self._stored_among(list(blobs))
            new = [(d, c) for d, c in blobs.items() if d not in stored]
            self._conn.executemany(
                "INSERT INTO stored_blobs (blob) VALUES (?)", [(d,) for d, _ in new]
            )
            self._conn.executemany(
                "INSERT INTO pending_blobs (blob, date, host, size, content)"
                " VALUES (?, ?, ?, ?, ?)",
                [(d, blob_date, blob_host, len(c), c) for d, c in new],
            )
            self._conn.executemany(
                "INSERT OR REPLACE INTO memory (workspace, base_rev, state_id, build_key, ts_us)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (m.workspace, m.base_rev, m.state_id, m.build_key, _to_micros(m.ts))
                    for m in memory
                ],
            )

    def forget_blobs(self, hashes: Iterable[str]) -> None:
        """Drop hashes from the stored-blob set, so each is stored again if it reappears.

        Retention calls this for blobs it deletes from the dataset.  A hash still
        waiting in the spool is kept: its next roll stores it, and forgetting it
        would make a later append of the same content collide with it.
        """
        wanted = list(dict.fromkeys(hashes))
        with self._transaction("forget blobs in"):
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                self._conn.execute(
                    f"DELETE FROM stored_blobs WHERE blob IN ({marks})"
                    " AND blob NOT IN (SELECT blob FROM pending_blobs)",
                    chunk,
                )

    def missing_blobs(self, hashes: Iterable[str]) -> set[str]:
        """The hashes never stored in this dataset (spooled or rolled)."""
        wanted = list(dict.fromkeys(hashes))
        with self._reading():
            known = self._stored_among(wanted)
        return set(wanted) - known

    def _stored_among(self, hashes: Sequence[str]) -> set[str]:
        """Which of these (distinct) hashes ``stored_blobs`` holds; the caller holds the lock."""
        known: set[str] = set()
        for start in range(0, len(hashes), _IN_CHUNK):
            chunk = hashes[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            known.update(
                row[0]
                for row in self._conn.execute(
                    f"SELECT blob FROM stored_blobs WHERE blob IN ({marks})", chunk
                )
            )
        return known

    def memory(self, workspace: str) -> WorkspaceMemory | None:
        with self._reading():
            row = self._conn.execute(
                "SELECT workspace, base_rev, state_id, build_key, ts_us FROM memory"
                " WHERE workspace = ?",
                (workspace,),
            ).fetchone()
        if row is None:
            return None
        return WorkspaceMemory(row[0], row[1], row[2], row[3], _from_micros(row[4]))

    def pending_rows(self) -> int:
        """Rows not yet rolled (including those of an unfinished roll)."""
        with self._reading():
            count: int = self._conn.execute("SELECT count(*) FROM rows").fetchone()[0]
        return count

    # -- the roll protocol, driven by roll.py --------------------------------

    def begin_roll(self) -> str | None:
        """Assign every unassigned row and blob to a new roll; None if there are none."""
        with self._transaction("begin a roll in"):
            waiting = self._conn.execute(
                "SELECT EXISTS (SELECT 1 FROM rows WHERE roll_id IS NULL)"
                " OR EXISTS (SELECT 1 FROM pending_blobs WHERE roll_id IS NULL)"
            ).fetchone()[0]
            if not waiting:
                return None
            roll_id = self._next_roll_id()
            self._conn.execute("INSERT INTO rolls (roll_id) VALUES (?)", (roll_id,))
            self._conn.execute("UPDATE rows SET roll_id = ? WHERE roll_id IS NULL", (roll_id,))
            self._conn.execute(
                "UPDATE pending_blobs SET roll_id = ? WHERE roll_id IS NULL", (roll_id,)
            )
        return roll_id

    def unfinished_rolls(self) -> list[str]:
        """Rolls begun and not finished, oldest first."""
        with self._reading():
            return [row[0] for row in self._conn.execute("SELECT roll_id FROM rolls ORDER BY seq")]

    def roll_partitions(self, roll_id: str, kind: RollKind) -> list[tuple[str, str | None]]:
        """The distinct (date, raw host) of a roll's rows or blobs."""
        table = {"snapshots": "rows", "blobs": "pending_blobs"}[kind]
        with self._reading():
            return [
                (row[0], row[1])
                for row in self._conn.execute(
                    f"SELECT DISTINCT date, host FROM {table} WHERE roll_id = ?"
                    " ORDER BY date, host",
                    (roll_id,),
                )
            ]

    def iter_roll_rows(
        self, roll_id: str, date: str, host: str | None
    ) -> Iterator[tuple[dict[str, Any], int]]:
        """A roll's snapshot rows in one partition, in append order, with their spooled size."""
        for _seq, data in self._pages(
            "SELECT seq, data FROM rows WHERE roll_id = ? AND date = ? AND host IS ?"
            " AND seq > ? ORDER BY seq LIMIT ?",
            (roll_id, date, host),
            _PAGE_ROWS,
        ):
            yield _decode_row(data), len(data)

    def iter_roll_blobs(
        self, roll_id: str, date: str, host: str | None
    ) -> Iterator[tuple[dict[str, Any], int]]:
        """A roll's blobs in one partition, as ``schemas.v1.BLOBS`` rows, with their size."""
        for _seq, blob, size, content in self._pages(
            "SELECT seq, blob, size, content FROM pending_blobs WHERE roll_id = ? AND date = ?"
            " AND host IS ? AND seq > ? ORDER BY seq LIMIT ?",
            (roll_id, date, host),
            _PAGE_BLOBS,
        ):
            yield {"blob": blob, "size": size, "content": bytes(content)}, size

    def finish_roll(self, roll_id: str) -> None:
        """Forget a roll whose files are durable: its rows, blob content and record."""
        with self._transaction("finish a roll in"):
            self._conn.execute("DELETE FROM rows WHERE roll_id = ?", (roll_id,))
            self._conn.execute("DELETE FROM pending_blobs WHERE roll_id = ?", (roll_id,))
            self._conn.execute("DELETE FROM rolls WHERE roll_id = ?", (roll_id,))
        # Give back the pages the rolled content used: the spool stays as small
        # as what is pending.  Failing to shrink loses nothing.
        with self._lock:
            try:
                self._conn.execute("PRAGMA incremental_vacuum").fetchall()
            except sqlite3.Error as exc:
                logger.warning("cannot shrink spool %s: %s", self.path, exc)

    # -- internals -----------------------------------------------------------

    def _next_roll_id(self) -> str:
        # A ULID is time-sortable to the millisecond; make it strictly increasing
        # within this spool too, whatever the clock or the process.
        candidate = ULID()
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'last_roll_id'").fetchone()
        if row is not None:
            last = ULID.from_str(row[0])
            if int(candidate) <= int(last):
                candidate = ULID.from_int(int(last) + 1)
        roll_id = str(candidate)
        self._conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_roll_id', ?)", (roll_id,)
        )
        return roll_id

    def _pages(self, query: str, args: tuple[Any, ...], page: int) -> Iterator[tuple[Any, ...]]:
        # Keyset paging, each page under the lock only briefly: appends are not
        # blocked while a roll writes.  A roll's rows do not change meanwhile.
        last = -1
        while True:
            with self._reading():
                batch = self._conn.execute(query, (*args, last, page)).fetchall()
            yield from batch
            if len(batch) < page:
                return
            last = batch[-1][0]

    @contextmanager
    def _transaction(self, action: str) -> Iterator[None]:
        with self._lock:
            try:
                if disk_full_injected():
                    raise sqlite3.OperationalError("database or disk is full")
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StorageError(f"cannot {action} spool {self.path}: {_reason(exc)}") from exc

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read spool {self.path}: {_reason(exc)}") from exc


# Test hook: while the file this names exists, every spool write and every
# Parquet file fails as on a full disk.  tests/test_full_disk.py uses it only
# where it cannot mount a small file system to fill for real.
DISK_FULL_ENV = "REDGREEN_TEST_DISK_FULL"


def disk_full_injected() -> bool:
    flag = os.environ.get(DISK_FULL_ENV)
    return flag is not None and os.path.exists(flag)


def make_private_dirs(root: Path, *parts: str) -> Path:
    """``root/parts...``, creating each missing level 0700 and making it durable.

    Existing directories are left as they are (a directory a person made
    read-only stays read-only).  A new entry is fsynced into its parent, so a
    file later made durable in it is reachable after a crash.
    """
    path = root
    if not path.is_dir():
        ensure_private_dir(path)
    for part in parts:
        parent, path = path, path / part
        if not path.is_dir():
            ensure_private_dir(path)
            fsync_dir(parent)
    return path


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"cannot sync directory {path}: {_reason(exc)}") from exc


def _create_private_database(path: Path) -> None:
    # SQLite gives its -wal and -shm files the mode of the database file, so
    # creating that one 0600 keeps all three private whatever the umask.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    # A WAL left by a database deleted by hand would be replayed into the new
    # one and corrupt it.
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    fsync_dir(path.parent)


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    # auto_vacuum only takes on a database without tables, i.e. a new one.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StorageError(f"cannot open spool {path}: the file system does not support WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA journal_size_limit = 67108864")


def _migrate(conn: sqlite3.Connection, path: Path, data_dir: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(_MIGRATIONS):
            raise StorageError(
                f"cannot open spool {path}: written by a newer redgreen (spool version {version})"
            )
        for number, (name, statements) in enumerate(_MIGRATIONS[version:], start=version + 1):
            logger.debug("spool %s: step %d, %s", path, number, name)
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        if version == 0:
            _seed_stored_blobs(conn, data_dir)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _seed_stored_blobs(conn: sqlite3.Connection, data_dir: Path) -> None:
    # A new spool beside an existing dataset (the spool was deleted by hand):
    # learn which blobs the dataset already holds, so they are stored once.
    root = blobs_dir(data_dir)
    if not root.is_dir():
        return
    for file in sorted(root.rglob("*.parquet")):
        try:
            with pq.ParquetFile(file) as parquet:
                hashes = parquet.read(columns=["blob"]).column("blob").to_pylist()
        except (OSError, pa.ArrowException) as exc:
            # Its blobs are unreadable anyway: storing them again is the cure.
            logger.warning("cannot read blob hashes from %s: %s", file, exc)
            continue
        conn.executemany(
            "INSERT OR IGNORE INTO stored_blobs (blob) VALUES (?)",
            ((digest,) for digest in hashes if digest is not None),
        )


def _check_against_schema(rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:
        if row.keys() != _COLUMNS:
            missing = sorted(_COLUMNS - row.keys())
            extra = sorted(row.keys() - _COLUMNS)
            raise ValueError(f"snapshot row columns differ: missing {missing}, unknown {extra}")
        for name in _REQUIRED:
            if row[name] is None:
                raise ValueError(f"snapshot row has no {name}")
    try:
        pa.Table.from_pylist(list(rows), schema=SNAPSHOTS)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"snapshot row does not fit schema v1: {exc}") from exc


def _encode_row(row: Mapping[str, Any]) -> tuple[str, str | None, str]:
    """(partition date, host, JSON) of a snapshot row."""
    ts = row.get("ts")
    if not isinstance(ts, datetime):
        raise ValueError("snapshot row has no ts datetime")
    date = _from_micros(_to_micros(ts)).date().isoformat()
    host = row.get("host")
    try:
        data = json.dumps(
            row, default=_encode_value, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    except TypeError as exc:
        raise ValueError(f"snapshot row holds a value the spool cannot store: {exc}") from exc
    return date, host if isinstance(host, str) else None, data


def _decode_row(data: str) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(data, object_hook=_decode_object)
    return row


def _encode_value(value: object) -> object:
    if isinstance(value, datetime):
        return {_TS_KEY: _to_micros(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _decode_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _TS_KEY in obj:
        return _from_micros(obj[_TS_KEY])
    return obj


def _to_micros(value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: timestamps must be timezone-aware")
    return (value - _EPOCH) // _MICROSECOND


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
