"""``snapshotter snapshot`` end to end: real repositories and builds, Parquet read by DuckDB."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from snapshotter.build import BuildLimits
from snapshotter.capture import compute_state_id
from snapshotter.record import Identity
from snapshotter.snapshot import SnapshotOptions, SnapshotReport, take_snapshot
from tests.repos import Repo

PY = shlex.quote(sys.executable)
PY_BUILD = f"{PY} -m py_compile *.py"
ME = Identity(host="test-host", user="tester")


@pytest.fixture
def repo(repo: Repo) -> Repo:
    """Like a real project, the build's own outputs are ignored."""
    repo.ignore("__pycache__")
    return repo


def take(repo: Repo, data_dir: Path, build: str | None = PY_BUILD, **kw: Any) -> SnapshotReport:
    return take_snapshot(repo.path, data_dir, SnapshotOptions(build_command=build, **kw), ME)


def rows(data_dir: Path, where: str = "true") -> list[dict[str, Any]]:
    con = duckdb.connect()
    rel = con.sql(
        f"""select * from read_parquet('{data_dir}/snapshots/**/*.parquet',
                union_by_name=true, hive_partitioning=true)
            where {where} order by ts, snapshot_id"""
    )
    names = rel.columns
    return [dict(zip(names, values, strict=True)) for values in rel.fetchall()]


def blob_ids(data_dir: Path) -> list[str]:
    return [
        r[0]
        for r in duckdb.sql(
            f"select blob from read_parquet('{data_dir}/blobs/**/*.parquet', "
            "union_by_name=true, hive_partitioning=true)"
        ).fetchall()
    ]


def test_green_then_red_recorded_with_their_states(repo: Repo, data_dir: Path) -> None:
    repo.write("calc.py", "def add(a, b):\n    return a + b\n")
    repo.commit("calc")
    assert take(repo, data_dir).build_status == "green"
    repo.write("calc.py", "def add(a, b)\n    return a + b\n")
    report = take(repo, data_dir)
    assert report.build_status == "red" and report.files_changed == 1

    recorded = rows(data_dir)
    assert [r["build"]["status"] for r in recorded] == ["green", "red"]
    for r in recorded:
        assert r["schema_version"] == 1 and r["vcs"] == repo.kind
        assert r["host"] == "test-host" and r["user"] == "tester"
        assert r["workspace"] == str(repo.path.resolve())
        assert r["build"]["state_id"] == r["state_id"]  # each result belongs to its state
        assert r["date"] is not None  # hive partition column
    red = recorded[1]
    assert red["files"][0]["path"] == "calc.py" and red["files"][0]["status"] == "M"
    assert red["lines_added"] == 1 and red["lines_removed"] == 1
    assert "-def add(a, b):\n+def add(a, b)\n" in red["diff"]
    assert "SyntaxError" in red["build"]["output"]
    assert red["build"]["diagnostics"][0]["file"] == "calc.py"
    assert red["build"]["diagnostics"][0]["line"] == 1
    assert red["build"]["started_at"] <= red["build"]["finished_at"]
    # both sides of the changed file can be rebuilt from the dataset alone
    stored = set(blob_ids(data_dir))
    assert {red["files"][0]["blob"], red["files"][0]["base_blob"]} <= stored


def test_unchanged_state_and_result_add_nothing(repo: Repo, data_dir: Path) -> None:
    repo.write("a.py", "A = 1\n")
    repo.commit()
    repo.write("a.py", "A = 2\n")
    assert take(repo, data_dir).rows_recorded == 1
    assert take(repo, data_dir).rows_recorded == 0
    assert take(repo, data_dir, build=None).rows_recorded == 0
    files = list((data_dir / "snapshots").rglob("*.parquet"))
    assert len(rows(data_dir)) == 1
    repo.write("a.py", "A = 3\n")
    assert take(repo, data_dir).rows_recorded == 1
    assert len(list((data_dir / "snapshots").rglob("*.parquet"))) == len(files) + 1


def test_blobs_are_stored_once(repo: Repo, data_dir: Path) -> None:
    repo.write("a.py", "A = 1\n")
    repo.commit()
    repo.write("a.py", "A = 2\n")
    take(repo, data_dir)
    repo.write("b.py", "B = 1\n")  # a.py unchanged: its blobs are not written again
    take(repo, data_dir)
    ids = blob_ids(data_dir)
    assert len(ids) == len(set(ids)) == 3


def test_stale_when_the_build_changes_the_workspace(repo: Repo, data_dir: Path) -> None:
    repo.write("a.py", "A = 1\n")
    repo.commit()
    report = take(repo, data_dir, build="echo 'B = 2' > b.py")
    assert report.build_status == "stale"
    recorded = rows(data_dir)
    assert len(recorded) == 2  # the state built, then the state the build left behind
    built, after = recorded
    assert built["build"]["status"] == "stale" and built["build"]["state_id"] == built["state_id"]
    assert after["build"]["state_id"] == built["state_id"] != after["state_id"]
    assert [f["path"] for f in after["files"]] == ["b.py"]


def test_timeout_kills_the_build(repo: Repo, data_dir: Path) -> None:
    repo.write("a.py", "A = 1\n")
    report = take(repo, data_dir, build="sleep 30", build_limits=BuildLimits(timeout_s=1))
    assert report.build_status == "timeout"
    (row,) = rows(data_dir)
    assert row["build"]["exit_code"] is None


def test_command_that_cannot_run_is_an_error_not_a_crash(repo: Repo, data_dir: Path) -> None:
    repo.write("a.py", "A = 1\n")
    report = take(repo, data_dir, build="no-such-build-tool --all")
    assert report.build_status == "error"
    (row,) = rows(data_dir)
    assert "no-such-build-tool" in row["build"]["output"]


def test_commit_records_a_base_row_for_rebuilding(repo: Repo, data_dir: Path) -> None:
    repo.write("a.py", "A = 1\n")
    first = repo.commit("first")
    repo.write("a.py", "A = (\n")
    assert take(repo, data_dir).build_status == "red"
    repo.write("a.py", "A = 2\n")
    second = repo.commit("fix and commit")
    assert take(repo, data_dir).build_status == "green"
    red, base, green = rows(data_dir)
    assert (red["base_rev"], base["base_rev"], green["base_rev"]) == (first, second, second)
    assert base["reason"] == "base" and base["build"] is None
    (moved,) = base["files"]
    assert moved["path"] == "a.py" and moved["status"] == "M"
    assert moved["blob"] == green_content_hash("A = 2\n")
    assert moved["base_blob"] == green_content_hash("A = 1\n")
    assert green["files"] == [] and green["state_id"] == compute_state_id(second, ())
    assert {moved["blob"], moved["base_blob"]} <= set(blob_ids(data_dir))


def green_content_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def test_data_is_private(repo: Repo, data_dir: Path) -> None:
    old = os.umask(0)
    try:
        repo.write("a.py", "A = 1\n")
        take(repo, data_dir)
    finally:
        os.umask(old)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for path in data_dir.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_cli_snapshot_then_visible(repo: Repo, data_dir: Path) -> None:
    repo.write("a.py", "A = (\n")
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "snapshotter"),
            "snapshot",
            "--workspace",
            str(repo.path),
            "--data-dir",
            str(data_dir),
            "--build-cmd",
            PY_BUILD,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "build red" in done.stdout and "1 row(s) recorded" in done.stdout
    assert rows(data_dir)[0]["build"]["status"] == "red"


def test_cli_reports_a_missing_workspace_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "snapshotter"),
            "snapshot",
            "--workspace",
            str(tmp_path / "nope"),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: workspace {tmp_path / 'nope'} does not exist or cannot be read"
    ]


@pytest.mark.parametrize("kind", ["hg", "git"])
def test_gcc_build(kind: str, tmp_path: Path) -> None:
    repo = Repo(kind, tmp_path / "c")
    repo.ignore("__pycache__")
    repo.write("main.c", "int main(void) { return 0; }\n")
    repo.commit()
    repo.write("main.c", "int main(void) { return undefined_thing; }\n")
    report = take(repo, tmp_path / "data", build="gcc -fsyntax-only main.c")
    assert report.build_status == "red"
    (row,) = rows(tmp_path / "data")
    diag = row["build"]["diagnostics"][0]
    assert (diag["file"], diag["line"], diag["severity"]) == ("main.c", 1, "error")
    assert "undefined_thing" in diag["message"]
