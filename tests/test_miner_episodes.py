"""Episode detection and rebuilding on real Parquet datasets, read back with DuckDB."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from miner import pipeline
from miner.dataset import Dataset
from miner.episodes import detect
from miner.synthetic import SyntheticDataset, Workspace

GOOD = b"def add(a, b):\n    return a + b\n"
BROKEN = b"def add(a, b)\n    return a + b\n"
TRIED = b"def add(a, b) :\n    return a + b\n"
FIXED = b"def add(a, b):\n    return a + b  # fixed\n"
SYNTAX = """\
  File "calc.py", line 1
    def add(a, b)
                 ^
SyntaxError: expected ':'
"""


def mine(tmp_path: Path, dataset: SyntheticDataset, **write: Any) -> list[dict[str, Any]]:
    data, out = tmp_path / "data", tmp_path / "out"
    dataset.write(data, **write)
    pipeline.run(data, out)
    con = duckdb.connect()
    cursor = con.execute(
        "SELECT * FROM read_parquet(?) ORDER BY red_ended_at", [str(out / "episodes.parquet")]
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def apply_fix(tmp_path: Path, red_tree: Mapping[str, bytes], diff: str) -> dict[str, bytes]:
    """Materialise the red tree, check and apply the diff with git apply, read the result."""
    root = tmp_path / "applied"
    root.mkdir()
    for path, content in red_tree.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)
    patch = tmp_path / "fix.diff"
    patch.write_text(diff, encoding="utf-8")
    subprocess.run(["git", "apply", "--check", str(patch)], cwd=root, check=True)
    subprocess.run(["git", "apply", str(patch)], cwd=root, check=True)
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def green_red_green(w: Workspace) -> tuple[str, str, str]:
    w.start({"calc.py": GOOD})
    g0 = w.snapshot("green")
    w.write("calc.py", BROKEN)
    red = w.snapshot("red", SYNTAX)
    w.write("calc.py", FIXED)
    g1 = w.snapshot("green")
    return g0, red, g1


def test_one_episode_fix_diff_applies_to_red_and_gives_green(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD, "lib/util.py": b"X = 1\n", "old notes.txt": b"remove me\n"})
    g0 = w.snapshot("green")
    w.write("calc.py", BROKEN)
    w.write("lib/util.py", b"X = 1\nY = \n")
    red = w.snapshot("red", SYNTAX)
    red_tree = dict(w.work)
    w.write("calc.py", FIXED)
    w.write("lib/util.py", b"X = 1\nY = 2\n")
    w.write("lib/new module.py", b"Z = 3")
    w.remove("old notes.txt")
    g1 = w.snapshot("green")
    green_tree = dict(w.work)

    [episode] = mine(tmp_path, ds)
    assert (episode["green_before_id"], episode["first_red_id"]) == (g0, red)
    assert (episode["red_id"], episode["green_id"]) == (red, g1)
    assert apply_fix(tmp_path, red_tree, episode["fix_diff"]) == green_tree
    assert episode["fix_files"] == 4
    assert episode["fix_lines"] == 4 + 2 + 1 + 1  # calc.py, util.py, new, removed
    assert episode["error"] == SYNTAX
    assert episode["kept"] and episode["filters"] == []
    assert episode["break_diff"].startswith("diff --git a/calc.py b/calc.py\n")
    assert "+Y = \n" in episode["break_diff"]
    # context: files the fix touches as they were at red, text only, not absent ones
    assert [c["path"] for c in episode["context"]] == ["calc.py", "lib/util.py", "old notes.txt"]
    assert episode["context"][0]["content"] == BROKEN.decode()
    assert episode["red_snapshots"] == 1
    assert episode["red_seconds"] == 20.0  # one snapshot interval from red to green
    assert episode["vcs"] == "git" and episode["user"] == "dev"


def test_commit_between_red_and_green_gives_the_exact_fix(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace(vcs="hg")
    w.start({"calc.py": GOOD, "README": b"calc\n"}, base_rev="1" * 40)
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    w.write("README", b"calc, now better\n")
    w.snapshot("red", SYNTAX)
    red_tree = dict(w.work)
    # the developer fixes calc.py and commits everything before the next snapshot
    w.write("calc.py", FIXED)
    w.commit("2" * 40)
    w.snapshot("green")
    green_tree = dict(w.work)

    [episode] = mine(tmp_path, ds)
    assert episode["fix_diff"] == (
        "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n"
        "-def add(a, b)\n-    return a + b\n+def add(a, b):\n+    return a + b  # fixed\n"
    )
    assert apply_fix(tmp_path, red_tree, episode["fix_diff"]) == green_tree
    assert episode["kept"]


def test_commit_then_more_edits_then_green(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD, "b.py": b"b = 1\n"})
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    w.snapshot("red", SYNTAX)
    red_tree = dict(w.work)
    w.commit("c" * 40)  # the broken text is committed
    w.write("b.py", b"b = 2\n")
    w.commit("d" * 40)
    w.write("calc.py", FIXED)
    w.snapshot("green")
    green_tree = dict(w.work)
    [episode] = mine(tmp_path, ds)
    assert episode["fix_files"] == 2
    assert apply_fix(tmp_path, red_tree, episode["fix_diff"]) == green_tree


def test_two_episodes_in_one_stream(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    g0, red1, g1 = green_red_green(w)
    w.write("calc.py", BROKEN)
    red2 = w.snapshot("red", SYNTAX)
    w.write("calc.py", GOOD)
    g2 = w.snapshot("green")
    first, second = mine(tmp_path, ds)
    assert (first["green_before_id"], first["red_id"], first["green_id"]) == (g0, red1, g1)
    assert (second["green_before_id"], second["red_id"], second["green_id"]) == (g1, red2, g2)
    assert first["episode_id"] != second["episode_id"]


def test_stream_starting_red_has_no_episode_for_that_run(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": BROKEN})
    w.snapshot("red", SYNTAX)
    w.write("calc.py", GOOD)
    g = w.snapshot("green")
    w.write("calc.py", BROKEN)
    red = w.snapshot("red", SYNTAX)
    w.write("calc.py", FIXED)
    g1 = w.snapshot("green")
    [episode] = mine(tmp_path, ds)
    assert (episode["green_before_id"], episode["red_id"], episode["green_id"]) == (g, red, g1)


def test_red_at_the_end_of_a_stream_has_no_episode(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD})
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    w.snapshot("red", SYNTAX)
    ds.write(tmp_path / "data")
    with Dataset(tmp_path / "data") as dataset:
        assert detect(dataset.con) == []


def test_red_red_green_repairs_the_last_red(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD})
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    first_red = w.snapshot("red", SYNTAX)
    w.write("calc.py", TRIED)
    last_red = w.snapshot("red", "SyntaxError: still broken\n")
    w.write("calc.py", FIXED)
    g1 = w.snapshot("green")
    [episode] = mine(tmp_path, ds)
    assert episode["first_red_id"] == first_red
    assert episode["red_id"] == last_red
    assert episode["green_id"] == g1
    assert episode["red_snapshots"] == 2
    assert episode["error"] == "SyntaxError: still broken\n"
    assert "-def add(a, b) :\n" in episode["fix_diff"]  # from the last red, not the first
    assert "+def add(a, b)\n" in episode["break_diff"]  # to the first red
    times = {row["snapshot_id"]: row["ts"] for row in ds.rows}
    assert episode["red_started_at"] == times[first_red]
    assert episode["red_ended_at"] == times[g1]
    assert episode["red_seconds"] == 40.0


def test_unusable_build_results_are_ignored(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD})
    g0 = w.snapshot("green")
    w.write("calc.py", BROKEN)
    w.snapshot("unknown")
    red = w.snapshot("red", SYNTAX)
    w.write("calc.py", TRIED)
    w.snapshot("stale")  # files changed while it ran: says nothing
    w.snapshot("timeout")
    w.snapshot("error", "sh: make: not found")
    w.snapshot(None)  # a heartbeat with no build at all
    # a green computed on another state, repeated on this row: not this row's result
    w.snapshot("green", build_state_id="0" * 64)
    w.write("calc.py", FIXED)
    g1 = w.snapshot("green")
    [episode] = mine(tmp_path, ds)
    assert (episode["green_before_id"], episode["first_red_id"]) == (g0, red)
    assert (episode["red_id"], episode["green_id"], episode["red_snapshots"]) == (red, g1, 1)


def test_rows_sharing_one_state_count_as_usable_rows(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD})
    w.snapshot("green")
    g0 = w.snapshot("green", reason="heartbeat")
    w.write("calc.py", BROKEN)
    red = w.snapshot("red", SYNTAX)
    red_again = w.snapshot("red", SYNTAX, reason="heartbeat")
    w.write("calc.py", FIXED)
    g1 = w.snapshot("green")
    w.snapshot("green", reason="heartbeat")
    [episode] = mine(tmp_path, ds)
    assert (episode["green_before_id"], episode["first_red_id"]) == (g0, red)
    assert (episode["red_id"], episode["green_id"], episode["red_snapshots"]) == (red_again, g1, 2)


def test_base_rows_never_count_as_builds(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD})
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    red = w.snapshot("red", SYNTAX)
    w.commit("e" * 40)
    # a base row that (wrongly) carries a green build of its own state_id
    ds.rows[-1]["build"] = {"status": "green", "state_id": ds.rows[-1]["state_id"]}
    w.write("calc.py", FIXED)
    g1 = w.snapshot("green")
    [episode] = mine(tmp_path, ds)
    assert (episode["red_id"], episode["green_id"]) == (red, g1)


def test_equal_timestamps_are_ordered_by_snapshot_id(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD})
    when = ds.tick()
    g0 = w.snapshot("green", ts=when)
    w.write("calc.py", BROKEN)
    red = w.snapshot("red", SYNTAX, ts=when)
    w.write("calc.py", FIXED)
    g1 = w.snapshot("green", ts=when)
    assert g0 < red < g1
    [episode] = mine(tmp_path, ds)
    assert (episode["green_before_id"], episode["red_id"], episode["green_id"]) == (g0, red, g1)
    assert episode["red_seconds"] == 0.0


def test_streams_are_separate_per_host_and_workspace(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    one = ds.workspace("/src/one", host="laptop")
    two = ds.workspace("/src/two", host="laptop")
    far = ds.workspace("/src/one", host="desktop")
    for w in (one, two, far):
        w.start({"calc.py": GOOD})
    # interleaved in time: one green, two red, far red, one red, two green, one green ...
    one.snapshot("green")
    two.snapshot("green")
    far.snapshot("green")
    two.write("calc.py", BROKEN)
    two.snapshot("red", SYNTAX)
    one.write("calc.py", BROKEN)
    one.snapshot("red", SYNTAX)
    far.write("calc.py", BROKEN)
    far.snapshot("red", SYNTAX)
    two.write("calc.py", FIXED)
    two.snapshot("green")
    far.write("calc.py", GOOD)  # far's fix is the plain revert of its break
    far.snapshot("green")
    episodes = mine(tmp_path, ds)
    assert sorted((e["host"], e["workspace"]) for e in episodes) == [
        ("desktop", "/src/one"),
        ("laptop", "/src/two"),
    ]


def test_blobs_may_live_in_another_partition(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    green_red_green(ds.workspace())
    [episode] = mine(tmp_path, ds, blob_partition=("2024-04-30", "other-host"))
    assert episode["fix_lines"] == 4 and episode["kept"]


@pytest.mark.parametrize("days", [1, 2])
def test_streams_span_date_partitions(tmp_path: Path, days: int) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD})
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    w.snapshot("red", SYNTAX)
    ds.tick(timedelta(days=days))  # the fix lands on another day
    w.write("calc.py", FIXED)
    w.snapshot("green")
    [episode] = mine(tmp_path, ds)
    assert episode["red_seconds"] == days * 86400 + 20
    assert len(list((tmp_path / "data" / "snapshots").iterdir())) == 2


def test_a_row_stored_twice_counts_once(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD})
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    red = w.snapshot("red", SYNTAX)
    w.write("calc.py", FIXED)
    w.commit("c" * 40)
    w.snapshot("green")
    ds.write(tmp_path / "data")  # the same rows in a second file, as a repeated roll leaves them
    [episode] = mine(tmp_path, ds)
    assert (episode["red_id"], episode["red_snapshots"], episode["kept"]) == (red, 1, True)
    assert episode["fix_lines"] == 4
