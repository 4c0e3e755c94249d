"""The first pipeline end to end: real repositories and builds -> snapshots -> miner -> episodes."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from miner import pipeline
from miner.describe import get_describer
from snapshotter.record import Identity
from snapshotter.snapshot import SnapshotOptions, take_snapshot
from tests.repos import Repo

ME = Identity(host="test-host", user="tester")
GCC = "gcc -Wall -Werror -fsyntax-only *.c"
PY = shlex.quote(sys.executable)

GOOD_C = """#include <stdio.h>

static int square(int x) { return x * x; }

int main(void) {
    printf("%d\\n", square(7));
    return 0;
}
"""


def snap(repo: Repo, data: Path, build: str = GCC) -> str | None:
    return take_snapshot(repo.path, data, SnapshotOptions(build_command=build), ME).build_status


def mine(data: Path, out: Path) -> list[dict[str, Any]]:
    pipeline.run(data, out, describer=get_describer("offline"))
    rel = duckdb.connect().sql(
        f"select * from read_parquet('{out / 'episodes.parquet'}') order by red_ended_at"
    )
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def snapshot_row(data: Path, snapshot_id: str) -> dict[str, Any]:
    rel = duckdb.connect().sql(
        f"""select * from read_parquet('{data}/snapshots/**/*.parquet',
               union_by_name=true, hive_partitioning=true)
            where snapshot_id = '{snapshot_id}'"""
    )
    (values,) = rel.fetchall()
    return dict(zip(rel.columns, values, strict=True))


def git_apply(tree: Path, diff: str, *, check: bool = False) -> None:
    args = ["git", "apply", "--whitespace=nowarn"] + (["--check"] if check else []) + ["-"]
    done = subprocess.run(args, cwd=tree, input=diff.encode(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()


def red_tree(repo: Repo, data: Path, red_id: str, dest: Path) -> Path:
    """The red state rebuilt from its base revision and its recorded diff."""
    red = snapshot_row(data, red_id)
    repo.export_base(dest, red["base_rev"])
    git_apply(dest, red["diff"])
    return dest


@pytest.fixture
def repo(repo: Repo) -> Repo:
    repo.ignore("__pycache__", "*.o")
    return repo


def test_green_red_green_with_gcc(repo: Repo, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    repo.write("main.c", GOOD_C)
    repo.commit("square")
    assert snap(repo, data) == "green"
    repo.write("main.c", GOOD_C.replace("square(7)", "square(seven)"))
    assert snap(repo, data) == "red"
    repo.write("main.c", GOOD_C.replace("square(7)", "square(7, 8)"))  # wrong again
    assert snap(repo, data) == "red"
    repo.write("main.c", GOOD_C.replace("square(7)", "square(8)"))
    assert snap(repo, data) == "green"

    (episode,) = mine(data, out)
    assert episode["kept"] and episode["filters"] == []
    assert episode["red_snapshots"] == 2 and episode["first_red_id"] != episode["red_id"]
    assert episode["vcs"] == repo.kind and episode["host"] == "test-host"
    assert "too many arguments" in episode["error"]
    assert episode["diagnostics"][0]["file"] == "main.c"
    assert episode["fix_files"] == 1 and episode["fix_lines"] == 2
    assert '-    printf("%d\\n", square(7, 8));' in episode["fix_diff"]
    assert '+    printf("%d\\n", square(8));' in episode["fix_diff"]
    assert "square(seven)" in episode["break_diff"]
    assert [c["path"] for c in episode["context"]] == ["main.c"]
    assert "square(7, 8)" in episode["context"][0]["content"]
    assert episode["describer"] == "offline" and "main.c" in episode["prompt"]

    # the fix diff applies cleanly to the rebuilt red state and yields exactly green
    tree = red_tree(repo, data, episode["red_id"], tmp_path / "red")
    git_apply(tree, episode["fix_diff"], check=True)
    git_apply(tree, episode["fix_diff"])
    assert (tree / "main.c").read_bytes() == repo.read("main.c")
    done = subprocess.run(
        ["patch", "-p1", "-R", "--dry-run"],
        cwd=tree,
        input=episode["fix_diff"].encode(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout

    lines = (out / "train.jsonl").read_text().splitlines()
    (example,) = [json.loads(line) for line in lines]
    system, user, assistant = example["messages"]
    assert (system["role"], user["role"], assistant["role"]) == ("system", "user", "assistant")
    assert assistant["content"] == episode["fix_diff"]
    assert episode["prompt"] in user["content"] and "square(7, 8)" in user["content"]
    assert example["metadata"]["episode_id"] == episode["episode_id"]
    assert example["metadata"]["split"] == episode["split"] == "train"


def test_commit_between_red_and_green(repo: Repo, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    build = f"{PY} -m py_compile *.py"
    repo.write("calc.py", "def add(a, b):\n    return a + b\n")
    repo.write("util.py", "NAME = 'util'\n")
    first = repo.commit("calc")
    assert snap(repo, data, build) == "green"
    repo.write("calc.py", "def add(a, b)\n    return a + b\n")
    assert snap(repo, data, build) == "red"
    # the developer fixes calc.py, also edits util.py, and commits before the next snapshot
    repo.write("calc.py", "def add(a, b):\n    return b + a\n")
    repo.write("util.py", "NAME = 'utilities'\n")
    second = repo.commit("fix and tidy")
    assert second != first
    repo.write("notes.py", "# later work\n")
    assert snap(repo, data, build) == "green"

    (episode,) = mine(data, out)
    assert episode["kept"]
    tree = red_tree(repo, data, episode["red_id"], tmp_path / "red")
    git_apply(tree, episode["fix_diff"], check=True)
    git_apply(tree, episode["fix_diff"])
    for name in ("calc.py", "util.py", "notes.py"):
        assert (tree / name).read_bytes() == repo.read(name), name
    assert episode["fix_files"] == 3


def test_two_episodes_and_a_red_start(repo: Repo, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    build = f"{PY} -m py_compile *.py"
    repo.write("a.py", "x = (\n")  # red from the start: no green before it, no episode
    assert snap(repo, data, build) == "red"
    steps = ["x = 1\n", "x = 1 +\n", "x = 2\n", "x = [\n", "x = [3]\n"]
    for text in steps:
        repo.write("a.py", text)
        snap(repo, data, build)
    first, second = mine(data, out)
    assert "+x = 2" in first["fix_diff"] and "-x = 1 +" in first["fix_diff"]
    assert "+x = [3]" in second["fix_diff"] and "-x = [" in second["fix_diff"]
    assert first["episode_id"] != second["episode_id"]
    assert first["red_snapshots"] == second["red_snapshots"] == 1
    # same dataset, same episodes, same bytes
    again = tmp_path / "again"
    mine(data, again)
    assert (again / "episodes.parquet").read_bytes() == (out / "episodes.parquet").read_bytes()
    assert (again / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes()


def test_miner_cli_and_sql_on_recorded_data(repo: Repo, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    build = f"{PY} -m py_compile *.py"
    for text in ("v = 1\n", "v = (\n", "v = 2\n"):
        repo.write("v.py", text)
        snap(repo, data, build)
    miner = str(Path(sys.executable).parent / "miner")
    done = subprocess.run(
        [miner, "run", "--data-dir", str(data), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "snapshots read:  3" in done.stdout and "episodes found:  1" in done.stdout
    query = "select count(*) as n, any_value(kept) as kept from episodes"
    done = subprocess.run(
        [miner, "sql", "--data-dir", str(data), "--out", str(out), "-c", query],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1" in done.stdout and "true" in done.stdout.lower()


def test_demo_prints_the_mined_episode() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "snapshotter"), "demo"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "step 1" in out and "build green" in out and "build red" in out
    assert "1 episode(s), 1 kept" in out
    assert "verified in a scratch copy of the repository: reproduced 1" in out
    assert "prompt: Fix the syntax error in report.py" in out
    assert (
        '+    return f"n={len(values)} total={stats.total(values)} mean={stats.average(values)}"'
        in out
    )
