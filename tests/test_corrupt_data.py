"""Corrupt and foreign files in a dataset: named, skipped, and the rest mined.

Every dataset here is real Parquet written by :class:`SyntheticDataset` and read
back by DuckDB through ``miner run`` and ``miner sql``; the bad files are real
bytes on disk (a truncated copy of a real file, a zero-byte file, a file from
a newer schema, a Parquet file of another program, a text file).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from miner.cli import cli
from miner.dataset import Dataset
from miner.errors import DatasetError
from miner.synthetic import SyntheticDataset
from schemas import v1
from schemas.files import check_files
from schemas.views import SNAPSHOTS_GLOB, dataset_views

GOOD = b"def add(a, b):\n    return a + b\n"
BROKEN = b"def add(a, b)\n    return a + b\n"
FIXED = b"def add(a, b):\n    return a + b  # fixed\n"


def write_dataset(data: Path, host: str = "laptop") -> None:
    """One kept episode and one flaky one, on one day and host."""
    ds = SyntheticDataset()
    w = ds.workspace(host=host)
    w.start({"calc.py": GOOD})
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    w.snapshot("red", "SyntaxError: expected ':'\n")
    w.write("calc.py", FIXED)
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    w.snapshot("red", "SyntaxError: expected ':'\n")
    w.snapshot("green")
    ds.write(data)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    write_dataset(tmp_path / "data")
    return tmp_path / "data"


def partition(data: Path, kind: str = "snapshots") -> Path:
    return next((data / kind).glob("*/*"))


def real_file(data: Path, kind: str = "snapshots") -> Path:
    return next(partition(data, kind).glob("*.parquet"))


def future_snapshots(path: Path) -> None:
    """A snapshots file as a newer redgreen might write it: schema_version 2, a new column."""
    table = pq.read_table(real_file(path.parent.parent.parent.parent))
    table = table.set_column(
        table.schema.get_field_index("schema_version"),
        "schema_version",
        pa.array([2] * table.num_rows, pa.int16()),
    ).append_column("new_in_v2", pa.array(["x"] * table.num_rows))
    pq.write_table(table, path)


def truncated_copy(path: Path) -> None:
    whole = real_file(path.parent.parent.parent.parent).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def foreign_parquet(path: Path) -> None:
    pq.write_table(pa.table({"city": ["Oslo"], "population": [709_000]}), path)


def clashing_types(path: Path) -> None:
    # snapshot_id, schema_version and ts are there, but ts is text
    rows = {"snapshot_id": ["x"], "schema_version": pa.array([1], pa.int16()), "ts": ["today"]}
    pq.write_table(pa.table(rows), path)


# name of the bad file -> how to make it -> what the skip line says
BAD_FILES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "truncated": ("cut.parquet", truncated_copy, "truncated or corrupt Parquet file"),
    "zero-byte": ("empty.parquet", lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "future schema": (
        "v2.parquet",
        future_snapshots,
        "written by a newer redgreen (schema v2); this one reads up to v1",
    ),
    "not Parquet": ("junk.parquet", lambda p: p.write_text("hello\n" * 50), "not a Parquet file"),
    "stray text file": ("notes.txt", lambda p: p.write_text("todo\n"), "not a .parquet file"),
    "foreign Parquet": (
        "other.parquet",
        foreign_parquet,
        "not a redgreen file of this kind (no column snapshot_id, schema_version, ts)",
    ),
    "clashing types": (
        "clash.parquet",
        clashing_types,
        "column ts is string, expected timestamp[us, tz=UTC]",
    ),
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def summary_lines(result: Result) -> list[str]:
    return [line for line in result.stdout.splitlines() if not line.startswith("wrote ")]


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_run_names_a_bad_file_once_and_mines_the_rest(
    data: Path, tmp_path: Path, kind: str
) -> None:
    clean = invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "clean"))
    assert clean.exit_code == 0, clean.output
    name, make, reason = BAD_FILES[kind]
    bad = partition(data) / name
    make(bad)

    result = invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"skipped {bad}: {reason}")
    assert result.stderr.count("\n") == 1
    assert summary_lines(result) == [
        *summary_lines(clean),
        "skipped files:   1 (unreadable; named on stderr)",
    ]
    mined = pq.read_table(tmp_path / "out" / "episodes.parquet")
    assert mined.equals(pq.read_table(tmp_path / "clean" / "episodes.parquet"))


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_strict_run_fails_in_one_line_naming_the_file(
    data: Path, tmp_path: Path, kind: str
) -> None:
    name, make, reason = BAD_FILES[kind]
    bad = partition(data) / name
    make(bad)
    out = tmp_path / "out"

    result = invoke("run", "--data-dir", str(data), "--out", str(out), "--strict")

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot read {bad}: {reason}")
    assert result.output.endswith("; without --strict such files are skipped\n")
    assert result.output.count("\n") == 1
    assert not (out / "episodes.parquet").exists()


def test_a_bad_blob_file_is_skipped_and_its_fixes_are_unrebuildable(
    data: Path, tmp_path: Path
) -> None:
    blobs = real_file(data, "blobs")
    whole = blobs.read_bytes()
    blobs.write_bytes(whole[:100])

    result = invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"skipped {blobs}: truncated or corrupt Parquet file")
    assert "episodes found:  2" in result.stdout
    episodes = pq.read_table(tmp_path / "out" / "episodes.parquet").to_pylist()
    # the fix that was kept cannot be rebuilt without its blobs; nothing is kept
    assert sorted(tuple(e["filters"]) for e in episodes) == [
        ("empty_fix", "flaky"),
        ("unrebuildable",),
    ]


def test_only_bad_files_is_no_snapshots_and_says_how_many_were_skipped(
    data: Path, tmp_path: Path
) -> None:
    for path in (data / "snapshots").glob("*/*/*.parquet"):
        path.write_bytes(b"")

    result = invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "out"))

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.endswith(
        f"Error: no snapshots in {data} (looked for {SNAPSHOTS_GLOB}; "
        "1 unreadable file(s) skipped)\n"
    )


def corrupt_data_pages(path: Path) -> None:
    """Overwrite every data page of a real file, keeping its footer (which still parses)."""
    raw = bytearray(path.read_bytes())
    footer = int.from_bytes(raw[-8:-4], "little") + 8
    raw[4 : len(raw) - footer] = b"\xff" * (len(raw) - footer - 4)
    path.write_bytes(bytes(raw))
    pq.read_metadata(path)  # the cheap check cannot see it


def test_a_bad_data_page_behind_a_good_footer_is_found_when_a_query_fails(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    write_dataset(data, host="laptop")
    write_dataset(data, host="desktop")
    bad = real_file(data)  # the first partition: one host's snapshots
    corrupt_data_pages(bad)

    result = invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"skipped {bad}: corrupt Parquet data (")
    assert result.stderr.count("\n") == 1
    assert "snapshots read:  5\n" in result.stdout  # the other host's
    assert "episodes found:  2\n" in result.stdout
    assert "skipped files:   1 " in result.stdout

    strict = invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "o2"), "--strict")
    assert strict.exit_code == 1
    assert strict.output.startswith(f"Error: cannot read {bad}: corrupt Parquet data (")
    assert strict.output.count("\n") == 1


def test_sql_skips_a_bad_file_and_keeps_hive_columns(data: Path) -> None:
    bad = partition(data) / "cut.parquet"
    truncated_copy(bad)
    query = "SELECT host, typeof(host) AS t, date, count(*) AS n FROM snapshots GROUP BY ALL"

    result = invoke("sql", "--data-dir", str(data), "-c", query)

    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"skipped {bad}: {BAD_FILES['truncated'][2]}")
    assert result.stderr.count("\n") == 1
    assert "laptop | VARCHAR | 2024-05-01 | 5" in result.stdout

    strict = invoke("sql", "--data-dir", str(data), "--strict", "-c", query)
    assert strict.exit_code == 1 and strict.output.startswith(f"Error: cannot read {bad}: ")
    assert strict.output.count("\n") == 1


def test_sql_finds_a_bad_data_page_and_answers_from_the_rest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_dataset(data, host="laptop")
    write_dataset(data, host="desktop")
    bad = real_file(data)
    corrupt_data_pages(bad)

    result = invoke("sql", "--data-dir", str(data), "-c", "SELECT max(ts) FROM snapshots")

    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"skipped {bad}: corrupt Parquet data (")
    assert "(1 row)" in result.stdout


def test_a_query_mistake_is_not_blamed_on_the_files(data: Path) -> None:
    result = invoke("sql", "--data-dir", str(data), "-c", "SELECT nope FROM snapshots")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "skipped" not in result.output


def test_print_views_lists_the_good_files_and_names_the_bad(data: Path, tmp_path: Path) -> None:
    good = real_file(data)
    bad = partition(data) / "empty.parquet"
    bad.write_bytes(b"")

    result = invoke("sql", "--data-dir", str(data), "--print-views")

    assert result.exit_code == 0, result.output
    assert result.stderr == f"skipped {bad}: empty file (0 bytes)\n"
    assert f"-- skipped {bad}: empty file (0 bytes)\n" in result.stdout
    assert f"'{good}'" in result.stdout
    assert str(data / "blobs/*/*/*.parquet") in result.stdout  # nothing skipped: the glob
    con = duckdb.connect()
    con.execute(result.stdout)  # pastes into plain DuckDB
    assert con.execute("SELECT count(*), min(host) FROM snapshots").fetchone() == (5, "laptop")


def test_a_corrupt_episodes_file_leaves_the_episodes_view_empty(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("run", "--data-dir", str(data), "--out", str(out)).exit_code == 0
    episodes = out / "episodes.parquet"
    episodes.write_bytes(episodes.read_bytes()[:-20])

    result = invoke(
        "sql", "--data-dir", str(data), "--out", str(out), "-c", "SELECT count(*) FROM episodes"
    )

    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"skipped {episodes}: truncated or corrupt Parquet file"
        f" ({episodes.stat().st_size} bytes, no readable footer)\n"
    )
    assert "0" in result.stdout.splitlines()[2]


def test_writer_temporaries_are_not_reported(data: Path) -> None:
    # a roll in flight (snapshotter.roll): hidden, and not a finished file yet
    (partition(data) / ".part-9.parquet.0123456789abcdef.tmp").write_bytes(b"PAR1")
    views = dataset_views(data)
    assert views.skipped == ()


def test_a_newer_version_in_any_row_group_is_seen(tmp_path: Path) -> None:
    rows = pq.read_table(real_file(_written(tmp_path / "data"))).to_pylist()
    rows[-1]["schema_version"] = 3
    path = tmp_path / "mixed.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=v1.SNAPSHOTS), path, row_group_size=2)
    assert pq.read_metadata(path).num_row_groups == 3

    (skipped,) = check_files(tmp_path, "mixed.parquet", v1.SNAPSHOTS).skipped

    assert skipped.reason.startswith("written by a newer redgreen (schema v3)")


def test_a_version_without_statistics_is_read_from_the_column(tmp_path: Path) -> None:
    table = pq.read_table(real_file(_written(tmp_path / "data")))
    table = table.set_column(1, "schema_version", pa.array([2] * table.num_rows, pa.int16()))
    path = tmp_path / "nostats.parquet"
    pq.write_table(table, path, write_statistics=False)
    assert not pq.read_metadata(path).row_group(0).column(1).is_stats_set

    (skipped,) = check_files(tmp_path, "nostats.parquet", v1.SNAPSHOTS).skipped

    assert skipped.reason.startswith("written by a newer redgreen (schema v2)")


def test_dataset_strict_raises_and_lenient_reports(data: Path) -> None:
    bad = partition(data) / "junk.parquet"
    bad.write_text("not parquet")
    with Dataset(data) as dataset:
        assert [(s.path, s.reason) for s in dataset.skipped] == [(bad, "not a Parquet file")]
        assert dataset.snapshot_count() == 5
    with pytest.raises(DatasetError, match=r"junk\.parquet: not a Parquet file"):
        Dataset(data, strict=True)


def test_a_file_name_with_a_newline_stays_one_line(data: Path) -> None:
    bad = partition(data) / "two\nlines.parquet"
    bad.write_bytes(b"")
    (skipped,) = dataset_views(data).skipped
    assert "\n" not in str(skipped) and "two\\nlines.parquet" in str(skipped)
    con = duckdb.connect()
    con.execute(dataset_views(data).sql)  # the comment naming it stays a comment
    assert con.execute("SELECT count(*) FROM snapshots").fetchone() == (5,)


def _written(data: Path) -> Path:
    write_dataset(data)
    return data
