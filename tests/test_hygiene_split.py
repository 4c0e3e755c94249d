"""Splits that do not leak: by time per host, or by developer; groups never straddle."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from miner.cli import cli
from miner.record import Episode, episode_id
from miner.split import TEST, TRAIN, assign_splits, developer
from tests.test_miner_cli import team_dataset

T = datetime(2024, 5, 1, tzinfo=UTC)


def stub(
    name: str, minutes: int, host: str, user: str | None = None, group: str | None = None
) -> Episode:
    return Episode(
        episode_id=episode_id(f"r-{name}", f"g-{name}"),
        host=host,
        user=user,
        workspace="/w",
        vcs="git",
        green_before_id="g0",
        first_red_id="r",
        red_id=f"r-{name}",
        green_id=f"g-{name}",
        red_started_at=T,
        red_ended_at=T + timedelta(minutes=minutes),
        red_seconds=0.0,
        red_snapshots=1,
        error=None,
        diagnostics=(),
        error_fingerprint=None,
        fix_diff="x",
        fix_lines=1,
        fix_files=1,
        break_diff="",
        context=(),
        filters=(),
        kept=True,
        dup_group=group,
    )


def two_hosts(grouped: tuple[str, ...]) -> list[Episode]:
    """Ten episodes on host a (minutes 0-9), then ten on host b (10-19); ``grouped`` share G."""
    names = [(f"a{n}", n, "a") for n in range(10)] + [(f"b{n}", 10 + n, "b") for n in range(10)]
    return [
        stub(name, minutes, host, group="G" if name in grouped else None)
        for name, minutes, host in names
    ]


def splits(episodes: list[Episode]) -> dict[str, str | None]:
    return {e.red_id[2:]: e.split for e in episodes}


def test_a_group_a_naive_time_split_would_straddle_stays_in_one_split() -> None:
    # a0 is host a's earliest episode, b9 host b's latest: naively train and test
    grouped = two_hosts(("a0", "b9"))
    naive = splits(assign_splits([replace(e, dup_group=None) for e in grouped], 0.1))
    assert (naive["a0"], naive["b9"]) == (TRAIN, TEST)
    split = splits(assign_splits(grouped, 0.1))
    # the group is placed by its earliest member, a0: train, b9 with it
    assert split["a0"] == split["b9"] == TRAIN
    # the group counts on host a (11 episodes: 1 to test), not on host b (9: none)
    assert [name for name, s in split.items() if s == TEST] == ["a9"]


def test_a_group_placed_in_test_takes_all_its_members_there() -> None:
    split = splits(assign_splits(two_hosts(("a9", "b9")), 0.1))
    assert split["a9"] == split["b9"] == TEST
    assert Counter(split.values()) == {TRAIN: 18, TEST: 2}


def test_time_split_is_a_suffix_per_host_and_ignores_input_order() -> None:
    episodes = two_hosts(("a3", "a4"))
    forward = splits(assign_splits(episodes, 0.3))
    assert forward == splits(assign_splits(list(reversed(episodes)), 0.3))
    for host in "ab":
        order = [forward[f"{host}{n}"] for n in range(10)]
        assert order == sorted(order, key=lambda s: s == TEST)  # train..., then test...
    assert [forward[f"a{n}"] for n in range(7, 10)] == [TEST] * 3


def team() -> list[Episode]:
    users = {"ann": 6, "bob": 5, "cy": 4, "dee": 3, "eve": 2}
    episodes = []
    minute = 0
    for user, count in users.items():
        for n in range(count):
            # ann and bob each work on two hosts: a developer is the user, not the host
            host = f"{user}-{'laptop' if n % 2 else 'desktop'}"
            episodes.append(stub(f"{user}{n}", minute, host, user))
            minute += 1
    episodes.append(stub("anon", minute, "lab", None))  # no user: the host stands in
    return episodes


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_developer_split_holds_out_whole_developers(fraction: float) -> None:
    episodes = team()
    result = assign_splits(episodes, fraction, "developer")
    train = {developer(e) for e in result if e.split == TRAIN}
    test = {developer(e) for e in result if e.split == TEST}
    assert train and not train & test
    n_test = sum(e.split == TEST for e in result)
    assert n_test >= int(len(result) * fraction)
    assert splits(result) == splits(assign_splits(list(reversed(episodes)), fraction, "developer"))


def test_developer_split_keeps_a_group_and_its_developers_together() -> None:
    episodes = team()
    # ann's first episode and eve's last are near-duplicates
    linked = [
        replace(e, dup_group="G") if e.red_id[2:] in ("ann0", "eve1") else e for e in episodes
    ]
    for fraction in (0.1, 0.3, 0.5, 0.7):
        result = {e.red_id[2:]: e for e in assign_splits(linked, fraction, "developer")}
        assert result["ann0"].split == result["eve1"].split
        assert {e.split for e in result.values() if e.user in ("ann", "eve")} in (
            {TRAIN},
            {TEST},
        )


def test_no_test_split_with_fraction_zero_and_only_kept_episodes_get_one() -> None:
    episodes = team()
    rejected = replace(episodes[0], kept=False, filters=("flaky",))
    result = assign_splits([rejected, *episodes[1:]], 0.0, "developer")
    assert result[0].split is None
    assert {e.split for e in result[1:]} == {TRAIN}
    assert {e.split for e in assign_splits(team(), 1.0, "developer")} == {TEST}


def test_miner_run_split_by_developer_from_the_cli(tmp_path: Path) -> None:
    team_dataset(tmp_path / "data")
    out = tmp_path / "out"
    args = ["run", "--data-dir", str(tmp_path / "data"), "--out", str(out), "--offline"]
    result = CliRunner().invoke(cli, [*args, "--split-by", "developer"])
    assert result.exit_code == 0, result.output
    rows = duckdb.sql(
        f'SELECT "user", list(DISTINCT split), count(*), bool_and(kept) '
        f"FROM '{out / 'episodes.parquet'}' GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert [r[0] for r in rows] == ["ann", "bob", "cy", "dee"]
    assert all(len(r[1]) == 1 and r[2] == 3 and r[3] for r in rows)  # one split each
    held_out = [r[0] for r in rows if r[1] == [TEST]]
    assert len(held_out) == 1  # floor(12 * 0.1) = 1 episode wanted: one developer
    assert "kept:            12 (train 9, test 3)" in result.output
    bad = CliRunner().invoke(cli, [*args, "--split-by", "host"])
    assert bad.exit_code == 2 and "'host' is not one of 'time', 'developer'" in bad.output
