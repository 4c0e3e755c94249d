"""Split, train.jsonl, atomic and deterministic writing of the miner's results."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from miner import pipeline
from miner.errors import OutputError
from miner.output import TRAIN_FILE, prepare_out_dir
from miner.record import Episode, episode_id
from miner.settings import MinerSettings
from miner.split import assign_splits
from miner.synthetic import SyntheticDataset

T = datetime(2024, 5, 1, tzinfo=UTC)
GOOD = b"def add(a, b):\n    return a + b\n"
BROKEN = b"def add(a, b)\n    return a + b\n"


def stub(n: int, host: str, kept: bool = True, minutes: int | None = None) -> Episode:
    return Episode(
        episode_id=episode_id(f"r{host}{n}", "g"),
        host=host,
        user=None,
        workspace="/w",
        vcs="git",
        green_before_id="g0",
        first_red_id="r",
        red_id=f"r{n}",
        green_id="g",
        red_started_at=T,
        red_ended_at=T + timedelta(minutes=n if minutes is None else minutes),
        red_seconds=0.0,
        red_snapshots=1,
        error=None,
        diagnostics=(),
        error_fingerprint=None,
        fix_diff="",
        fix_lines=1,
        fix_files=1,
        break_diff="",
        context=(),
        filters=() if kept else ("flaky",),
        kept=kept,
    )


def test_latest_tenth_of_each_host_goes_to_test() -> None:
    episodes = [stub(n, "a") for n in range(20)] + [stub(n, "b") for n in range(9)]
    episodes.append(stub(99, "a", kept=False))
    split = assign_splits(list(reversed(episodes)), 0.1)
    by_id = {e.episode_id: e.split for e in split}
    assert [by_id[e.episode_id] for e in episodes[:20]] == ["train"] * 18 + ["test"] * 2
    assert [by_id[e.episode_id] for e in episodes[20:29]] == ["train"] * 9  # floor(0.9) = 0
    assert by_id[episodes[-1].episode_id] is None
    # the input order is kept
    assert [e.episode_id for e in split] == [e.episode_id for e in reversed(episodes)]


def test_split_fraction_is_configurable_and_ties_break_by_id() -> None:
    episodes = [stub(n, "a", minutes=0) for n in range(10)]
    split = assign_splits(episodes, 0.3)
    tests = sorted(e.episode_id for e in split if e.split == "test")
    assert tests == sorted(e.episode_id for e in episodes)[-3:]


def dataset(episodes: int) -> SyntheticDataset:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD, "notes.md": b"``` fence\n"})
    w.snapshot("green")
    for n in range(episodes):
        w.write("calc.py", BROKEN)
        w.write("notes.md", b"``` fence %d\n" % n)
        w.snapshot("red", "SyntaxError: expected ':'\n", exit_code=1)
        # fixes of different shapes: the same fix again would be a near-duplicate
        w.write("calc.py", GOOD + b"#" * (n + 1) + b"\n")
        w.write("notes.md", b"``` fence %d, fixed\n" % n)
        w.snapshot("green")
    return ds


def test_pipeline_splits_by_time(tmp_path: Path) -> None:
    dataset(4).write(tmp_path / "data")
    summary = pipeline.run(
        tmp_path / "data", tmp_path / "out", settings=MinerSettings(test_fraction=0.5)
    )
    assert (summary.episodes, summary.kept, summary.train, summary.test) == (4, 4, 2, 2)
    rows = duckdb.sql(
        f"SELECT split FROM '{tmp_path / 'out' / 'episodes.parquet'}' ORDER BY red_ended_at"
    ).fetchall()
    assert rows == [("train",), ("train",), ("test",), ("test",)]


def test_same_input_gives_identical_bytes(tmp_path: Path) -> None:
    dataset(3).write(tmp_path / "data")
    pipeline.run(tmp_path / "data", tmp_path / "one")
    pipeline.run(tmp_path / "data", tmp_path / "two")
    for name in ("episodes.parquet", TRAIN_FILE):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    before = (tmp_path / "one" / "episodes.parquet").read_bytes()
    pipeline.run(tmp_path / "data", tmp_path / "one")  # over its own output
    assert (tmp_path / "one" / "episodes.parquet").read_bytes() == before


def test_train_jsonl_has_the_chat_shape(tmp_path: Path) -> None:
    ds = dataset(1)
    w = ds.workspace("/other")  # a second stream whose only episode is filtered out
    w.start({"x.py": GOOD})
    w.snapshot("green")
    w.write("x.py", BROKEN)
    w.snapshot("red", "Killed\n")
    w.write("x.py", GOOD + b"#\n")
    w.snapshot("green")
    ds.write(tmp_path / "data")
    pipeline.run(tmp_path / "data", tmp_path / "out")
    lines = (tmp_path / "out" / TRAIN_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1  # kept episodes only
    record = json.loads(lines[0])
    assert set(record) == {"messages", "metadata"}
    system, user, assistant = record["messages"]
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
    assert "unified diff" in system["content"]
    assert user["content"].startswith("File calc.py:\n```\ndef add(a, b)\n")
    # a file holding a fence is quoted with a longer one
    assert "File notes.md:\n````\n``` fence 0\n````" in user["content"]
    assert "Build output:\n```\nSyntaxError: expected ':'\n```" in user["content"]
    assert user["content"].endswith("\n\nFix the syntax error in calc.py and notes.md")
    assert assistant["content"].startswith("diff --git a/calc.py b/calc.py\n")
    meta = record["metadata"]
    [(kept_id, fix_diff)] = (
        duckdb.connect()
        .execute(
            "SELECT episode_id, fix_diff FROM read_parquet(?) WHERE kept",
            [str(tmp_path / "out" / "episodes.parquet")],
        )
        .fetchall()
    )
    assert meta["episode_id"] == kept_id
    assert assistant["content"] == fix_diff
    assert meta["split"] == "train"
    assert meta["host"] == "laptop" and meta["workspace"] == "/home/dev/proj"
    assert meta["describer"] == "offline"


def test_episodes_file_matches_the_schema(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from schemas.v1 import EPISODES

    dataset(1).write(tmp_path / "data")
    pipeline.run(tmp_path / "data", tmp_path / "out")
    assert pq.read_schema(tmp_path / "out" / "episodes.parquet").equals(EPISODES)


def test_no_temporary_is_left_and_stale_ones_are_swept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".tmp-123-episodes.parquet").write_bytes(b"half a file")
    dataset(1).write(tmp_path / "data")
    pipeline.run(tmp_path / "data", out)
    assert sorted(p.name for p in out.iterdir()) == ["episodes.parquet", "train.jsonl"]


def test_output_directory_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a directory")
    with pytest.raises(OutputError, match="cannot create output directory"):
        prepare_out_dir(tmp_path / "out")


def test_no_episode_still_writes_both_files(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    ds.workspace().start({"a.py": GOOD})
    ds.workspace().snapshot("green")
    ds.write(tmp_path / "data")
    summary = pipeline.run(tmp_path / "data", tmp_path / "out")
    assert (summary.snapshots, summary.streams, summary.episodes) == (1, 1, 0)
    assert (tmp_path / "out" / TRAIN_FILE).read_bytes() == b""
    count = duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'out' / 'episodes.parquet'}'")
    assert count.fetchall() == [(0,)]


def test_episode_record_round_trip(tmp_path: Path) -> None:
    dataset(1).write(tmp_path / "data")
    pipeline.run(tmp_path / "data", tmp_path / "out")
    con = duckdb.connect()
    row = con.execute(
        "SELECT episode_id, red_id, green_id FROM read_parquet(?)",
        [str(tmp_path / "out" / "episodes.parquet")],
    ).fetchone()
    assert row is not None and row[0] == episode_id(row[1], row[2])
    assert replace(stub(1, "a"), split="x").to_row()["split"] == "x"
