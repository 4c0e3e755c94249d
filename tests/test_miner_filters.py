"""Each filter on a crafted episode, through the real pipeline and Parquet files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from miner import pipeline
from miner.filters import FILTERS, INFORMATIONAL, is_kept
from miner.settings import MinerSettings
from miner.synthetic import SyntheticDataset, Workspace
from snapshotter.errors import ConfigError

GOOD = b"def add(a, b):\n    return a + b\n"
BROKEN = b"def add(a, b)\n    return a + b\n"
FIXED = b"def add(a, b):\n    return a + b  # fixed\n"
SYNTAX = "SyntaxError: expected ':'\n"


def mine_one(
    tmp_path: Path, ds: SyntheticDataset, settings: MinerSettings | None = None
) -> dict[str, Any]:
    ds.write(tmp_path / "data")
    pipeline.run(tmp_path / "data", tmp_path / "out", settings=settings)
    cursor = duckdb.connect().execute(
        "SELECT * FROM read_parquet(?)", [str(tmp_path / "out" / "episodes.parquet")]
    )
    names = [d[0] for d in cursor.description]
    [row] = cursor.fetchall()
    return dict(zip(names, row, strict=True))


def episode(
    files: dict[str, bytes], broken: dict[str, bytes], fixed: dict[str, bytes], **red: Any
) -> tuple[SyntheticDataset, Workspace]:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start(files)
    w.snapshot("green")
    for path, content in broken.items():
        w.write(path, content)
    red.setdefault("output", SYNTAX)
    w.snapshot("red", **red)
    for path, content in fixed.items():
        w.write(path, content)
    w.snapshot("green")
    return ds, w


def test_a_plain_fix_fails_no_filter(tmp_path: Path) -> None:
    ds, _ = episode({"a.py": GOOD}, {"a.py": BROKEN}, {"a.py": FIXED})
    row = mine_one(tmp_path, ds)
    assert row["filters"] == [] and row["kept"] and row["split"] == "train"


def test_same_state_built_red_then_green_is_flaky_and_empty(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"a.py": GOOD})
    w.snapshot("green")
    w.write("a.py", BROKEN)
    w.snapshot("red", SYNTAX)
    w.snapshot("green")  # the same state, now green: the build is flaky
    row = mine_one(tmp_path, ds)
    assert row["filters"] == ["empty_fix", "flaky"]
    assert not row["kept"] and row["split"] is None
    assert row["fix_diff"] == "" and row["fix_files"] == 0


def test_identical_content_under_a_new_base_is_flaky(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"a.py": GOOD})
    w.snapshot("green")
    w.write("a.py", BROKEN)
    w.snapshot("red", SYNTAX)
    w.commit("f" * 40)  # state_id changes with the base, the content does not
    w.snapshot("green")
    assert ds.rows[1]["state_id"] != ds.rows[3]["state_id"]
    assert mine_one(tmp_path, ds)["filters"] == ["empty_fix", "flaky"]


def test_fix_over_the_line_limit(tmp_path: Path) -> None:
    long = b"".join(b"x%d = %d\n" % (i, i) for i in range(60))
    ds, _ = episode({"a.py": GOOD}, {"a.py": BROKEN}, {"a.py": long})
    row = mine_one(tmp_path, ds)
    assert row["fix_lines"] == 62
    assert row["filters"] == []
    (tmp_path / "out").rename(tmp_path / "out-default")
    strict = MinerSettings(max_fix_lines=61)
    assert mine_one(tmp_path / "again", ds, strict)["filters"] == ["fix_too_large"]


def test_fix_over_the_file_limit(tmp_path: Path) -> None:
    files = {f"m{i:02d}.py": b"v = 0\n" for i in range(11)}
    fixed = {path: b"v = 1\n" for path in files}
    ds, _ = episode({"a.py": GOOD, **files}, {"a.py": BROKEN}, fixed)
    row = mine_one(tmp_path, ds)
    assert row["fix_files"] == 11
    assert row["filters"] == ["fix_too_large"]
    assert mine_one(tmp_path / "b", ds, MinerSettings(max_fix_files=11))["filters"] == []


def test_whitespace_only_fix(tmp_path: Path) -> None:
    unindented = b"def add(a, b):\nreturn a + b\n"
    reindented = b"def add(a, b):\n        return a + b\n"
    ds, _ = episode({"a.py": GOOD}, {"a.py": unindented}, {"a.py": reindented}, output="")
    row = mine_one(tmp_path, ds)
    # re-indenting is also what a formatter does
    assert row["filters"] == ["formatting", "whitespace_only"] and not row["kept"]


def test_fix_touching_only_an_omitted_file(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.omit["logo.png"] = "too_large"
    w.start({"a.py": GOOD, "logo.png": b"one"})
    w.snapshot("green")
    w.write("logo.png", b"two")
    w.snapshot("red", "assets: checksum mismatch\n")
    w.write("logo.png", b"three")
    w.snapshot("green")
    row = mine_one(tmp_path, ds)
    assert row["filters"] == ["omitted_only"]
    assert row["fix_diff"] == (
        "diff --git a/logo.png b/logo.png\nBinary files a/logo.png and b/logo.png differ\n"
    )
    assert row["fix_lines"] == 0 and row["fix_files"] == 1
    assert row["context"] == []


def test_fix_touching_a_binary_file_and_code_is_kept(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.omit["logo.png"] = "binary"
    w.start({"a.py": GOOD, "logo.png": b"\x89PNG\0one"})
    w.snapshot("green")
    w.write("a.py", BROKEN)
    w.snapshot("red", SYNTAX)
    w.write("a.py", FIXED)
    w.write("logo.png", b"\x89PNG\0two")
    w.snapshot("green")
    row = mine_one(tmp_path, ds)
    assert row["filters"] == [] and row["fix_files"] == 2
    assert [c["path"] for c in row["context"]] == ["a.py"]


def test_fix_that_undoes_the_break_is_kept_but_flagged(tmp_path: Path) -> None:
    ds, _ = episode({"a.py": GOOD}, {"a.py": BROKEN}, {"a.py": GOOD})
    row = mine_one(tmp_path, ds)
    assert row["filters"] == ["revert"]
    assert row["kept"] and row["split"] == "train"


def test_fix_that_goes_beyond_the_break_is_no_revert(tmp_path: Path) -> None:
    ds, _ = episode({"a.py": GOOD}, {"a.py": BROKEN}, {"a.py": GOOD, "b.py": b"new\n"})
    assert mine_one(tmp_path, ds)["filters"] == []


@pytest.mark.parametrize(
    ("output", "exit_code"),
    [
        ("make: *** [all] Error 1\nbuild timed out after 600 s\n", 1),
        ("sh: 1: gcc: command not found\n", 1),
        ("cc1: out of memory allocating 65536 bytes\n", 1),
        ("Traceback (most recent call last):\nMemoryError\n", 1),
        ("Killed\n", 1),
        # dune and OCaml report an OOM kill of a child this way, and exit 1
        ('File "lib/dune", line 1:\nCommand got signal KILL.\n', 1),
        ("clang: error: unable to execute command: Killed: signal SIGKILL\n", 1),
        ("error: linking with `cc` failed: signal: 9, SIGKILL: kill\n", 1),
        ("", 126),
        ("", 127),
        ("", 137),
    ],
)
def test_errors_not_about_the_code(tmp_path: Path, output: str, exit_code: int) -> None:
    ds, _ = episode({"a.py": GOOD}, {"a.py": BROKEN}, {"a.py": FIXED}, output=output)
    ds.rows[1]["build"]["exit_code"] = exit_code
    row = mine_one(tmp_path, ds)
    assert row["filters"] == ["not_code_error"] and not row["kept"]


def test_missing_blobs_leave_the_episode_unrebuildable(tmp_path: Path) -> None:
    ds, _ = episode({"a.py": GOOD}, {"a.py": BROKEN}, {"a.py": FIXED})
    ds.blobs.clear()
    row = mine_one(tmp_path, ds)
    assert row["filters"] == ["unrebuildable"] and not row["kept"]
    assert row["fix_diff"] == "" and row["error"] == SYNTAX


def test_filters_list_every_failure_sorted() -> None:
    assert list(FILTERS) == [
        "empty_fix",
        "fix_too_large",
        "whitespace_only",
        "formatting",
        "generated",
        "omitted_only",
        "flaky",
        "revert",
        "not_code_error",
        "unrebuildable",
        "fix_unrelated_to_error",
        "error_silenced",
    ]
    assert {"revert", "error_silenced"} == INFORMATIONAL
    assert is_kept([]) and is_kept(["revert"]) and not is_kept(["flaky", "revert"])
    assert not is_kept(["fix_unrelated_to_error"])


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError):
        MinerSettings(test_fraction=1.5)
    with pytest.raises(ConfigError):
        MinerSettings(max_fix_lines=-1)
    with pytest.raises(ConfigError):
        MinerSettings(max_context_bytes=-1)
