"""The ``miner`` command line, run through click's CliRunner on real Parquet datasets."""

from __future__ import annotations

from pathlib import Path

import click
import duckdb
import pytest
from click.testing import CliRunner

from miner.cli import cli
from miner.synthetic import SyntheticDataset

GOOD = b"def add(a, b):\n    return a + b\n"
BROKEN = b"def add(a, b)\n    return a + b\n"
FIXED = b"def add(a, b):\n    return a + b  # fixed\n"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A dataset with one kept episode and one flaky one."""
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD})
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    w.snapshot("red", "SyntaxError: expected ':'\n")
    w.write("calc.py", FIXED)
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    w.snapshot("red", "SyntaxError: expected ':'\n")
    w.snapshot("green")
    ds.write(tmp_path / "data")
    return tmp_path / "data"


def invoke(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.output


def test_run_writes_outputs_and_prints_a_summary(data: Path, tmp_path: Path) -> None:
    code, output = invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "out"))
    assert code == 0, output
    assert "snapshots read:  5\n" in output
    assert "streams:         1\n" in output
    assert "episodes found:  2\n" in output
    assert "kept:            1 (train 1, test 0)\n" in output
    assert "filter reasons:  empty_fix 1, flaky 1\n" in output
    assert (tmp_path / "out" / "episodes.parquet").is_file()
    assert (tmp_path / "out" / "train.jsonl").is_file()


def test_run_offline_flag_is_accepted(data: Path, tmp_path: Path) -> None:
    code, output = invoke(
        "run", "--data-dir", str(data), "--out", str(tmp_path / "out"), "--offline"
    )
    assert code == 0, output


def test_data_dir_defaults_to_the_environment(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDGREEN_DATA_DIR", str(data))
    code, output = invoke("run", "--out", str(tmp_path / "out"))
    assert code == 0 and "episodes found:  2" in output


@pytest.mark.parametrize("option", [["--model", "qwen"], ["--base-url", "http://x"]])
def test_offline_contradicts_a_model(data: Path, tmp_path: Path, option: list[str]) -> None:
    out = tmp_path / "o"
    code, output = invoke("run", "--data-dir", str(data), "--out", str(out), "--offline", *option)
    assert code == 2
    assert "--offline cannot be used with --model or --base-url" in output
    assert not (out / "episodes.parquet").exists()


def test_dry_run_without_a_model_is_refused(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    requests = tmp_path / "requests.jsonl"
    code, output = invoke(
        "run", "--data-dir", str(data), "--out", str(out), "--dry-run", str(requests)
    )
    assert code == 2
    assert "--dry-run needs a model: without one nothing would be sent" in output
    assert not out.exists() and not requests.exists()


def test_describe_needs_a_model(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("run", "--data-dir", str(data), "--out", str(out))[0] == 0
    code, output = invoke("describe", "--out", str(out))
    assert code == 2
    assert "no model: give --model, or set model in the [llm] section of the config" in output


def test_describe_without_a_run_is_a_one_line_error(tmp_path: Path) -> None:
    code, output = invoke(
        "describe", "--out", str(tmp_path), "--model", "m", "--base-url", "http://127.0.0.1:9/v1"
    )
    assert code == 1
    assert output == f"Error: no episodes.parquet in {tmp_path}: run `miner run` first\n"


def test_missing_data_dir_is_a_one_line_error(tmp_path: Path) -> None:
    code, output = invoke("run", "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path))
    assert code == 1
    assert output == f"Error: data directory {tmp_path / 'nope'} does not exist\n"


def test_no_snapshots_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    code, output = invoke("run", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "o"))
    assert code == 1
    assert output.startswith(f"Error: no snapshots in {tmp_path / 'data'}")
    assert output.count("\n") == 1


def test_unusable_out_is_a_one_line_error(data: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    code, output = invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "file"))
    assert code == 1 and output.count("\n") == 1
    assert "cannot create output directory" in output
    # a directory where the output file should go: the write fails cleanly
    (tmp_path / "out" / "episodes.parquet").mkdir(parents=True)
    code, output = invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "out"))
    assert code == 1 and output.count("\n") == 1
    assert output.startswith(f"Error: cannot write {tmp_path / 'out' / 'episodes.parquet'}")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["episodes.parquet"]


def test_corrupt_parquet_is_a_one_line_error(data: Path, tmp_path: Path) -> None:
    partition = next((data / "snapshots").glob("*/*"))
    (partition / "broken.parquet").write_bytes(b"PAR1 no footer")
    code, output = invoke(
        "run", "--data-dir", str(data), "--out", str(tmp_path / "out"), "--strict"
    )
    assert code == 1 and output.count("\n") == 1
    assert output.startswith(f"Error: cannot read {partition / 'broken.parquet'}")


def test_sql_command_prints_a_table(data: Path) -> None:
    code, output = invoke(
        "sql",
        "--data-dir",
        str(data),
        "-c",
        "SELECT build.status AS status, count(*) AS n FROM snapshots GROUP BY 1 ORDER BY 1",
    )
    assert code == 0, output
    assert output == "status | n\n-------+--\ngreen  | 3\nred    | 2\n(2 rows)\n"


def test_sql_reads_stdin_and_sees_episodes_with_out(data: Path, tmp_path: Path) -> None:
    invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "out"))
    query = "SELECT kept, filters, prompt FROM episodes ORDER BY red_ended_at;\n"
    code, output = invoke(
        "sql", "--data-dir", str(data), "--out", str(tmp_path / "out"), input=query
    )
    assert code == 0, output
    assert output.splitlines() == [
        "kept  | filters                | prompt",
        "------+------------------------+--------------------------------",
        "True  | []                     | Fix the syntax error in calc.py",
        "False | ['empty_fix', 'flaky'] | Fix the syntax error",
        "(2 rows)",
    ]


def test_sql_cells_stay_on_one_line(data: Path, tmp_path: Path) -> None:
    invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "out"))
    query = "SELECT error, context FROM episodes WHERE kept"
    code, output = invoke(
        "sql", "--data-dir", str(data), "--out", str(tmp_path / "out"), "-c", query
    )
    assert code == 0, output
    lines = output.splitlines()
    assert len(lines) == 4
    assert lines[2] == (
        "SyntaxError: expected ':'\\n | [{'path': 'calc.py', 'content': 'def add(a, b)\\n"
        "    return a + b\\n'}]"
    )
    code, output = invoke("sql", "--data-dir", str(data), "-c", "SELECT repeat('x', 200) AS x")
    assert output.splitlines()[2] == "x" * 79 + "…"


def test_sql_views_blobs_and_diagnostics(data: Path) -> None:
    code, output = invoke(
        "sql", "--data-dir", str(data), "-c", "SELECT count(*) AS blobs FROM blobs"
    )
    assert code == 0 and "3" in output
    code, output = invoke("sql", "--data-dir", str(data), "-c", "SELECT * FROM diagnostics")
    assert code == 0 and output.endswith("(0 rows)\n")


def test_sql_error_is_one_line(data: Path) -> None:
    code, output = invoke("sql", "--data-dir", str(data), "-c", "SELECT nope FROM snapshots")
    assert code == 1 and output.startswith("Error: ") and output.count("\n") == 1


def test_print_views_can_be_pasted_into_duckdb(data: Path, tmp_path: Path) -> None:
    invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "out"))
    code, views = invoke(
        "sql", "--data-dir", str(data), "--out", str(tmp_path / "out"), "--print-views"
    )
    assert code == 0
    for name in ("snapshots", "blobs", "diagnostics", "episodes"):
        assert f"CREATE OR REPLACE VIEW {name} AS" in views
    assert "union_by_name=true, hive_partitioning=true" in views
    con = duckdb.connect()
    con.execute(views)
    assert con.execute("SELECT count(*) FROM snapshots").fetchall() == [(5,)]
    assert con.execute("SELECT DISTINCT host FROM snapshots").fetchall() == [("laptop",)]
    assert con.execute("SELECT count(*) FROM episodes WHERE kept").fetchall() == [(1,)]
    assert con.execute("SELECT count(DISTINCT blob) FROM blobs").fetchall() == [(3,)]


def test_empty_dataset_gives_working_empty_views(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    code, output = invoke(
        "sql",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "out"),
        "-c",
        "SELECT (SELECT count(*) FROM snapshots) AS s, (SELECT count(*) FROM blobs) AS b,"
        " (SELECT count(*) FROM episodes) AS e, (SELECT count(*) FROM diagnostics) AS d",
    )
    assert code == 0, output
    assert output.splitlines()[2] == "0 | 0 | 0 | 0"
    code, views = invoke("sql", "--data-dir", str(tmp_path / "data"), "--print-views")
    con = duckdb.connect()
    con.execute(views)
    columns = [row[0] for row in con.execute("DESCRIBE snapshots").fetchall()]
    assert columns[:3] == ["snapshot_id", "schema_version", "ts"] and columns[-1] == "date"
    assert con.execute("SELECT count(*) FROM snapshots WHERE build.status = 'red'").fetchall() == [
        (0,)
    ]


def test_sql_on_missing_data_dir(tmp_path: Path) -> None:
    code, output = invoke("sql", "--data-dir", str(tmp_path / "nope"), "-c", "SELECT 1")
    assert code == 1 and "does not exist" in output
    code, output = invoke("sql", "--data-dir", str(tmp_path / "nope"), "--print-views")
    assert code == 1 and "does not exist" in output


def test_every_command_has_help_text() -> None:
    assert cli.help
    assert isinstance(cli, click.Group)
    for name, command in cli.commands.items():
        assert command.help, name
        code, output = invoke(name, "--help")
        assert code == 0 and "Usage: " in output


# -- the [miner] section of the config file ------------------------------------------------


def team_dataset(data: Path) -> Path:
    """Four developers on four hosts, three kept episodes each (no near-duplicates).

    Split by time, 10% of each host's three episodes is none: everything is train.
    Split by developer, one whole developer goes to test.
    """
    ds = SyntheticDataset()
    for index, user in enumerate(["ann", "bob", "cy", "dee"]):
        w = ds.workspace(f"/home/{user}/app", f"host-{user}", user=user)
        w.start({"calc.py": b"pass\n"})
        w.snapshot("green")
        for n in range(3):
            w.write("calc.py", b"x = (\n" + b"(" * (index * 3 + n) + b"\n")
            w.snapshot("red", "SyntaxError: '(' was never closed\n")
            w.write("calc.py", b"x = %d\n" % n + b"[]" * (index * 3 + n))
            w.snapshot("green")
    ds.write(data)
    return data


def splits_by_user(out: Path) -> dict[str, list[str]]:
    rows = duckdb.sql(
        f"SELECT \"user\", list(DISTINCT split ORDER BY split) FROM '{out / 'episodes.parquet'}'"
        " GROUP BY ALL ORDER BY 1"
    ).fetchall()
    return {user: splits for user, splits in rows}


def write_config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(text)
    return config


def test_split_by_in_the_config_decides_the_split_and_the_flag_overrides_it(
    tmp_path: Path,
) -> None:
    data = team_dataset(tmp_path / "data")
    config = write_config(tmp_path, '[miner]\nsplit_by = "developer"\n')
    run = ["run", "--data-dir", str(data), "--config", str(config)]

    code, output = invoke(*run, "--out", str(tmp_path / "by-config"))
    assert code == 0, output
    assert "kept:            12 (train 9, test 3)\n" in output
    by_developer = splits_by_user(tmp_path / "by-config")
    assert all(len(splits) == 1 for splits in by_developer.values())  # no one in both
    assert sorted(splits[0] for splits in by_developer.values()) == [
        "test",
        "train",
        "train",
        "train",
    ]

    code, output = invoke(*run, "--out", str(tmp_path / "by-flag"), "--split-by", "time")
    assert code == 0, output
    assert "kept:            12 (train 12, test 0)\n" in output
    assert set(map(tuple, splits_by_user(tmp_path / "by-flag").values())) == {("train",)}


def test_the_config_is_found_through_redgreen_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = team_dataset(tmp_path / "data")
    monkeypatch.setenv(
        "REDGREEN_CONFIG", str(write_config(tmp_path, '[miner]\nsplit_by = "developer"\n'))
    )
    code, output = invoke("run", "--data-dir", str(data), "--out", str(tmp_path / "out"))
    assert code == 0, output
    assert "kept:            12 (train 9, test 3)\n" in output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[miner]\nsplit_by = "host"\n',
            'miner.split_by must be "time" or "developer", got "host"',
        ),
        ("[miner]\ntest_fraction = 2\n", "miner.test_fraction must be a number from 0 to 1, got 2"),
        ('[miner]\nsplit = "time"\n', "unknown key miner.split (did you mean miner.split_by?)"),
    ],
)
def test_a_bad_miner_section_is_one_clear_line(
    data: Path, tmp_path: Path, text: str, message: str
) -> None:
    config = write_config(tmp_path, text)
    out = tmp_path / "out"
    args = ["run", "--data-dir", str(data), "--out", str(out), "--config", str(config)]
    code, output = invoke(*args, "--offline")
    assert code == 1
    assert output == f"Error: {config}: {message}\n"
    assert not out.exists()


def fix_paths(out: Path) -> list[str]:
    [(fix_diff,)] = duckdb.sql(f"SELECT fix_diff FROM '{out / 'episodes.parquet'}'").fetchall()
    return [
        line.split(" b/")[-1] for line in fix_diff.splitlines() if line.startswith("diff --git")
    ]


def test_fix_exclude_in_the_config_leaves_files_out_of_the_fix(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"calc.py": GOOD, "gen/schema.py": b"V = 1\n", "Cargo.lock": b"v1\n"})
    w.snapshot("green")
    w.write("calc.py", BROKEN)
    w.snapshot("red", "SyntaxError: expected ':'\n")
    w.write("calc.py", FIXED)
    w.write("gen/schema.py", b"V = 2\n")
    w.write("Cargo.lock", b"v2\n")
    w.snapshot("green")
    ds.write(tmp_path / "data")

    def mined(config_text: str, *flags: str) -> list[str]:
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        config = write_config(tmp_path, config_text)
        data = str(tmp_path / "data")
        args = ["run", "--data-dir", data, "--out", str(out), "--config", str(config), *flags]
        code, output = invoke(*args)
        assert code == 0, output
        return fix_paths(out)

    assert mined("") == ["calc.py", "gen/schema.py"]
    assert mined('[miner]\nfix_exclude = ["gen/"]\n') == ["calc.py"]
    # the built-in lock files are dropped by the config, brought back by the flag
    dropped = '[miner]\nfix_exclude = ["gen/"]\ndefault_fix_exclude = false\n'
    assert mined(dropped) == ["Cargo.lock", "calc.py"]
    assert mined(dropped, "--default-fix-exclude") == ["calc.py"]
    # --fix-exclude adds to the config's globs
    assert mined(dropped, "--fix-exclude", "*.lock") == ["calc.py"]
