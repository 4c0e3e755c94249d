"""The LLM describer end to end: ``miner run --model`` and ``miner describe``
against a real llama-server (the tiny model), through a fault-injecting proxy.

The tiny model's answers are random text under the JSON grammar, so these
tests assert what the pipeline does with them (parsed, stored, filtered,
cached), and get crafted answers, where a test needs a particular one, from
the proxy's ``reply`` fault.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from miner.cli import cli
from miner.llm.cache import CACHE_FILE
from tests.fault_proxy import (
    FaultProxy,
    cut,
    delay,
    drop,
    reject_json_schema,
    reject_response_format,
    reply,
    status,
)
from tests.llm_episodes import write_kept_episodes
from tests.llm_server import LlamaServer

# small requests: the tiny model's tokens are single characters
CONTEXT = ("--context-tokens", "300")


def miner(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def run_llm(data: Path, out: Path, proxy: FaultProxy, *extra: str) -> tuple[int, str]:
    return miner(
        "run", "--data-dir", str(data), "--out", str(out), "--model", "tiny",
        "--base-url", proxy.base_url, *CONTEXT, *extra,
    )  # fmt: skip


def episodes(out: Path) -> list[dict[str, Any]]:
    rows = duckdb.sql(f"SELECT * FROM '{out}/episodes.parquet' ORDER BY episode_id")
    columns = [c for c in rows.columns]
    return [dict(zip(columns, row, strict=True)) for row in rows.fetchall()]


def stage1(description: str = "Adds the missing colon after the signature of add0.") -> str:
    return json.dumps(
        {"description": description, "problem": "The def line of add0 lacks a colon.",
         "error_kind": "syntax error"}
    )  # fmt: skip


def stage2(lazy: list[str], descriptive: list[str] | None = None) -> str:
    return json.dumps(
        {"lazy": lazy, "descriptive": descriptive or ["The module does not parse; make it parse."]}
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_kept_episodes(tmp_path / "data", 3)


def test_every_kept_episode_is_described_through_the_real_server(
    data: Path, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    out = tmp_path / "out"
    code, output = run_llm(data, out, fault_proxy)
    assert code == 0, output
    rows = episodes(out)
    assert len(rows) == 3 and all(r["kept"] for r in rows)
    # two stages an episode, answered by the model in json_schema mode
    assert fault_proxy.count == 6
    formats = {r.json["response_format"]["type"] for r in fault_proxy.requests}
    assert formats == {"json_schema"}
    for row in rows:
        assert row["describer"] == "tiny"
        assert row["template_version"] == "describe.v1+prompts.v1"
        assert row["description_status"] in ("described", "prompt_filtered"), row
        assert row["description"] and row["error_kind"]
        assert len(row["prompt_candidates"]) >= 2
        assert {c["style"] for c in row["prompt_candidates"]} == {"lazy", "descriptive"}
        assert row["llm_tokens_in"] > 0 and row["llm_tokens_out"] > 0
        if row["description_status"] == "prompt_filtered":
            assert row["prompt"] is None
            assert all(c["filters"] for c in row["prompt_candidates"])
    assert "described:" in output and "requests:        6 (0 cache hits)" in output
    # stage 2 was shown what the developer saw, never the fix
    for request in fault_proxy.requests:
        user = request.json["messages"][-1]["content"]
        if "Problem:" in user:
            assert "offset_" not in user and "Edit that repaired it" not in user


def test_a_rerun_sends_nothing_and_writes_the_same_files(
    data: Path, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    out = tmp_path / "out"
    assert run_llm(data, out, fault_proxy)[0] == 0
    first = (out / "episodes.parquet").read_bytes(), (out / "train.jsonl").read_bytes()
    sent = fault_proxy.count
    code, output = run_llm(data, out, fault_proxy)
    assert code == 0 and fault_proxy.count == sent
    assert "requests:        0 (6 cache hits)" in output
    assert ((out / "episodes.parquet").read_bytes(), (out / "train.jsonl").read_bytes()) == first
    # --refresh asks again
    assert run_llm(data, out, fault_proxy, "--refresh")[0] == 0
    assert fault_proxy.count == sent + 6


def test_a_crafted_answer_gives_the_best_lazy_prompt_and_a_training_line(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    data = write_kept_episodes(tmp_path / "data", 1)
    out = tmp_path / "out"
    fault_proxy.inject(
        reply(stage1()),
        reply(stage2(["add offset_0 to add0", "fix the syntax error in mod0.py", "fix"])),
    )
    code, output = run_llm(data, out, fault_proxy)
    assert code == 0, output
    (row,) = episodes(out)
    assert row["description_status"] == "described"
    assert row["prompt"] == "fix the syntax error in mod0.py"
    reasons = {c["text"]: c["filters"] for c in row["prompt_candidates"]}
    assert "leaks_solution" in reasons["add offset_0 to add0"]
    assert reasons["fix"] == ["too_short"]
    assert reasons["fix the syntax error in mod0.py"] == []
    line = json.loads((out / "train.jsonl").read_text())
    assert line["messages"][1]["content"].endswith("fix the syntax error in mod0.py")
    assert line["metadata"]["describer"] == "tiny"


def test_an_episode_whose_every_candidate_fails_is_prompt_filtered(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    data = write_kept_episodes(tmp_path / "data", 1)
    out = tmp_path / "out"
    fault_proxy.inject(
        reply(stage1()),
        reply(
            stage2(
                ["As an AI I cannot help", "```def add0(a, b):```"], ["Sorry, I'll do it tomorrow."]
            )
        ),
    )
    code, output = run_llm(data, out, fault_proxy)
    assert code == 0, output
    (row,) = episodes(out)
    assert row["description_status"] == "prompt_filtered" and row["prompt"] is None
    assert (out / "train.jsonl").read_text() == ""
    assert "prompt filtered: 1" in output


def test_a_server_without_json_schema_is_asked_in_json_mode(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    data = write_kept_episodes(tmp_path / "data", 1)
    out = tmp_path / "out"
    # the proxy rejects json_schema like a server without structured output; the
    # tiny model cannot follow a schema it is only told about, so the answers in
    # json_object mode come from the proxy
    fault_proxy.inject(
        reject_json_schema(), reply(stage1()), reply(stage2(["fix the syntax error in mod0.py"]))
    )
    code, output = run_llm(data, out, fault_proxy)
    assert code == 0, output
    assert "json_schema rejected (HTTP 400): using json_object" in output
    sent = [r.json.get("response_format", {}).get("type") for r in fault_proxy.requests]
    assert sent == ["json_schema", "json_object", "json_object"]  # rejected once only
    assert [r["description_status"] for r in episodes(out)] == ["described"]
    # the schema travels in the system message instead
    assert "JSON Schema" in fault_proxy.requests[1].json["messages"][0]["content"]
    # the cache does not depend on the format: a rerun sends nothing
    assert run_llm(data, out, fault_proxy)[0] == 0
    assert fault_proxy.count == 3


def test_a_server_without_json_mode_is_asked_for_plain_text(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    data = write_kept_episodes(tmp_path / "data", 1)
    out = tmp_path / "out"
    # plain-text answers wrap the JSON in prose and fences: the strict parser finds it
    fault_proxy.inject(
        reject_response_format(),
        reject_response_format(),
        reply("Sure! Here it is:\n```json\n" + stage1() + "\n```"),
        reply(stage2(["fix the syntax error in mod0.py"]) + "\nHope this helps."),
    )
    code, output = run_llm(data, out, fault_proxy)
    assert code == 0, output
    assert "json_object rejected (HTTP 400): using text" in output
    sent = [(r.json.get("response_format") or {}).get("type") for r in fault_proxy.requests]
    assert sent == ["json_schema", "json_object", None, None]
    (row,) = episodes(out)
    assert (row["description_status"], row["prompt"]) == (
        "described",
        "fix the syntax error in mod0.py",
    )


def test_the_real_servers_free_text_that_is_not_json_fails_as_bad_json(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    data = write_kept_episodes(tmp_path / "data", 1)
    out = tmp_path / "out"
    fault_proxy.always(reject_response_format())
    code, output = run_llm(data, out, fault_proxy)
    assert code == 0, output
    sent = [(r.json.get("response_format") or {}).get("type") for r in fault_proxy.requests]
    assert sent == ["json_schema", "json_object", None, None]  # the answer, then its retry
    (row,) = episodes(out)
    assert (row["description_status"], row["failure_reason"]) == ("failed", "bad_json")


def test_a_bad_request_that_is_not_about_the_format_keeps_the_format(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    data = write_kept_episodes(tmp_path / "data", 1)
    out = tmp_path / "out"
    fault_proxy.inject(status(400))  # "injected by FaultProxy": nothing about the format
    code, output = run_llm(data, out, fault_proxy)
    assert code == 0, output
    (row,) = episodes(out)
    assert (row["description_status"], row["failure_reason"]) == ("failed", "bad_request")
    assert fault_proxy.count == 1 and "using json_object" not in output


def test_an_answer_that_does_not_parse_is_retried_once_then_failed(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    data = write_kept_episodes(tmp_path / "data", 1)
    out = tmp_path / "out"
    fault_proxy.inject(reply("not json"), reply("{still not json"))
    code, output = run_llm(data, out, fault_proxy)
    assert code == 0, output
    (row,) = episodes(out)
    assert (row["description_status"], row["failure_reason"]) == ("failed", "bad_json")
    assert "failed:          1 (bad_json 1)" in output
    retry = fault_proxy.requests[1].json["messages"]
    assert retry[-2] == {"role": "assistant", "content": "not json"}
    assert "not valid: no JSON object in the answer" in retry[-1]["content"]
    # a fixed answer on the retry is accepted
    fault_proxy.inject(reply("nope"), reply(stage1()))
    code, output = miner("describe", "--out", str(out), "--model", "tiny",
                         "--base-url", fault_proxy.base_url, *CONTEXT)  # fmt: skip
    assert code == 0, output
    (row,) = episodes(out)
    assert row["description_status"] in ("described", "prompt_filtered")
    assert row["description"] == "Adds the missing colon after the signature of add0."


def test_rate_limits_and_server_errors_are_retried_with_retry_after(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    data = write_kept_episodes(tmp_path / "data", 1)
    out = tmp_path / "out"
    config = tmp_path / "config.toml"
    config.write_text("[llm]\nmax_retries = 4\n")
    fault_proxy.inject(status(429, retry_after=1), status(500), drop(), cut())
    began = time.monotonic()
    code, output = run_llm(data, out, fault_proxy, "--config", str(config))
    assert code == 0, output
    assert time.monotonic() - began >= 1.0  # Retry-After was honoured
    (row,) = episodes(out)
    assert row["description_status"] in ("described", "prompt_filtered")
    assert fault_proxy.count == 6  # four faults, then the two stages


@pytest.mark.parametrize(
    ("fault", "reason"),
    [(status(500), "server_error"), (status(429), "rate_limited"), (cut(), "connection")],
)
def test_one_episodes_failure_never_stops_the_batch_and_only_it_is_redone(
    data: Path, tmp_path: Path, fault_proxy: FaultProxy, fault: Any, reason: str
) -> None:
    out = tmp_path / "out"
    config = tmp_path / "config.toml"
    config.write_text("[llm]\nmax_retries = 1\nconcurrency = 1\n")
    # the first episode's first request and its one retry fail
    fault_proxy.inject(fault, fault)
    code, output = run_llm(data, out, fault_proxy, "--config", str(config))
    assert code == 0, output
    rows = episodes(out)
    failed = [r for r in rows if r["description_status"] == "failed"]
    assert [r["failure_reason"] for r in failed] == [reason]
    assert all(r["description"] for r in rows if r not in failed)
    assert f"failed:          1 ({reason} 1)" in output
    sent = fault_proxy.count
    code, output = miner(
        "describe", "--out", str(out), "--only-failed", "--model", "tiny",
        "--base-url", fault_proxy.base_url, "--config", str(config), *CONTEXT,
    )  # fmt: skip
    assert code == 0, output
    assert fault_proxy.count == sent + 2  # the failed episode's two stages, nothing else
    assert "described:       " in output and " of 1\n" in output
    assert all(r["description_status"] != "failed" for r in episodes(out))


def test_an_unreachable_server_fails_each_episode_with_the_reason(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    config = tmp_path / "config.toml"
    config.write_text("[llm]\nmax_retries = 0\n")
    code, output = miner(
        "run", "--data-dir", str(data), "--out", str(out), "--model", "tiny",
        "--base-url", "http://127.0.0.1:9/v1", "--config", str(config),
    )  # fmt: skip
    assert code == 0, output
    assert "failed:          3 (connection 3)" in output
    assert {r["failure_reason"] for r in episodes(out)} == {"connection"}


def test_an_answer_far_over_the_cap_fails_as_too_long(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    data = write_kept_episodes(tmp_path / "data", 1)
    out = tmp_path / "out"
    fault_proxy.inject(reply('{"description": "' + "x" * 50_000 + '"}'))
    assert run_llm(data, out, fault_proxy)[0] == 0
    (row,) = episodes(out)
    assert (row["description_status"], row["failure_reason"]) == ("failed", "too_long")


def test_the_token_budget_stops_the_run_cleanly(
    data: Path, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    out = tmp_path / "out"
    code, output = run_llm(data, out, fault_proxy, "--max-tokens-total", "1", "--concurrency", "1")
    assert code == 0, output
    assert fault_proxy.count == 1  # the first request spent the budget
    reasons = sorted(r["failure_reason"] or "" for r in episodes(out))
    assert reasons == ["budget", "budget", "budget"]
    assert "failed:          3 (budget 3)" in output


def test_dry_run_writes_the_requests_and_sends_nothing(
    data: Path, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    out = tmp_path / "out"
    requests = tmp_path / "requests.jsonl"
    code, output = run_llm(data, out, fault_proxy, "--dry-run", str(requests))
    assert code == 0, output
    assert fault_proxy.count == 0
    lines = [json.loads(line) for line in requests.read_text().splitlines()]
    assert len(lines) == 3 and {line["template"] for line in lines} == {"describe.v1"}
    assert all(line["response_format"]["type"] == "json_schema" for line in lines)
    assert "SyntaxError" in lines[0]["messages"][1]["content"]
    assert "nothing was sent and no output was written" in output
    assert not (out / "episodes.parquet").exists()


def test_a_killed_run_resumes_from_its_cache(
    data: Path, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    out = tmp_path / "out"
    fault_proxy.always(delay(0.3))
    command = [
        sys.executable, "-m", "miner", "run", "--data-dir", str(data), "--out", str(out),
        "--model", "tiny", "--base-url", fault_proxy.base_url, "--concurrency", "1", *CONTEXT,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cache = out / CACHE_FILE
        deadline = time.monotonic() + 60
        answered = 0
        while answered < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            if cache.exists():
                with sqlite3.connect(cache) as db:
                    try:
                        (answered,) = db.execute("SELECT count(*) FROM answers").fetchone()
                    except sqlite3.OperationalError:
                        answered = 0
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    assert 2 <= answered < 6
    with sqlite3.connect(cache) as db:
        (kept,) = db.execute("SELECT count(*) FROM answers").fetchone()
    fault_proxy.always(None)
    sent = fault_proxy.count
    code, output = run_llm(data, out, fault_proxy)
    assert code == 0, output
    assert fault_proxy.count - sent == 6 - kept
    assert f"({kept} cache hits)" in output


def test_the_api_key_is_sent_but_never_stored_or_printed(
    tmp_path: Path,
    fault_proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    llm_server: LlamaServer,
) -> None:
    data = write_kept_episodes(tmp_path / "data", 1)
    out = tmp_path / "out"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-0123456789")
    code, output = run_llm(data, out, fault_proxy, "--dry-run", str(tmp_path / "req.jsonl"))
    assert code == 0 and "sk-test" not in output
    code, output = run_llm(data, out, fault_proxy)
    assert code == 0 and "sk-test" not in output
    for path in out.iterdir():
        assert b"sk-test-key" not in path.read_bytes(), path
    assert b"sk-test-key" not in (tmp_path / "req.jsonl").read_bytes()


def test_a_request_over_its_timeout_fails_as_timeout(
    tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    data = write_kept_episodes(tmp_path / "data", 1)
    out = tmp_path / "out"
    config = tmp_path / "config.toml"
    config.write_text("[llm]\nmax_retries = 0\n")
    fault_proxy.inject(delay(5))
    began = time.monotonic()
    code, output = run_llm(data, out, fault_proxy, "--timeout", "0.5", "--config", str(config))
    assert code == 0, output
    assert time.monotonic() - began < 4
    (row,) = episodes(out)
    assert (row["description_status"], row["failure_reason"]) == ("failed", "timeout")


def test_describe_limit_describes_at_most_n_episodes(
    data: Path, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    out = tmp_path / "out"
    assert miner("run", "--data-dir", str(data), "--out", str(out))[0] == 0
    assert {r["describer"] for r in episodes(out)} == {"offline"}
    code, output = miner(
        "describe", "--out", str(out), "--limit", "2", "--model", "tiny",
        "--base-url", fault_proxy.base_url, *CONTEXT,
    )  # fmt: skip
    assert code == 0, output
    assert fault_proxy.count == 4
    assert sorted(r["describer"] for r in episodes(out)) == ["offline", "tiny", "tiny"]
    # the offline episode keeps its description and its line in train.jsonl
    lines = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert "offline" in {line["metadata"]["describer"] for line in lines}
