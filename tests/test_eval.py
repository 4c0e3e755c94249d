"""``miner eval`` end to end: a real git repository, real Python builds recorded by the
snapshotter, mined by the pipeline, replayed in warm workers; the model is the tests'
llama-server behind the fault proxy (crafted replies where a test needs a given answer).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from miner import pipeline
from miner.cli import cli
from miner.describe import get_describer
from miner.describe_stage import read_episodes
from miner.eval.score import NO_REPO, REQUEST_FAILED, EpisodeResult, summarize
from miner.record import Episode
from miner.settings import MinerSettings
from snapshotter.record import Identity
from snapshotter.snapshot import SnapshotOptions, take_snapshot
from tests.fault_proxy import FaultProxy, reply
from tests.repos import Repo

ME = Identity(host="test-host", user="tester")
BUILD = f"{shlex.quote(sys.executable)} main.py"

CALC = "# calc: arithmetic\n\n\ndef add(a, b):\n    return a + b\n"
MAIN = "from calc import add\n\ntotal = add(2, 3)\nprint(total)\n"


@dataclass(frozen=True)
class Mined:
    repo: Path
    data: Path
    out: Path
    episodes: dict[str, Episode]  # by error kind


def _record(root: Path) -> Mined:
    repo = Repo("git", root / "ws")
    repo.ignore("__pycache__")
    data, out = root / "data", root / "out"

    def snap(status: str) -> None:
        options = SnapshotOptions(build_command=BUILD)
        assert take_snapshot(repo.path, data, options, ME).build_status == status

    repo.write("calc.py", CALC)
    repo.write("main.py", MAIN)
    repo.commit("calc")
    snap("green")
    repo.write("calc.py", CALC.replace("add(a, b):", "add(a, b)"))  # syntax error
    snap("red")
    repo.write("calc.py", CALC)
    snap("green")
    repo.write("main.py", MAIN.replace("print(total)", "print(totl)"))  # NameError
    snap("red")
    repo.write("main.py", MAIN)
    snap("green")
    # every kept episode held out, as a model's evaluation wants
    pipeline.run(
        data, out, settings=MinerSettings(test_fraction=1.0), describer=get_describer("offline")
    )
    episodes = {e.error_kind or "": e for e in read_episodes(out)}
    assert set(episodes) == {"syntax error", "undefined name"}
    assert all(e.kept and e.split == "test" for e in episodes.values())
    return Mined(repo.path, data, out, episodes)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mined]:
    """One recorded and mined dataset for the module (the repository must stay put)."""
    root = tmp_path_factory.mktemp("eval")
    with pytest.MonkeyPatch.context() as patch:  # the snapshotter must not touch the real home
        for name in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
            patch.setenv(name, str(root / "home"))
        yield _record(root)


@pytest.fixture
def mined(recorded: Mined, tmp_path: Path) -> Mined:
    """The module's dataset with an output directory of this test's own."""
    out = tmp_path / "out"
    shutil.copytree(recorded.out, out)
    return Mined(recorded.repo, recorded.data, out, recorded.episodes)


def miner_eval(mined: Mined, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["eval", "--out", str(mined.out), "--data-dir", str(mined.data), "--jobs", "2", *args]
    )
    return result.exit_code, result.stdout, result.stderr


def summary(mined: Mined) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((mined.out / "eval" / "summary.json").read_text())
    return document


def row(document: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [r for r in document["rows"] if r["name"] == name]
    return found


def results(mined: Mined, name: str) -> list[dict[str, Any]]:
    lines = (mined.out / "eval" / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def fenced(diff: str) -> str:
    return f"The build fails because of this.\n\n```diff\n{diff}```\n\nThis fixes it."


def test_baselines_without_a_model(mined: Mined) -> None:
    code, out, err = miner_eval(mined)
    assert code == 0, out + err
    document = summary(mined)
    assert (document["split"], document["episodes"], document["no_repo"]) == ("test", 2, 0)
    assert [r["name"] for r in document["rows"]] == ["baseline-nothing", "baseline-recorded-fix"]
    nothing, recorded = document["rows"]
    # applying nothing leaves every red build red; the developer's fix turns each green
    assert (nothing["episodes"], nothing["applies_rate"], nothing["green_rate"]) == (2, 1.0, 0.0)
    assert (recorded["episodes"], recorded["applies_rate"], recorded["green_rate"]) == (2, 1, 1)
    for baseline in (nothing, recorded):
        assert sorted(baseline["by_error_kind"]) == ["syntax error", "undefined name"]
        assert all(t["episodes"] == 1 for t in baseline["by_error_kind"].values())
    assert nothing["outcomes"] == {"red": 2} and recorded["outcomes"] == {"green": 2}
    # per episode, in id order, with the build's own error for the red ones
    per_episode = results(mined, "baseline-nothing")
    assert [r["episode_id"] for r in per_episode] == sorted(
        e.episode_id for e in mined.episodes.values()
    )
    by_kind = {r["error_kind"]: r for r in per_episode}
    assert "SyntaxError" in by_kind["syntax error"]["output"]
    assert "NameError" in by_kind["undefined name"]["output"]
    assert all(r["fingerprint"] for r in per_episode)
    for name in ("baseline-nothing", "baseline-recorded-fix"):
        assert (mined.out / "eval" / f"{name}.summary.json").is_file()
    # the table: overall and per error kind for each row
    assert "apply nothing" in out and "recorded fix" in out
    assert out.count("syntax error") == 2 and out.count("undefined name") == 2
    assert "100.0%" in out and "0.0%" in out and "0 no_repo" in out
    # the same run again writes the same summaries (build output names the scratch copy)
    first = {p.name: p.read_bytes() for p in (mined.out / "eval").glob("*.json")}
    assert len(first) == 3
    assert miner_eval(mined)[0] == 0
    assert {p.name: p.read_bytes() for p in (mined.out / "eval").glob("*.json")} == first


def test_json_prints_the_summary_document(mined: Mined) -> None:
    code, out, err = miner_eval(mined, "--json")
    assert code == 0, err
    assert json.loads(out) == summary(mined)


# Python's audit events see every socket the process creates or connects
SOCKET_GUARD = """
import sys
seen = []
sys.addaudithook(lambda event, args: event.startswith("socket.") and seen.append(event))
from miner.cli import cli
try:
    cli(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("SOCKETS", sorted(set(seen)), "OPENAI", "openai" in sys.modules, "CODE", code)
"""


def test_without_a_model_nothing_is_sent(mined: Mined, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    args = ["eval", "--out", str(mined.out), "--data-dir", str(mined.data)]
    done = subprocess.run(
        [sys.executable, "-c", SOCKET_GUARD, *args, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.splitlines()[-1] == "SOCKETS [] OPENAI False CODE 0", (
        done.stdout + done.stderr
    )


def test_a_model_giving_the_right_diffs_passes_every_episode(
    mined: Mined, fault_proxy: FaultProxy
) -> None:
    ordered = sorted(mined.episodes.values(), key=lambda e: e.episode_id)
    # one request at a time, in episode id order: each gets its own fix, wrapped in prose
    fault_proxy.inject(*(reply(fenced(e.fix_diff)) for e in ordered))
    args = ("--model", "tiny", "--base-url", fault_proxy.base_url, "--concurrency", "1")
    code, out, err = miner_eval(mined, *args)
    assert code == 0, out + err
    assert fault_proxy.count == 2
    # asked exactly what train.jsonl asks: its system and user messages
    train = [json.loads(line) for line in (mined.out / "train.jsonl").read_text().splitlines()]
    asked = {e["metadata"]["episode_id"]: e["messages"][:2] for e in train}
    for episode, request in zip(ordered, fault_proxy.requests, strict=True):
        assert request.json["messages"] == asked[episode.episode_id]
    model = row(summary(mined), "model-tiny")
    assert (model["label"], model["kind"]) == ("tiny", "model")
    assert (model["episodes"], model["applies_rate"], model["green_rate"]) == (2, 1.0, 1.0)
    assert sorted(model["by_error_kind"]) == ["syntax error", "undefined name"]
    assert [r["diff"] for r in results(mined, "model-tiny")] == [e.fix_diff for e in ordered]
    assert "tiny" in out and "failed requests 0" in out
    # a rerun answers from the cache: nothing sent, the same results
    before = (mined.out / "eval" / "model-tiny.jsonl").read_bytes()
    code, out, err = miner_eval(mined, *args)
    assert code == 0 and fault_proxy.count == 2, out + err
    assert "requests: 0 (2 cache hits)" in out
    assert (mined.out / "eval" / "model-tiny.jsonl").read_bytes() == before


def test_a_diff_that_does_not_apply(mined: Mined, fault_proxy: FaultProxy) -> None:
    wrong = (
        "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n"
        "@@ -1,2 +1,2 @@\n-# calc: geometry\n+# calc: shapes\n \n"
    )
    fault_proxy.always(reply(fenced(wrong)))
    code, out, err = miner_eval(mined, "--model", "tiny", "--base-url", fault_proxy.base_url)
    assert code == 0, out + err
    model = row(summary(mined), "model-tiny")
    assert (model["applies_rate"], model["green_rate"]) == (0.0, 0.0)
    assert model["outcomes"] == {"does_not_apply": 2}
    assert all(r["output"] for r in results(mined, "model-tiny"))  # the patch tool's message
    assert "diffs that did not apply 2" in out


def test_a_diff_that_applies_but_stays_red(mined: Mined, fault_proxy: FaultProxy) -> None:
    # the first lines of calc.py are the same in both red states: it applies to both
    beside = (
        "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n"
        "@@ -1,2 +1,2 @@\n-# calc: arithmetic\n+# calc: sums\n \n"
    )
    fault_proxy.always(reply(f"Try this:\n{beside}\nGood luck."))
    code, out, err = miner_eval(mined, "--model", "tiny", "--base-url", fault_proxy.base_url)
    assert code == 0, out + err
    model = row(summary(mined), "model-tiny")
    assert (model["applies_rate"], model["green_rate"]) == (1.0, 0.0)
    assert model["outcomes"] == {"red": 2}


def test_the_tiny_model_random_text_passes_nothing(mined: Mined, fault_proxy: FaultProxy) -> None:
    code, out, err = miner_eval(mined, "--model", "tiny", "--base-url", fault_proxy.base_url)
    assert code == 0, out + err
    assert fault_proxy.count == 2
    document = summary(mined)
    model = row(document, "model-tiny")
    assert model["episodes"] == 2 and model["green_rate"] == 0.0
    # whatever the random text was, each episode has an outcome; the baselines are unmoved
    assert sum(model["outcomes"].values()) == 2
    for result in results(mined, "model-tiny"):
        assert result["outcome"] != "no_diff" or result["reply"]
    assert row(document, "baseline-recorded-fix")["green_rate"] == 1.0


def test_an_unreachable_server_fails_each_request_and_the_run_finishes(
    mined: Mined, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[llm]\nmax_retries = 0\n")
    code, out, err = miner_eval(
        mined, "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--config", str(config)
    )
    assert code == 0, out + err
    failures = err.splitlines()
    assert len(failures) == 2
    assert all(": request failed (connection): " in line for line in failures), err
    model = row(summary(mined), "model-m")
    assert model["failed_requests"] == {"connection": 2}
    assert (model["episodes"], model["applies_rate"], model["green_rate"]) == (2, 0.0, 0.0)
    assert "failed requests 2 (connection 2)" in out
    assert all(r["outcome"] == "request_failed" for r in results(mined, "model-m"))


def test_episodes_without_their_repository_are_counted_and_left_out(
    mined: Mined, tmp_path: Path
) -> None:
    empty = tmp_path / "not-a-repo"
    empty.mkdir()
    code, out, err = miner_eval(mined, "--repo", str(empty))
    assert code == 0, out + err
    document = summary(mined)
    assert document["no_repo"] == 2
    for baseline in document["rows"]:
        assert baseline["episodes"] == 0 and baseline["no_repo"] == 2
        assert baseline["green_rate"] is None
    assert "2 no_repo" in out
    # a clone elsewhere, named with --repo, holds the base revision
    clone = tmp_path / "clone"
    shutil.copytree(mined.repo, clone)
    assert miner_eval(mined, "--repo", str(clone))[0] == 0
    assert row(summary(mined), "baseline-recorded-fix")["green_rate"] == 1.0


def test_split_and_limit_choose_the_episodes(mined: Mined) -> None:
    code, out, err = miner_eval(mined, "--split", "train")
    assert code == 0, out + err
    assert summary(mined)["episodes"] == 0
    assert "split train: 0 episode(s)" in out
    code, out, err = miner_eval(mined, "--split", "all", "--limit", "1")
    assert code == 0, out + err
    assert row(summary(mined), "baseline-recorded-fix")["episodes"] == 1


def test_dry_run_writes_the_requests_and_nothing_else(mined: Mined, tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    code, out, err = miner_eval(
        mined, "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--dry-run", str(requests)
    )
    assert code == 0, out + err
    lines = [json.loads(line) for line in requests.read_text().splitlines()]
    assert len(lines) == 2 and all(line["messages"][0]["role"] == "system" for line in lines)
    assert "2 request(s) written" in out
    assert not (mined.out / "eval").exists()


def test_usage_errors(mined: Mined) -> None:
    code, _, err = miner_eval(mined, "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2 and "--base-url needs a model" in err
    code, _, err = miner_eval(mined, "--split", "validation")
    assert code == 2 and "'validation' is not one of" in err


def test_rates_leave_no_repo_out_and_count_failed_requests() -> None:
    results = [
        EpisodeResult("a", "syntax error", "green", applied=True, status="green"),
        EpisodeResult("b", "syntax error", REQUEST_FAILED, failure="timeout"),
        EpisodeResult("c", "unknown", NO_REPO),
        EpisodeResult("d", "unknown", "does_not_apply"),
    ]
    row = summarize("model-m", "m", "model", results)
    assert (row.overall.episodes, row.overall.applied, row.overall.green) == (3, 1, 1)
    assert row.no_repo == 1 and row.failed_requests == {"timeout": 1}
    assert list(row.by_error_kind) == ["syntax error", "unknown"]
    assert row.by_error_kind["unknown"].episodes == 1
    assert row.by_error_kind["syntax error"].green_rate == 0.5
