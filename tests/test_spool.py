"""The spool against a real SQLite file: durability, atomicity, blob dedupe, memory."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.v1 import SNAPSHOTS
from snapshotter.errors import StorageError
from snapshotter.spool import Spool, WorkspaceMemory, _decode_row, _encode_row

T0 = datetime(2024, 5, 17, 23, 59, 58, 123456, tzinfo=UTC)
PROJECT = Path(__file__).resolve().parents[1]


def blob(content: bytes) -> tuple[str, bytes]:
    return hashlib.sha256(content).hexdigest(), content


def snapshot_row(
    i: int, *, ts: datetime | None = None, blobs: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A full schema-v1 row, with every nested key and timestamps at µs precision."""
    ts = ts if ts is not None else T0 + timedelta(seconds=i)
    files = [
        {
            "path": f"src/f{n}.py",
            "status": "M",
            "blob": h,
            "base_blob": None,
            "size": 3,
            "omitted": None,
        }
        for n, h in enumerate(blobs)
    ]
    files.append(
        {
            "path": "gone.txt",
            "status": "R",
            "blob": None,
            "base_blob": "ab" * 32,
            "size": None,
            "omitted": None,
        }
    )
    return {
        "snapshot_id": f"{i:026d}",
        "schema_version": 1,
        "ts": ts,
        "host": "box-1",
        "user": "ann",
        "workspace": "/home/ann/work",
        "vcs": "git",
        "base_rev": "0" * 40,
        "branch": None if i % 2 else "main",
        "state_id": f"state-{i}",
        "files": files,
        "diff": f"diff --git a/x b/x\n+ünïcödé {i} \x00\n",
        "lines_added": 1,
        "lines_removed": 0,
        "build": {
            "status": "red",
            "state_id": f"state-{i}",
            "command": "make -j8",
            "exit_code": 2,
            "started_at": ts - timedelta(seconds=5, microseconds=7),
            "finished_at": ts,
            "output": "x.c:1:2: error: boom\n",
            "diagnostics": [
                {
                    "file": "x.c",
                    "line": 1,
                    "col": 2,
                    "severity": "error",
                    "code": None,
                    "message": "boom",
                }
            ],
        },
        "reason": "state",
    }


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def spool(data_dir: Path) -> Iterator[Spool]:
    with Spool.open(data_dir) as opened:
        yield opened


def spooled_rows(spool: Spool) -> list[dict[str, Any]]:
    """Every pending row, read back through the roll protocol, in snapshot_id order."""
    roll_id = spool.begin_roll()
    assert roll_id is not None
    rows = [
        row
        for date, host in spool.roll_partitions(roll_id, "snapshots")
        for row, _size in spool.iter_roll_rows(roll_id, date, host)
    ]
    return sorted(rows, key=lambda row: str(row["snapshot_id"]))


def test_spool_is_wal_with_full_sync(spool: Spool, data_dir: Path) -> None:
    assert spool.path == data_dir / "spool" / "spool.sqlite3"
    assert spool._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert spool._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert spool._conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL


def test_rows_memory_and_blobs_survive_close_and_reopen(data_dir: Path) -> None:
    h, content = blob(b"hello\n")
    rows = [snapshot_row(i, blobs=(h,)) for i in range(3)]
    memory = WorkspaceMemory("/home/ann/work", "0" * 40, "state-2", "red:abc", rows[-1]["ts"])
    with Spool.open(data_dir) as spool:
        spool.append(rows, {h: content}, [memory])
    with Spool.open(data_dir) as spool:
        assert spool.pending_rows() == 3
        assert spool.memory("/home/ann/work") == memory
        assert spool.memory("/elsewhere") is None
        assert spool.missing_blobs([h, "f" * 64]) == {"f" * 64}
        assert spooled_rows(spool) == rows


def test_rows_come_back_identical_including_nested_values_and_timestamps(spool: Spool) -> None:
    plus_two = timezone(timedelta(hours=2))
    rows = [snapshot_row(0), snapshot_row(1, ts=datetime(2024, 3, 1, 1, 0, 0, 1, tzinfo=plus_two))]
    rows[0]["build"] = None
    rows[0]["files"] = []
    spool.append(rows, {})
    back = spooled_rows(spool)
    assert back == rows
    assert back[1]["ts"].tzinfo == UTC
    assert back[1]["ts"].isoformat() == "2024-02-29T23:00:00.000001+00:00"


def test_memory_is_updated_in_place(spool: Spool) -> None:
    first = WorkspaceMemory("/w", "a" * 40, "s1", None, T0)
    second = WorkspaceMemory("/w", "b" * 40, "s2", "green:1", T0 + timedelta(minutes=1))
    spool.append([snapshot_row(0)], {}, [first])
    spool.append([], {}, [second])  # memory alone is fine
    assert spool.memory("/w") == second
    assert spool.pending_rows() == 1


def test_blobs_are_stored_once_across_appends(spool: Spool) -> None:
    a, content_a = blob(b"a" * 100)
    b, content_b = blob(b"b" * 100)
    assert spool.missing_blobs([a, b, a]) == {a, b}
    spool.append([snapshot_row(0, blobs=(a,))], {a: content_a})
    assert spool.missing_blobs([a, b]) == {b}
    spool.append([snapshot_row(1, blobs=(a, b))], {a: content_a, b: content_b})
    stored = spool._conn.execute("SELECT blob FROM pending_blobs ORDER BY seq").fetchall()
    assert [row[0] for row in stored] == [a, b]


def test_missing_blobs_handles_many_hashes(spool: Spool) -> None:
    blobs = dict(blob(str(n).encode()) for n in range(1200))
    spool.append([snapshot_row(0)], dict(list(blobs.items())[:700]))
    assert spool.missing_blobs(blobs) == set(list(blobs)[700:])


def test_blob_rows_take_the_partition_of_the_first_row(spool: Spool) -> None:
    h, content = blob(b"x")
    late = snapshot_row(0, ts=datetime(2024, 1, 2, 0, 0, 1, tzinfo=UTC))
    early = snapshot_row(1, ts=datetime(2024, 1, 1, 23, 0, tzinfo=UTC))
    spool.append([late, early], {h: content})
    roll_id = spool.begin_roll()
    assert roll_id is not None
    assert spool.roll_partitions(roll_id, "blobs") == [("2024-01-02", "box-1")]
    assert spool.roll_partitions(roll_id, "snapshots") == [
        ("2024-01-01", "box-1"),
        ("2024-01-02", "box-1"),
    ]
    [(blob_row, size)] = list(spool.iter_roll_blobs(roll_id, "2024-01-02", "box-1"))
    assert blob_row == {"blob": h, "size": 1, "content": b"x"}
    assert size == 1


def _without(column: str) -> dict[str, Any]:
    row = snapshot_row(0)
    del row[column]
    return row


def _with(**values: Any) -> dict[str, Any]:
    row = snapshot_row(0)
    row.update(values)
    return row


@pytest.mark.parametrize(
    ("rows", "blobs", "message"),
    [
        ([], {"a" * 64: b"x"}, "blobs must come with"),
        ([snapshot_row(0)], {"a" * 64: b"x"}, "not the sha256"),
        ([_without("reason")], {}, "missing \\['reason'\\]"),
        ([{**snapshot_row(0), "extra": 1}], {}, "unknown \\['extra'\\]"),
        ([_with(snapshot_id=None)], {}, "no snapshot_id"),
        ([_with(ts=datetime(2024, 1, 1))], {}, "naive datetime"),
        ([_with(lines_added="many")], {}, "does not fit schema v1"),
        ([_with(lines_added=2**40)], {}, "does not fit schema v1"),
        ([_with(diff="lone \udcff surrogate")], {}, "does not fit schema v1"),
    ],
    ids=[
        "blobs-without-rows",
        "bad-hash",
        "missing",
        "extra",
        "null-id",
        "naive",
        "type",
        "range",
        "surrogate",
    ],
)
def test_append_rejects_what_a_roll_could_not_write(
    spool: Spool, rows: list[dict[str, Any]], blobs: dict[str, bytes], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        spool.append([snapshot_row(9), *rows], blobs) if rows else spool.append(rows, blobs)
    assert spool.pending_rows() == 0
    assert spool.missing_blobs(blobs) == set(blobs)


def test_append_is_one_transaction(spool: Spool) -> None:
    spool.append([snapshot_row(0)], {})
    # A full disk in the middle of the transaction, after the rows went in.
    pages = spool._conn.execute("PRAGMA page_count").fetchone()[0]
    spool._conn.execute(f"PRAGMA max_page_count = {pages + 4}")
    h, content = blob(b"z" * 1_000_000)
    memory = WorkspaceMemory("/w", "a" * 40, "s", None, T0)
    with pytest.raises(StorageError, match=r"cannot append to spool .*spool\.sqlite3: ") as info:
        spool.append([snapshot_row(1), snapshot_row(2)], {h: content}, [memory])
    assert "\n" not in str(info.value)
    assert spool.pending_rows() == 1
    assert spool.missing_blobs([h]) == {h}
    assert spool.memory("/w") is None
    spool._conn.execute("PRAGMA max_page_count = 1073741823")
    spool.append([snapshot_row(1), snapshot_row(2)], {h: content}, [memory])
    assert spool.pending_rows() == 3
    assert spool.memory("/w") == memory


APPENDER = """
import hashlib, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_spool import snapshot_row
from snapshotter.spool import Spool, WorkspaceMemory

spool = Spool.open(Path(sys.argv[1]))
batch = 0
while True:
    rows = [snapshot_row(batch * 20 + k) for k in range(20)]
    content = b"batch %d " % batch * 5000
    digest = hashlib.sha256(content).hexdigest()
    memory = WorkspaceMemory("/w", "r", "s%d" % batch, None, rows[-1]["ts"])
    spool.append(rows, {digest: content}, [memory])
    batch += 1
    if batch == 3:
        print("ready", flush=True)
"""


def test_a_killed_appender_loses_at_most_the_append_in_flight(data_dir: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(data_dir), str(Path(__file__).parent)],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        time.sleep(0.3)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with Spool.open(data_dir) as spool:
        pending = spool.pending_rows()
        assert pending >= 60
        assert pending % 20 == 0
        batches = pending // 20
        memory = spool.memory("/w")
        assert memory is not None
        assert memory.state_id == f"s{batches - 1}"
        digests = [hashlib.sha256(b"batch %d " % n * 5000).hexdigest() for n in range(batches + 1)]
        assert spool.missing_blobs(digests) == {digests[-1]}
        assert spooled_rows(spool) == [snapshot_row(n) for n in range(pending)]


def test_a_spool_from_a_newer_version_is_refused(data_dir: Path) -> None:
    Spool.open(data_dir).close()
    with sqlite3.connect(data_dir / "spool" / "spool.sqlite3") as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StorageError, match="newer redgreen"):
        Spool.open(data_dir)


def test_a_file_where_the_spool_directory_belongs_is_a_storage_error(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "spool").write_text("not a directory")
    with pytest.raises(StorageError, match="spool"):
        Spool.open(data_dir)


def test_a_stale_wal_of_a_deleted_spool_is_not_replayed(data_dir: Path) -> None:
    spool = Spool.open(data_dir)
    spool.append([snapshot_row(0)], {})
    wal = data_dir / "spool" / "spool.sqlite3-wal"
    stale = wal.read_bytes()
    spool.close()
    (data_dir / "spool" / "spool.sqlite3").unlink()
    wal.write_bytes(stale)
    with Spool.open(data_dir) as reopened:
        assert reopened.pending_rows() == 0
        assert reopened._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


_text = st.text(max_size=20)
_ints = st.integers(min_value=-(2**31), max_value=2**31 - 1)
_times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
) | st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.builds(
        timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
    ),
)
_file = st.fixed_dictionaries(
    {
        "path": _text,
        "status": st.sampled_from(["M", "A", "R", "?"]),
        "blob": st.none() | _text,
        "base_blob": st.none() | _text,
        "size": st.none() | st.integers(min_value=0, max_value=2**62),
        "omitted": st.none() | st.sampled_from(["excluded", "too_large", "binary"]),
    }
)
_diagnostic = st.fixed_dictionaries(
    {
        "file": st.none() | _text,
        "line": st.none() | _ints,
        "col": st.none() | _ints,
        "severity": st.none() | _text,
        "code": st.none() | _text,
        "message": st.none() | _text,
    }
)
_build = st.none() | st.fixed_dictionaries(
    {
        "status": st.sampled_from(["green", "red", "unknown", "stale", "timeout", "error"]),
        "state_id": _text,
        "command": _text,
        "exit_code": st.none() | _ints,
        "started_at": st.none() | _times,
        "finished_at": st.none() | _times,
        "output": _text,
        "diagnostics": st.none() | st.lists(_diagnostic, max_size=3),
    }
)
_row = st.fixed_dictionaries(
    {
        "snapshot_id": _text,
        "schema_version": st.just(1),
        "ts": _times,
        "host": st.none() | _text,
        "user": st.none() | _text,
        "workspace": _text,
        "vcs": st.sampled_from(["hg", "git"]),
        "base_rev": _text,
        "branch": st.none() | _text,
        "state_id": _text,
        "files": st.none() | st.lists(_file, max_size=3),
        "diff": st.none() | st.text(max_size=200),
        "lines_added": st.none() | _ints,
        "lines_removed": st.none() | _ints,
        "build": _build,
        "reason": st.sampled_from(["state", "build", "heartbeat", "start", "stop", "base"]),
    }
)


@settings(max_examples=200)
@given(_row)
def test_any_schema_row_round_trips_through_the_spool_encoding(row: dict[str, Any]) -> None:
    assert set(row) == set(SNAPSHOTS.names)
    date, host, data = _encode_row(row)
    assert _decode_row(data) == row
    assert date == row["ts"].astimezone(UTC).date().isoformat()
    assert host == row["host"]


def test_forgotten_blobs_are_stored_again_when_they_reappear(spool: Spool) -> None:
    a, content_a = blob(b"gone with its partition\n")
    b, content_b = blob(b"still in the dataset\n")
    c, content_c = blob(b"still waiting in the spool\n")
    spool.append([snapshot_row(0, blobs=(a, b))], {a: content_a, b: content_b})
    roll_id = spool.begin_roll()
    assert roll_id is not None
    spool.finish_roll(roll_id)  # as if rolled: a and b are in Parquet now
    spool.append([snapshot_row(1, blobs=(c,))], {c: content_c})

    spool.forget_blobs([a, a, c, "f" * 64])

    # a is stored again; b was not forgotten; c is still pending, so it stays known
    # (forgetting it would make this append collide with the pending copy)
    assert spool.missing_blobs([a, b, c]) == {a}
    spool.append([snapshot_row(2, blobs=(a, b, c))], {a: content_a, b: content_b, c: content_c})
    stored = spool._conn.execute("SELECT blob FROM pending_blobs ORDER BY seq").fetchall()
    assert [row[0] for row in stored] == [c, a]
    assert spool.missing_blobs([a, b, c]) == set()


def test_forget_blobs_handles_many_hashes(spool: Spool) -> None:
    blobs = dict(blob(str(n).encode()) for n in range(1200))
    spool.append([snapshot_row(0)], blobs)
    roll_id = spool.begin_roll()
    assert roll_id is not None
    spool.finish_roll(roll_id)
    spool.forget_blobs(list(blobs)[:1100])
    assert spool.missing_blobs(blobs) == set(list(blobs)[:1100])
