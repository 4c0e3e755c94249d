"""Rolls into real Parquet files, read back with DuckDB; real kills with SIGKILL."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from ulid import ULID

from schemas.v1 import BLOBS, SNAPSHOTS
from snapshotter import roll as roll_module
from snapshotter.errors import StorageError
from snapshotter.roll import RollResult, roll, safe_host, sweep_temporaries
from snapshotter.spool import Spool

T0 = datetime(2024, 5, 17, 23, 59, 0, 250000, tzinfo=UTC)
PROJECT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def blob(content: bytes) -> tuple[str, bytes]:
    return hashlib.sha256(content).hexdigest(), content


def snapshot_row(
    i: int, *, ts: datetime | None = None, host: str = "box-1", blobs: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A full schema-v1 row, with every nested key and timestamps at µs precision."""
    ts = ts if ts is not None else T0 + timedelta(seconds=i)
    files = [
        {
            "path": f"src/f{n}.py",
            "status": "A",
            "blob": h,
            "base_blob": None,
            "size": 10,
            "omitted": None,
        }
        for n, h in enumerate(blobs)
    ]
    files.append(
        {
            "path": "big.bin",
            "status": "M",
            "blob": None,
            "base_blob": "cd" * 32,
            "size": 9,
            "omitted": "too_large",
        }
    )
    return {
        "snapshot_id": f"{i:026d}",
        "schema_version": 1,
        "ts": ts,
        "host": host,
        "user": "ann",
        "workspace": "/home/ann/work",
        "vcs": "hg",
        "base_rev": "f" * 40,
        "branch": "default" if i % 3 else None,
        "state_id": f"state-{i}",
        "files": files,
        "diff": f"diff --git a/src/f.py b/src/f.py\n+print({i}) # ünïcödé\n",
        "lines_added": i,
        "lines_removed": 0,
        "build": None
        if i % 4 == 0
        else {
            "status": "red" if i % 2 else "green",
            "state_id": f"state-{i - 1}",
            "command": "cargo build",
            "exit_code": i % 2,
            "started_at": ts - timedelta(seconds=3, microseconds=999),
            "finished_at": None if i % 5 == 0 else ts,
            "output": "error[E0308]: mismatched types\n" * (i % 3),
            "diagnostics": [
                {
                    "file": "src/f.rs",
                    "line": i,
                    "col": 7,
                    "severity": "error",
                    "code": "E0308",
                    "message": "m",
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


def read(
    data_dir: Path, kind: str, query: str = "select * exclude (date) from t order by 1"
) -> list[dict[str, Any]]:
    """Rows of ``kind`` the way the miner reads them."""
    with duckdb.connect() as con:
        pattern = str(data_dir / kind / "**" / "*.parquet").replace("'", "''")
        con.execute(
            f"create view t as select * from read_parquet('{pattern}',"
            " union_by_name=true, hive_partitioning=true)"
        )
        rows: list[dict[str, Any]] = con.sql(query).to_arrow_table().to_pylist()
        return rows


def parquet_files(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.glob("*/date=*/host=*/*.parquet"))


def test_roll_writes_partitions_and_the_exact_values(spool: Spool, data_dir: Path) -> None:
    a, content_a = blob(b"print('a')\n")
    b, content_b = blob(bytes(range(256)) * 10)
    rows = [snapshot_row(i, blobs=(a,)) for i in range(1, 600)]  # spans two days and pages
    rows.append(
        snapshot_row(
            600,
            host="other",
            blobs=(b,),
            ts=datetime(2024, 5, 18, 1, 0, tzinfo=timezone(timedelta(hours=2))),
        )
    )
    spool.append(rows[:-1], {a: content_a})
    spool.append(rows[-1:], {b: content_b})

    result = roll(spool, data_dir)

    assert result == RollResult(snapshot_files=3, blob_files=2, rows=600, blobs=2)
    assert spool.pending_rows() == 0
    [roll_id] = {Path(f).stem for f in parquet_files(data_dir)}
    assert parquet_files(data_dir) == [
        f"blobs/date=2024-05-17/host=box-1/{roll_id}.parquet",
        f"blobs/date=2024-05-17/host=other/{roll_id}.parquet",
        f"snapshots/date=2024-05-17/host=box-1/{roll_id}.parquet",
        f"snapshots/date=2024-05-17/host=other/{roll_id}.parquet",
        f"snapshots/date=2024-05-18/host=box-1/{roll_id}.parquet",
    ]
    assert read(data_dir, "snapshots") == rows
    assert read(
        data_dir, "snapshots", "select distinct host, date::varchar as d from t order by 1, 2"
    ) == [
        {"host": "box-1", "d": "2024-05-17"},
        {"host": "box-1", "d": "2024-05-18"},
        {"host": "other", "d": "2024-05-17"},
    ]
    assert read(data_dir, "blobs") == [
        {"blob": h, "size": len(c), "content": c, "host": host}
        for h, c, host in sorted([(a, content_a, "box-1"), (b, content_b, "other")])
    ]
    for file in data_dir.glob("*/*/*/*.parquet"):
        parquet = pq.ParquetFile(file)
        assert parquet.schema_arrow in (SNAPSHOTS, BLOBS)
        assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"

    assert roll(spool, data_dir) == RollResult(0, 0, 0, 0)
    assert len(parquet_files(data_dir)) == 5


def test_each_roll_adds_files_with_time_sortable_names(spool: Spool, data_dir: Path) -> None:
    names = []
    for i in range(3):
        spool.append([snapshot_row(i, ts=T0)], {})
        roll(spool, data_dir)
        names.append(max(parquet_files(data_dir)))
    assert len(set(names)) == 3
    assert names == sorted(names)
    for name in names:
        ULID.from_str(Path(name).stem)
    assert [r["snapshot_id"] for r in read(data_dir, "snapshots")] == [
        f"{i:026d}" for i in range(3)
    ]


def test_hosts_are_made_safe_and_hosts_alike_share_one_file(spool: Spool, data_dir: Path) -> None:
    assert safe_host("büro pc/1") == "b_ro_pc_1"
    assert safe_host("a.b-c_D9") == "a.b-c_D9"
    assert safe_host("") == safe_host(None) == "_"
    spool.append([snapshot_row(0, host="my host", ts=T0)], {})
    spool.append([snapshot_row(1, host="my/host", ts=T0)], {})
    assert roll(spool, data_dir).snapshot_files == 1
    [file] = parquet_files(data_dir)
    assert file.startswith("snapshots/date=2024-05-17/host=my_host/")
    # The file keeps the true host; a hive-partitioned reader sees the directory's.
    assert pq.read_table(data_dir / file).column("host").to_pylist() == ["my host", "my/host"]


def test_blobs_are_stored_once_across_rolls(spool: Spool, data_dir: Path) -> None:
    a, content_a = blob(b"same content")
    spool.append([snapshot_row(0, blobs=(a,))], {a: content_a})
    roll(spool, data_dir)
    assert spool.missing_blobs([a]) == set()
    spool.append([snapshot_row(1, blobs=(a,))], {a: content_a})
    assert roll(spool, data_dir) == RollResult(snapshot_files=1, blob_files=0, rows=1, blobs=0)
    assert read(data_dir, "blobs", "select blob, count(*) as n from t group by blob") == [
        {"blob": a, "n": 1}
    ]


def test_blobs_are_stored_once_after_the_spool_is_deleted(data_dir: Path) -> None:
    a, content_a = blob(b"rolled before the spool was lost")
    b, content_b = blob(b"new")
    with Spool.open(data_dir) as spool:
        spool.append([snapshot_row(0, blobs=(a,))], {a: content_a})
        roll(spool, data_dir)
    shutil.rmtree(data_dir / "spool")
    # A file no reader can open must not stop the seeding; its blobs count as missing.
    (data_dir / "blobs" / "date=2024-05-17" / "host=box-1" / "broken.parquet").write_bytes(
        b"PAR1 no footer"
    )

    with Spool.open(data_dir) as spool:
        assert spool.missing_blobs([a, b]) == {b}
        spool.append([snapshot_row(1, blobs=(a, b))], {a: content_a, b: content_b})
        assert roll(spool, data_dir).blobs == 1
    (data_dir / "blobs" / "date=2024-05-17" / "host=box-1" / "broken.parquet").unlink()
    assert read(data_dir, "blobs", "select blob from t order by blob") == [
        {"blob": h} for h in sorted([a, b])
    ]


CRASHING_ROLL = """
import os, signal, sys
from pathlib import Path
from snapshotter import roll as roll_module
from snapshotter.spool import Spool

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

point = sys.argv[2]
if point == "after_begin":
    roll_module._write_roll = die
elif point == "mid_write":
    roll_module.ROW_GROUP_ROWS = 1  # so the temporary holds finished row groups
    rows = Spool.iter_roll_rows
    def dying(self, *args):
        for n, item in enumerate(rows(self, *args)):
            if n == 3:
                die()
            yield item
    Spool.iter_roll_rows = dying
elif point == "before_finish":
    Spool.finish_roll = die
spool = Spool.open(Path(sys.argv[1]))
roll_module.roll(spool, Path(sys.argv[1]))
sys.exit("not killed")
"""


@pytest.mark.parametrize("point", ["after_begin", "mid_write", "before_finish"])
def test_a_killed_roll_is_redone_without_duplicates(data_dir: Path, point: str) -> None:
    a, content_a = blob(b"a")
    b, content_b = blob(b"b")
    first = [snapshot_row(i, ts=T0, blobs=(a,)) for i in range(10)]
    with Spool.open(data_dir) as spool:
        spool.append(first, {a: content_a})

    child = subprocess.run(
        [sys.executable, "-c", CRASHING_ROLL, str(data_dir), point], cwd=PROJECT, check=False
    )
    assert child.returncode == -signal.SIGKILL

    temporaries = [p.name for p in data_dir.rglob(".*.tmp")]
    assert len(temporaries) == (1 if point == "mid_write" else 0)
    written = parquet_files(data_dir)
    assert len(written) == {"after_begin": 0, "mid_write": 1, "before_finish": 2}[point]
    assert sweep_temporaries(data_dir) == len(temporaries)
    assert list(data_dir.rglob(".*.tmp")) == []

    with Spool.open(data_dir) as spool:
        assert spool.pending_rows() == 10
        [unfinished] = spool.unfinished_rolls()
        later = [snapshot_row(i, ts=T0, blobs=(a, b)) for i in range(10, 13)]
        spool.append(later, {a: content_a, b: content_b})
        result = roll(spool, data_dir)
        assert result == RollResult(snapshot_files=2, blob_files=2, rows=13, blobs=2)
        assert spool.pending_rows() == 0
        assert spool.unfinished_rolls() == []

    stems = sorted({Path(f).stem for f in parquet_files(data_dir)})
    assert stems[0] == unfinished
    assert len(parquet_files(data_dir)) == 4
    assert read(data_dir, "snapshots") == first + later
    assert read(data_dir, "blobs", "select blob from t order by blob") == [
        {"blob": h} for h in sorted([a, b])
    ]


def test_sweep_removes_only_stale_temporaries(data_dir: Path) -> None:
    partition = data_dir / "blobs" / "date=2024-05-17" / "host=box-1"
    partition.mkdir(parents=True)
    (partition / "01HX.parquet").write_bytes(b"kept")
    (partition / ".01HX.parquet.0123456789abcdef.tmp").write_bytes(b"PAR1 partial")
    (partition / ".notes.tmp").write_bytes(b"not ours")
    other = data_dir / "snapshots" / "date=2024-05-18" / "host=x"
    other.mkdir(parents=True)
    (other / ".01HY.parquet.fedcba9876543210.tmp").write_bytes(b"")
    assert sweep_temporaries(data_dir) == 2
    assert sorted(p.name for p in data_dir.rglob("*") if p.is_file()) == [
        ".notes.tmp",
        "01HX.parquet",
        "roll.lock",
    ]
    assert sweep_temporaries(data_dir) == 0


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_files_are_private_under_a_permissive_umask(data_dir: Path, permissive_umask: None) -> None:
    a, content_a = blob(b"secret")

    def modes() -> dict[str, tuple[int, bool]]:
        paths = [data_dir, *data_dir.rglob("*")]
        return {
            str(p.relative_to(data_dir)): (stat.S_IMODE(p.stat().st_mode), p.is_dir())
            for p in paths
        }

    with Spool.open(data_dir) as spool:
        spool.append([snapshot_row(0, blobs=(a,))], {a: content_a})
        roll(spool, data_dir)
        while_open = modes()
    after = modes()
    assert {"spool/spool.sqlite3-wal", "spool/spool.sqlite3-shm", "spool/roll.lock"} <= set(
        while_open
    )
    assert sum(name.endswith(".parquet") for name in after) == 2
    for name, (mode, is_dir) in [*while_open.items(), *after.items()]:
        assert mode == (0o700 if is_dir else 0o600), f"{name} is {mode:o}"


def _block_with_a_file(data_dir: Path) -> Path:
    blocker = data_dir / "snapshots"
    blocker.write_text("a file where a directory belongs")
    return blocker


@pytest.mark.parametrize(
    "make_unwritable",
    # a read-only directory would do too, but root (CI) writes into those
    [_block_with_a_file],
)
def test_an_unwritable_dataset_is_a_storage_error_and_keeps_rows_pending(
    spool: Spool, data_dir: Path, make_unwritable: Any
) -> None:
    a, content_a = blob(b"a")
    rows = [snapshot_row(i, ts=T0, blobs=(a,)) for i in range(4)]
    spool.append(rows, {a: content_a})
    blocked = make_unwritable(data_dir)

    with pytest.raises(StorageError) as info:
        roll(spool, data_dir)

    message = str(info.value)
    assert str(blocked) in message
    assert "\n" not in message
    assert spool.pending_rows() == 4
    assert list(data_dir.glob("snapshots/**/*.parquet")) == []
    assert list(data_dir.rglob(".*.tmp")) == []

    data_dir.chmod(0o700)
    if blocked.is_file():
        blocked.unlink()
    assert roll(spool, data_dir) == RollResult(snapshot_files=1, blob_files=1, rows=4, blobs=1)
    assert read(data_dir, "snapshots") == rows
    assert read(data_dir, "blobs", "select blob from t") == [{"blob": a}]


def test_a_failed_write_leaves_no_temporary_and_names_the_file(data_dir: Path) -> None:
    partition = data_dir / "blobs" / "date=2024-05-17" / "host=box-1"
    partition.mkdir(parents=True)
    final = partition / "01HX.parquet"
    final.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(StorageError, match=f"cannot write {final}: "):
        roll_module.write_parquet(
            final, BLOBS, iter([({"blob": "x", "size": 1, "content": b"x"}, 1)])
        )
    assert [p.name for p in partition.iterdir()] == ["01HX.parquet"]


def test_rolls_and_appends_from_many_threads_lose_and_duplicate_nothing(
    spool: Spool, data_dir: Path
) -> None:
    errors: list[BaseException] = []

    def append(start: int) -> None:
        try:
            for i in range(start, start + 100):
                h, content = blob(b"%d" % (i % 7))
                spool.append([snapshot_row(i, ts=T0, blobs=(h,))], {h: content})
        except BaseException as exc:
            errors.append(exc)

    def keep_rolling(stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                roll(spool, data_dir)
        except BaseException as exc:
            errors.append(exc)

    stop = threading.Event()
    appenders = [threading.Thread(target=append, args=(n * 100,)) for n in range(3)]
    rollers = [threading.Thread(target=keep_rolling, args=(stop,)) for _ in range(2)]
    for thread in appenders + rollers:
        thread.start()
    for thread in appenders:
        thread.join()
    stop.set()
    for thread in rollers:
        thread.join()
    roll(spool, data_dir)

    assert errors == []
    assert spool.pending_rows() == 0
    assert read(
        data_dir, "snapshots", "select count(*) as n, count(distinct snapshot_id) as d from t"
    ) == [{"n": 300, "d": 300}]
    assert read(data_dir, "blobs", "select count(*) as n, count(distinct blob) as d from t") == [
        {"n": 7, "d": 7}
    ]
