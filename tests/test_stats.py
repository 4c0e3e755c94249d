"""``miner stats``: the funnel of a real mined dataset, per host and overall, table and JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from miner.cli import cli
from miner.describe_stage import read_episodes
from miner.filters import FILTERS, INFORMATIONAL
from miner.output import write_episodes
from miner.record import NOT_GREEN, REPRODUCED
from miner.stats import compute_stats
from miner.synthetic import SyntheticDataset

CALC = b"def add(a, b):\n    return a + b\n"
GREET = b"def greet(name):\n    return 'hello ' + name\n"
SHAPES = b"class Square:\n    def area(self):\n        return self.side ** 2\n"
DAY = timedelta(days=1)


def build_dataset() -> SyntheticDataset:
    """Two hosts, four days, five episodes: three kept (a syntax error, an undefined
    name, a type error), one not about the code (Killed) and one flaky, plus rows
    that are not usable states (no build, stale build, a commit)."""
    ds = SyntheticDataset()
    laptop = ds.workspace("/home/dev/app", host="laptop")
    laptop.start({"calc.py": CALC, "greet.py": GREET})
    laptop.snapshot("green")
    # day 1: a syntax error, fixed by one line
    laptop.write("calc.py", b"def add(a, b)\n    return a + b\n")
    laptop.snapshot("red", "  File \"calc.py\", line 1\nSyntaxError: expected ':'\n")
    laptop.snapshot(None, reason="heartbeat")  # no build: not a usable state
    laptop.write("calc.py", CALC + b"# checked\n")
    laptop.snapshot("green")
    # day 2: an undefined name over two red builds, fixed by several lines
    ds.tick(DAY)
    laptop.write("greet.py", b"def greet(name):\n    return 'hello ' + nme\n")
    laptop.snapshot("red", "NameError: name 'nme' is not defined\n")
    laptop.write("greet.py", b"def greet(name):\n    return 'hello ' + nmae\n")
    laptop.snapshot("stale")  # the files moved while it built: not usable
    laptop.snapshot("red", "NameError: name 'nmae' is not defined\n")
    laptop.write(
        "greet.py",
        b"def greet(name: str) -> str:\n    '''Say hello.'''\n    return 'hello ' + name\n",
    )
    laptop.snapshot("green")
    laptop.commit("c" * 40)  # a base row: never a usable state
    # day 3: the build was killed: not a code error
    ds.tick(DAY)
    laptop.write("calc.py", CALC + b"# big table\n")
    laptop.snapshot("red", "Killed\n", exit_code=137)
    laptop.write("calc.py", CALC + b"# smaller table\n")
    laptop.snapshot("green")
    # a flaky one: red then green on the very same state (empty_fix and flaky both)
    laptop.snapshot("red", "SyntaxError: invalid syntax\n")
    laptop.snapshot("green")

    desk = ds.workspace("/srv/shapes", host="desk")
    desk.start({"shapes.py": SHAPES})
    desk.snapshot("green")
    ds.tick(DAY)
    desk.write("shapes.py", SHAPES.replace(b"self.side ** 2", b"self.side ** '2'"))
    desk.snapshot(
        "red", "TypeError: unsupported operand type(s) for ** or pow(): 'int' and 'str'\n"
    )
    desk.write("shapes.py", SHAPES.replace(b"self.side ** 2", b"self.side * self.side"))
    desk.snapshot("green")
    return ds


def usable_states(ds: SyntheticDataset, host: str | None = None) -> int:
    """The usable states counted the naive way, row by row."""
    return len(
        [
            row
            for row in ds.rows
            if (host is None or row["host"] == host)
            and row["build"] is not None
            and row["build"]["state_id"] == row["state_id"]
            and row["build"]["status"] in ("green", "red")
            and row["reason"] != "base"
        ]
    )


def mine(tmp_path: Path, ds: SyntheticDataset | None = None) -> tuple[Path, Path]:
    """Write ``ds`` (default: build_dataset()) and run the real `miner run` on it."""
    data, out = tmp_path / "data", tmp_path / "out"
    (ds or build_dataset()).write(data)
    result = CliRunner().invoke(cli, ["run", "--data-dir", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return data, out


def set_verified(out: Path, outcomes: dict[str, str]) -> None:
    """Write ``verified`` outcomes (by error kind) into episodes.parquet, as verify does."""
    episodes = read_episodes(out)
    write_episodes(
        out, [replace(e, verified=outcomes.get(e.error_kind or "", e.verified)) for e in episodes]
    )


def stats(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["stats", *args])
    return result.exit_code, result.output


def test_funnel_counts_every_step_per_host_and_overall(tmp_path: Path) -> None:
    ds = build_dataset()
    data, out = mine(tmp_path, ds)
    set_verified(out, {"syntax error": REPRODUCED, "type error": NOT_GREEN})
    result = compute_stats(out, data)
    assert result.dataset_note is None
    overall, (desk, laptop) = result.overall, result.hosts
    assert (desk.host, laptop.host) == ("desk", "laptop")
    assert overall.snapshots == len(ds.rows) == 16
    assert (laptop.snapshots, desk.snapshots) == (13, 3)
    assert overall.usable_states == usable_states(ds) == 13
    assert laptop.usable_states == usable_states(ds, "laptop") == 10
    assert (overall.episodes, laptop.episodes, desk.episodes) == (5, 4, 1)
    assert (overall.kept, laptop.kept, desk.kept) == (3, 2, 1)
    # one reproduced; the type error's fix was disproved, so it is not described
    assert (overall.verified, laptop.verified, desk.verified) == (1, 1, 0)
    assert (overall.described, laptop.described, desk.described) == (2, 2, 0)


def test_filters_remove_in_order_and_each_episode_once(tmp_path: Path) -> None:
    _, out = mine(tmp_path)
    result = compute_stats(out, None)
    rejecting = [name for name in FILTERS if name not in INFORMATIONAL]
    assert list(result.filter_names) == rejecting
    steps = {step.name: step for step in result.overall.filters}
    # the flaky episode fails empty_fix too: the earlier filter takes it, flaky finds none
    assert steps["empty_fix"].removed == 1
    assert steps["flaky"].removed == 0
    assert steps["not_code_error"].removed == 1
    assert sum(step.removed for step in result.overall.filters) == 2
    remaining = [step.remaining for step in result.overall.filters]
    assert remaining == sorted(remaining, reverse=True)
    assert remaining[-1] == result.overall.kept == 3


def test_filter_names_come_from_the_data_too(tmp_path: Path) -> None:
    _, out = mine(tmp_path)
    episodes = read_episodes(out)
    # a filter this version does not know, written by a newer miner: a step after the known ones
    first = next(i for i, e in enumerate(episodes) if e.kept)
    episodes[first] = replace(episodes[first], filters=("zz_newer_filter",), kept=False)
    write_episodes(out, episodes)
    result = compute_stats(out, None)
    assert result.filter_names[-1] == "zz_newer_filter"
    assert result.overall.filters[-1].removed == 1
    assert result.overall.filters[-1].remaining == result.overall.kept == 2


def test_table_is_aligned_with_overall_first(tmp_path: Path) -> None:
    data, out = mine(tmp_path)
    code, output = stats("--out", str(out), "--data-dir", str(data))
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].split() == ["step", "overall", "desk", "laptop"]
    assert lines[1].split() == ["snapshots", "16", "3", "13"]
    assert lines[2].split() == ["usable", "states", "13", "3", "10"]
    assert lines[3].split() == ["episodes", "5", "1", "4"]
    assert "  not_code_error" in output and "4 (-1)" in output
    assert [line.split() for line in lines[-3:]] == [
        ["kept", "3", "1", "2"],
        ["verified", "0", "0", "0"],
        ["described", "3", "1", "2"],
    ]
    # every column ends where its header ends
    ends = [lines[0].index(name) + len(name) for name in ("overall", "desk", "laptop")]
    for line in lines[1:]:
        assert len(line) == ends[-1], line
        for end in ends:
            assert line[end - 1] != " ", line


def test_json_is_a_stable_document(tmp_path: Path) -> None:
    data, out = mine(tmp_path)
    code, first = stats("--out", str(out), "--data-dir", str(data), "--json")
    assert code == 0, first
    _, second = stats("--out", str(out), "--data-dir", str(data), "--json")
    assert first == second
    document = json.loads(first)
    assert list(document) == ["dataset", "filters", "overall", "hosts"]
    assert document["dataset"] == {"data_dir": str(data), "note": None}
    overall = document["overall"]
    assert {k: overall[k] for k in ("snapshots", "usable_states", "episodes", "kept")} == {
        "snapshots": 16,
        "usable_states": 13,
        "episodes": 5,
        "kept": 3,
    }
    assert [f["name"] for f in overall["filters"]] == document["filters"]
    assert overall["filters"][0] == {"name": "empty_fix", "removed": 1, "remaining": 4}
    assert [h["host"] for h in document["hosts"]] == ["desk", "laptop"]
    assert document["hosts"][0]["episodes"] == 1


def test_without_a_dataset_the_episode_steps_still_work(tmp_path: Path) -> None:
    _, out = mine(tmp_path)
    missing = tmp_path / "gone"
    code, output = stats("--out", str(out), "--data-dir", str(missing))
    assert code == 0, output
    first, *rest = output.splitlines()
    assert (
        first == f"snapshots, usable states: not counted (data directory {missing} does not exist)"
    )
    assert rest[1].split() == ["episodes", "5", "1", "4"]
    assert not any(line.startswith("snapshots") for line in rest)
    code, output = stats("--out", str(out), "--data-dir", str(missing), "--json")
    document = json.loads(output)
    assert document["overall"]["snapshots"] is None
    assert "does not exist" in document["dataset"]["note"]
    assert document["overall"]["kept"] == 3


def test_missing_episodes_file_is_one_clear_error(tmp_path: Path) -> None:
    code, output = stats("--out", str(tmp_path / "nothing"))
    assert code == 1
    assert output.strip().splitlines() == [
        f"Error: no episodes.parquet in {tmp_path / 'nothing'}: run `miner run` first"
    ]


def test_strict_fails_on_an_unreadable_dataset_file(tmp_path: Path) -> None:
    data, out = mine(tmp_path)
    bad = data / "snapshots" / "date=2024-05-01" / "host=laptop" / "broken.parquet"
    bad.write_bytes(b"not parquet at all")
    code, output = stats("--out", str(out), "--data-dir", str(data))
    assert code == 0, output
    assert "broken.parquet" in output  # named (on stderr) and skipped
    code, output = stats("--out", str(out), "--data-dir", str(data), "--strict")
    assert code == 1
    assert "broken.parquet" in output


@pytest.mark.parametrize("empty", [True, False])
def test_no_episodes(tmp_path: Path, empty: bool) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": CALC})
    w.snapshot("green")
    if not empty:
        w.snapshot("red", "SyntaxError\n")  # red without a green before: no episode
    data, out = mine(tmp_path, ds)
    result = compute_stats(out, data)
    assert result.overall.episodes == 0
    assert result.overall.snapshots == len(ds.rows)
    assert [f.label for f in result.funnels] == ["overall", "laptop"]
