"""Retention on real datasets: rows spooled with past dates and rolled, real snapshots, DuckDB."""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from snapshotter.cli_setup import gc
from snapshotter.config import RetentionSettings
from snapshotter.record import Identity
from snapshotter.retention import collect, dataset_bytes, scan_partitions
from snapshotter.roll import roll
from snapshotter.snapshot import SnapshotOptions, take_snapshot
from snapshotter.spool import Spool
from tests.repos import Repo

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
D1, D2, D3, D4 = (NOW - timedelta(days=n) for n in (100, 50, 1, 0))
KIB = 1024
UNLIMITED = 1 << 50


def blob(content: bytes) -> tuple[str, bytes]:
    return hashlib.sha256(content).hexdigest(), content


def entry(
    path: str, new: str | None, base: str | None, omitted: str | None = None
) -> dict[str, Any]:
    return {
        "path": path,
        "status": "M" if new and base else ("A" if new else "R"),
        "blob": new,
        "base_blob": base,
        "size": 1,
        "omitted": omitted,
    }


def row(n: int, ts: datetime, files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "snapshot_id": f"{n:026d}",
        "schema_version": 1,
        "ts": ts,
        "host": "box-1",
        "user": "ann",
        "workspace": "/home/ann/work",
        "vcs": "git",
        "base_rev": "f" * 40,
        "branch": "main",
        "state_id": f"state-{n}",
        "files": files,
        "diff": "diff --git a/a.py b/a.py\n",
        "lines_added": 1,
        "lines_removed": 1,
        "build": None,
        "reason": "state",
    }


@dataclass(frozen=True)
class Dataset:
    """Four dates of rows; ``b`` is stored on the oldest date and referenced on every one."""

    path: Path
    a: str  # only on D1
    b: str  # base blob stored on D1, referenced by every date
    x: str  # only on D1
    c: str  # D2
    d: str  # D3
    e: str  # D4
    omitted: str  # referenced, never stored
    contents: dict[str, bytes]


def build_dataset(data_dir: Path) -> Dataset:
    big = {name: os.urandom(300 * KIB) for name in ("a", "x", "c", "d", "e")}
    hashes = {name: blob(content) for name, content in big.items()}
    b, b_content = blob(b"the base content of a.py\n" * 400)  # 10 KiB
    omitted = hashlib.sha256(b"too large").hexdigest()
    h = {name: digest for name, (digest, _content) in hashes.items()}
    c = {name: content for name, (_digest, content) in hashes.items()}
    appends: list[tuple[datetime, list[dict[str, Any]], dict[str, bytes]]] = [
        (
            D1,
            [entry("a.py", h["a"], b), entry("x.py", h["x"], None)],
            {h["a"]: c["a"], b: b_content, h["x"]: c["x"]},
        ),
        (D2, [entry("a.py", h["c"], b)], {h["c"]: c["c"], b: b_content}),
        (
            D3,
            [entry("a.py", h["d"], b), entry("big.bin", omitted, None, "too_large")],
            {h["d"]: c["d"], b: b_content},
        ),
        (D4, [entry("a.py", h["e"], b)], {h["e"]: c["e"], b: b_content}),
    ]
    with Spool.open(data_dir) as spool:
        for n, (ts, files, blobs) in enumerate(appends):
            spool.append([row(n, ts, files)], blobs)  # the spool stores each blob once
            roll(spool, data_dir)
    return Dataset(
        data_dir,
        h["a"],
        b,
        h["x"],
        h["c"],
        h["d"],
        h["e"],
        omitted,
        {**{h[name]: c[name] for name in h}, b: b_content},
    )


def dates_of(data_dir: Path, kind: str) -> list[str]:
    return sorted(p.name for p in (data_dir / kind).iterdir())


def stored_blobs(data_dir: Path) -> dict[str, bytes]:
    files = sorted(str(p) for p in (data_dir / "blobs").glob("*/*/*.parquet"))
    if not files:
        return {}
    con = duckdb.connect()
    rows = con.execute(
        f"select blob, content from read_parquet({files}, union_by_name=true,"
        " hive_partitioning=true)"
    ).fetchall()
    con.close()
    return {digest: bytes(content) for digest, content in rows}


def missing_references(data_dir: Path) -> list[str]:
    """Blobs referenced by remaining non-omitted files and absent from ``blobs``."""
    con = duckdb.connect()
    found = con.sql(
        f"""
        with f as (
          select unnest(files) as f
          from read_parquet('{data_dir}/snapshots/*/*/*.parquet',
                            union_by_name=true, hive_partitioning=true)
        ),
        refs as (
          select f.blob as h from f where f.omitted is null and f.blob is not null
          union
          select f.base_blob from f where f.omitted is null and f.base_blob is not null
        )
        select h from refs
        except
        select blob from read_parquet('{data_dir}/blobs/*/*/*.parquet',
                                      union_by_name=true, hive_partitioning=true)
        """
    ).fetchall()
    con.close()
    return sorted(h for (h,) in found)


def tree(data_dir: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(data_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(data_dir.rglob("*"))
        if p.is_file()
    }


def day(ts: datetime) -> str:
    return f"date={ts.date().isoformat()}"


@pytest.fixture
def dataset(data_dir: Path) -> Dataset:
    return build_dataset(data_dir)


def test_the_dataset_is_as_the_tests_assume(dataset: Dataset) -> None:
    assert dates_of(dataset.path, "snapshots") == [day(D1), day(D2), day(D3), day(D4)]
    assert dates_of(dataset.path, "blobs") == [day(D1), day(D2), day(D3), day(D4)]
    assert missing_references(dataset.path) == []
    assert len(stored_blobs(dataset.path)) == 6  # b once, on D1


def test_dates_older_than_the_age_limit_go_and_their_needed_blobs_stay(dataset: Dataset) -> None:
    data_dir = dataset.path
    report = collect(data_dir, RetentionSettings(UNLIMITED, max_age_days=90), now=NOW)

    assert report.dates == (D1.date(),)
    assert sorted(p.relative_to(data_dir).as_posix() for p in report.partitions) == [
        f"blobs/{day(D1)}/host=box-1",
        f"snapshots/{day(D1)}/host=box-1",
    ]
    assert dates_of(data_dir, "snapshots") == [day(D2), day(D3), day(D4)]
    assert dates_of(data_dir, "blobs") == [day(D2), day(D3), day(D4)]
    assert missing_references(data_dir) == []
    stored = stored_blobs(data_dir)
    assert dataset.b in stored and stored[dataset.b] == dataset.contents[dataset.b]
    assert dataset.a not in stored and dataset.x not in stored
    # the kept blob went into the newest partition, in a private file written whole
    copies = list((data_dir / "blobs" / day(D4) / "host=box-1").glob("gc-*.parquet"))
    assert len(copies) == 1 and stat.S_IMODE(copies[0].stat().st_mode) == 0o600
    assert not list(data_dir.rglob("*.tmp"))
    assert (report.blobs_copied, report.blobs_forgotten) == (1, 2)
    assert report.freed > 600 * KIB and not report.dry_run

    with Spool.open(data_dir) as spool:
        assert spool.missing_blobs([dataset.a, dataset.x, dataset.b]) == {dataset.a, dataset.x}


def test_a_deleted_blob_that_reappears_is_stored_again(dataset: Dataset) -> None:
    data_dir = dataset.path
    collect(data_dir, RetentionSettings(UNLIMITED, max_age_days=90), now=NOW)
    with Spool.open(data_dir) as spool:
        a = dataset.a
        spool.append([row(9, D4, [entry("a.py", a, dataset.b)])], {a: dataset.contents[a]})
        roll(spool, data_dir)
    assert stored_blobs(data_dir)[a] == dataset.contents[a]
    assert missing_references(data_dir) == []


def test_the_oldest_dates_go_until_the_budget_fits(dataset: Dataset) -> None:
    data_dir = dataset.path
    total = dataset_bytes(data_dir)
    size = {d: 0 for d in (D1.date(), D2.date(), D3.date(), D4.date())}
    for part in scan_partitions(data_dir):
        size[part.date] += part.size
    spool = total - sum(size.values())
    # room for D3, D4, the spool and the copy of b (10 KiB): D1 and D2 must go
    budget = spool + size[D3.date()] + size[D4.date()] + 50 * KIB

    report = collect(data_dir, RetentionSettings(budget, max_age_days=365), now=NOW)

    assert report.dates == (D1.date(), D2.date())
    assert dates_of(data_dir, "snapshots") == [day(D3), day(D4)]
    assert dataset_bytes(data_dir) <= budget
    assert report.bytes_after == dataset_bytes(data_dir) and report.bytes_before == total
    assert missing_references(data_dir) == []
    assert dataset.b in stored_blobs(data_dir)


def test_the_newest_date_always_stays(dataset: Dataset) -> None:
    data_dir = dataset.path
    report = collect(
        data_dir, RetentionSettings(max_bytes=1, max_age_days=1), now=NOW + timedelta(days=30)
    )
    assert report.dates == (D1.date(), D2.date(), D3.date())
    assert dates_of(data_dir, "snapshots") == [day(D4)]
    assert dates_of(data_dir, "blobs") == [day(D4)]
    assert missing_references(data_dir) == []
    assert set(stored_blobs(data_dir)) == {dataset.b, dataset.e}
    again = collect(data_dir, RetentionSettings(max_bytes=1, max_age_days=1), now=NOW)
    assert again.dates == () and dates_of(data_dir, "snapshots") == [day(D4)]


def test_a_dry_run_deletes_nothing_and_says_what_would_go(dataset: Dataset) -> None:
    data_dir = dataset.path
    before = tree(data_dir)
    report = collect(
        data_dir, RetentionSettings(max_bytes=1, max_age_days=90), now=NOW, dry_run=True
    )
    assert report.dry_run
    assert report.dates == (D1.date(), D2.date(), D3.date())
    assert len(report.partitions) == 6
    assert report.bytes_after < report.bytes_before
    assert tree(data_dir) == before
    with Spool.open(data_dir) as spool:
        assert spool.missing_blobs([dataset.a, dataset.b]) == set()  # nothing forgotten


def test_within_limits_nothing_is_deleted(dataset: Dataset) -> None:
    before = tree(dataset.path)
    report = collect(dataset.path, RetentionSettings(UNLIMITED, max_age_days=365), now=NOW)
    assert report.dates == () and report.partitions == ()
    assert {k: v for k, v in tree(dataset.path).items() if not k.startswith("spool/")} == {
        k: v for k, v in before.items() if not k.startswith("spool/")
    }


def test_an_empty_or_missing_data_dir_is_fine(tmp_path: Path) -> None:
    missing = tmp_path / "nothing"
    report = collect(missing, RetentionSettings(), now=NOW)
    assert report.dates == () and report.bytes_before == 0
    assert not missing.exists()


def test_a_blob_held_by_a_remaining_partition_is_not_copied(data_dir: Path) -> None:
    b, content = blob(b"shared\n")
    new, new_content = blob(b"new\n")
    with Spool.open(data_dir) as spool:
        spool.append([row(0, D1, [entry("a.py", b, None)])], {b: content})
        roll(spool, data_dir)
        spool.forget_blobs([b])  # as after an earlier gc: stored again on D4
        spool.append([row(1, D4, [entry("a.py", new, b)])], {b: content, new: new_content})
        roll(spool, data_dir)
    report = collect(data_dir, RetentionSettings(UNLIMITED, 90), now=NOW)
    assert report.dates == (D1.date(),)
    assert report.blobs_copied == 0
    assert missing_references(data_dir) == []
    with Spool.open(data_dir) as spool:
        assert spool.missing_blobs([b]) == set()  # still stored (on D4)


def test_rows_still_in_the_spool_keep_their_blobs(data_dir: Path) -> None:
    """A row spooled before gc, not yet rolled, relies on an old blob being stored."""
    old, old_content = blob(b"old base\n")
    with Spool.open(data_dir) as spool:
        spool.append([row(0, D1, [entry("a.py", old, None)])], {old: old_content})
        spool.append([row(1, D3, [entry("b.py", None, None)])], {})
        roll(spool, data_dir)
        # spooled, not rolled: the spool skips ``old``, which it believes stored
        spool.append([row(2, D4, [entry("a.py", None, old)])], {old: old_content})
        assert spool.pending_rows() == 1
    report = collect(data_dir, RetentionSettings(UNLIMITED, 90), now=NOW)
    assert report.dates == (D1.date(),)
    assert missing_references(data_dir) == []
    assert old in stored_blobs(data_dir)


def test_gc_waits_for_a_roll_in_progress(dataset: Dataset) -> None:
    lock_path = dataset.path / "spool" / "roll.lock"
    fd = os.open(lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as roll.py does while it writes
    reports: list[Any] = []
    worker = threading.Thread(
        target=lambda: reports.append(
            collect(dataset.path, RetentionSettings(UNLIMITED, 90), now=NOW)
        )
    )
    try:
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive() and not reports
        assert (dataset.path / "snapshots" / day(D1)).exists()
    finally:
        os.close(fd)
        worker.join(timeout=30)
    assert reports and reports[0].dates == (D1.date(),)


def test_real_snapshots_across_a_deleted_day_stay_rebuildable(repo: Repo, data_dir: Path) -> None:
    """Real hg/git snapshots; the first day's partitions are renamed to an old date."""
    repo.write("calc.py", "def add(a, b):\n    return a + b\n")
    repo.commit("base")
    me = Identity(host="test-host", user="tester")
    repo.write("calc.py", "def add(a, b):\n    return a - b\n")
    take_snapshot(repo.path, data_dir, SnapshotOptions(), me)
    today = next((data_dir / "snapshots").iterdir()).name
    old = f"date={(datetime.now(UTC) - timedelta(days=200)).date().isoformat()}"
    for kind in ("snapshots", "blobs"):
        (data_dir / kind / today).rename(data_dir / kind / old)
    repo.write(
        "calc.py", "def add(a, b):\n    return b + a\n"
    )  # same base: its blob is not stored again
    take_snapshot(repo.path, data_dir, SnapshotOptions(), me)
    base = hashlib.sha256(b"def add(a, b):\n    return a + b\n").hexdigest()
    assert base not in stored_blobs(data_dir).keys() - {
        digest
        for p in (data_dir / "blobs" / old).rglob("*.parquet")
        for (digest,) in duckdb.connect().execute(f"select blob from '{p}'").fetchall()
    }

    report = collect(data_dir, RetentionSettings())
    assert [f"date={d.isoformat()}" for d in report.dates] == [old]
    assert dates_of(data_dir, "snapshots") == [today]
    assert missing_references(data_dir) == []
    assert stored_blobs(data_dir)[base] == b"def add(a, b):\n    return a + b\n"


# -- the command ---------------------------------------------------------------------------


def test_the_gc_command_uses_the_configs_retention(dataset: Dataset, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[retention]\nmax_bytes = "1KiB"\nmax_age_days = 3650\n')
    args = ["--config", str(config), "--data-dir", str(dataset.path)]

    dry = CliRunner().invoke(gc, [*args, "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert f"would delete 3 day(s): {D1.date()}, {D2.date()}, {D3.date()}" in dry.output
    assert "(estimated) of a 1.0 KiB budget, keeping 3650 days" in dry.output
    assert dates_of(dataset.path, "snapshots") == [day(D1), day(D2), day(D3), day(D4)]

    real = CliRunner().invoke(gc, args, catch_exceptions=False)
    assert real.exit_code == 0, real.output
    assert "deleted 3 day(s)" in real.output and "deleted 6 partition(s), freeing" in real.output
    assert "kept 1 blob(s) still referenced by newer snapshots" in real.output
    assert dates_of(dataset.path, "snapshots") == [day(D4)]

    again = CliRunner().invoke(gc, args, catch_exceptions=False)
    assert "nothing to delete" in again.output


def test_the_gc_command_defaults_to_the_configs_data_dir(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDGREEN_DATA_DIR", str(dataset.path))
    result = CliRunner().invoke(gc, ["--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # every test date is long past: all but the newest would go
    assert f"would delete 3 day(s): {D1.date()}, {D2.date()}, {D3.date()}" in result.output
    assert dates_of(dataset.path, "snapshots") == [day(D1), day(D2), day(D3), day(D4)]


def test_the_gc_command_reports_a_broken_config_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[retention]\nmax_bytes = 'lots'\n")
    result = CliRunner().invoke(gc, ["--config", str(config)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "retention.max_bytes" in result.output
    assert len(result.output.strip().splitlines()) == 1
