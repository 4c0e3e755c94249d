"""The roll: move what the spool holds into hive-partitioned Parquet files.

    DATA_DIR/blobs/date=D/host=H/<roll id>.parquet      written first, so a
    DATA_DIR/snapshots/date=D/host=H/<roll id>.parquet  visible row has its blobs

A roll is idempotent.  The spool assigns the pending rows to a roll id (one
transaction), the files are written under names taken from that id, then the
spool forgets the rows (one transaction).  A roll killed or failed in between
is redone by the next :func:`roll`, before it takes new rows: the redo
rewrites the same names with the same rows, so nothing is duplicated.

A file appears only whole: it is written under a hidden temporary name in its
final directory, flushed and fsynced, renamed over the final name, and the
directory is fsynced.  A kill mid-write leaves only a temporary, which
:func:`sweep_temporaries` removes.  Rolls and sweeps of one dataset take an
exclusive lock (``spool/roll.lock``), so two processes never write the same
file at once and a sweep never removes a live temporary.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.v1 import BLOBS, SNAPSHOTS
from snapshotter.errors import StorageError
from snapshotter.paths import PRIVATE_FILE_MODE, blobs_dir, snapshots_dir, spool_dir
from snapshotter.spool import RollKind, Spool, disk_full_injected, fsync_dir, make_private_dirs

LOCK_FILE = "roll.lock"
# A row group is written once this much content is buffered: large enough for
# DuckDB to read well, small enough to bound memory after a long outage.
ROW_GROUP_BYTES = 64 * 1024 * 1024
ROW_GROUP_ROWS = 100_000

_UNSAFE_HOST = re.compile(r"[^A-Za-z0-9._-]")
# ".<final name>.<16 hex>.tmp": hidden, and no reader's "*.parquet" glob matches it.
_TEMPORARY = re.compile(r"^\..+\.parquet\.[0-9a-f]{16}\.tmp$")

# Test hook: seconds to sleep between a temporary's fsync and its rename, so a
# test can kill a roll at that instant (tests/test_kill_loop.py).  Unset: no pause.
ROLL_PAUSE_ENV = "REDGREEN_TEST_ROLL_PAUSE"

_Items = Iterator[tuple[dict[str, Any], int]]


@dataclass(frozen=True)
class RollResult:
    snapshot_files: int
    blob_files: int
    rows: int
    blobs: int

    def __add__(self, other: RollResult) -> RollResult:
        return RollResult(
            self.snapshot_files + other.snapshot_files,
            self.blob_files + other.blob_files,
            self.rows + other.rows,
            self.blobs + other.blobs,
        )


def roll(spool: Spool, data_dir: Path) -> RollResult:
    """Redo unfinished rolls, then roll everything pending; counts what was written."""
    total = RollResult(0, 0, 0, 0)
    with roll_lock(data_dir):
        for roll_id in spool.unfinished_rolls():
            total += _write_roll(spool, data_dir, roll_id)
        new_roll = spool.begin_roll()
        if new_roll is not None:
            total += _write_roll(spool, data_dir, new_roll)
    return total


def sweep_temporaries(data_dir: Path) -> int:
    """Remove temporaries left by a killed roll; returns how many."""
    removed = 0
    with roll_lock(data_dir):
        # Under the lock no roll is writing, so every temporary is stale.
        for root in (snapshots_dir(data_dir), blobs_dir(data_dir)):
            for directory, _dirs, names in os.walk(root):
                for name in names:
                    if not _TEMPORARY.match(name):
                        continue
                    path = Path(directory) / name
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        continue
                    except OSError as exc:
                        raise StorageError(f"cannot remove {path}: {_reason(exc)}") from exc
                    removed += 1
    return removed


def safe_host(host: str | None) -> str:
    """``host`` as a partition directory value: [A-Za-z0-9._-] kept, the rest '_'."""
    return _UNSAFE_HOST.sub("_", host or "") or "_"


def _write_roll(spool: Spool, data_dir: Path, roll_id: str) -> RollResult:
    blob_files, blobs = _write_kind(spool, data_dir, roll_id, "blobs")
    snapshot_files, rows = _write_kind(spool, data_dir, roll_id, "snapshots")
    spool.finish_roll(roll_id)
    return RollResult(snapshot_files, blob_files, rows, blobs)


def _write_kind(spool: Spool, data_dir: Path, roll_id: str, kind: RollKind) -> tuple[int, int]:
    """Write one file per partition of a roll's rows (or blobs); (files, rows)."""
    root, schema, items = {
        "snapshots": (snapshots_dir(data_dir), SNAPSHOTS, spool.iter_roll_rows),
        "blobs": (blobs_dir(data_dir), BLOBS, spool.iter_roll_blobs),
    }[kind]
    # Hosts that differ only in unsafe characters share a directory, hence a
    # file: group them before writing, or one would overwrite the other.
    partitions: dict[tuple[str, str], list[str | None]] = {}
    for date, host in spool.roll_partitions(roll_id, kind):
        partitions.setdefault((date, safe_host(host)), []).append(host)
    files = rows = 0
    for (date, host_dir), hosts in partitions.items():
        directory = make_private_dirs(root.parent, root.name, f"date={date}", f"host={host_dir}")
        rows += write_parquet(
            directory / f"{roll_id}.parquet", schema, _chain(items, roll_id, date, hosts)
        )
        files += 1
    return files, rows


def _chain(
    items: Callable[[str, str, str | None], _Items],
    roll_id: str,
    date: str,
    hosts: Iterable[str | None],
) -> _Items:
    for host in hosts:
        yield from items(roll_id, date, host)


def write_parquet(
    final: Path, schema: pa.Schema, items: Iterable[tuple[dict[str, Any], int]]
) -> int:
    """Write ``items`` to ``final`` so that it appears whole or not at all; returns the rows."""
    temporary = final.with_name(f".{final.name}.{secrets.token_hex(8)}.tmp")
    written = 0
    try:
        if disk_full_injected():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE
        )
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, PRIVATE_FILE_MODE)  # the umask may have taken bits away
            writer = pq.ParquetWriter(file, schema, compression="zstd")
            try:
                buffer: list[dict[str, Any]] = []
                size = 0
                for row, nbytes in items:
                    buffer.append(row)
                    size += nbytes
                    if size >= ROW_GROUP_BYTES or len(buffer) >= ROW_GROUP_ROWS:
                        writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
                        written += len(buffer)
                        buffer, size = [], 0
                if buffer or not written:
                    writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
                    written += len(buffer)
            finally:
                writer.close()
            file.flush()
            os.fsync(fd)
        if pause := os.environ.get(ROLL_PAUSE_ENV):
            time.sleep(float(pause))
        os.replace(temporary, final)
    except OSError as exc:
        with suppress(OSError):
            temporary.unlink()
        raise StorageError(f"cannot write {final}: {_reason(exc)}") from exc
    except BaseException:
        with suppress(OSError):
            temporary.unlink()
        raise
    fsync_dir(final.parent)
    return written


@contextmanager
def roll_lock(data_dir: Path) -> Iterator[None]:
    """Held around rolls, sweeps and gc of one dataset: they never race."""
    directory = make_private_dirs(data_dir, *spool_dir(data_dir).relative_to(data_dir).parts)
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise StorageError(f"cannot open {path}: {_reason(exc)}") from exc
    try:
        try:
            os.fchmod(fd, PRIVATE_FILE_MODE)
            # Blocks while another roll of this dataset runs; the kernel
            # releases the lock of a killed process.
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise StorageError(f"cannot lock {path}: {_reason(exc)}") from exc
        yield
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
