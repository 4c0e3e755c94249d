"""The LLM describer's parts that need no server: templates, inputs, answers, cache, config."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from miner.llm.answers import (
    MAX_ANSWER_CHARS,
    AnswerError,
    AnswerTooLong,
    parse_description,
    parse_prompts,
)
from miner.llm.cache import AnswerCache, CachedAnswer, cache_key
from miner.llm.describer import mask
from miner.llm.inputs import CHARS_PER_TOKEN, clip, describe_inputs, prompt_inputs
from miner.llm.templates import DESCRIBE, PROMPTS, load_template
from miner.record import ContextFile, Episode, PromptCandidate, diff_paths
from snapshotter.config import load_config
from snapshotter.errors import ConfigError
from tests.test_miner_describe import make_episode

FIX = """diff --git a/src/calc.py b/src/calc.py
--- a/src/calc.py
+++ b/src/calc.py
@@ -1,2 +1,2 @@
-def add(a, b)
+def add(a, b):
     return a + b
"""


def test_templates_fill_every_placeholder_and_carry_a_version() -> None:
    for version, keys in (
        (DESCRIBE, ("error", "break_diff", "fix_diff", "context")),
        (PROMPTS, ("error", "problem", "context")),
    ):
        template = load_template(version)
        values = {k: f"<{k}>" for k in keys}
        system, user = template.messages(values)
        assert system["role"] == "system" and "JSON" in system["content"]
        assert all(f"<{k}>" in user["content"] for k in keys)
        assert template.version == version and len(template.digest) == 16
        with pytest.raises(KeyError):
            template.messages({})


def test_stage_two_never_sees_the_fix() -> None:
    episode = make_episode("calc.py:1: SyntaxError: expected ':'", "src/calc.py")
    episode = replace(episode, fix_diff=FIX, break_diff="diff --git a/x b/x\n")
    values = prompt_inputs(episode, "add lacks a colon", 6000)
    assert "def add(a, b):" not in "".join(values.values())
    assert set(values) == {"error", "problem", "context"}
    assert FIX.strip() in describe_inputs(episode, 6000)["fix_diff"]


def test_inputs_fit_the_token_budget() -> None:
    big = "\n".join(f"line {i} " + "x" * 60 for i in range(5000))
    episode = replace(
        make_episode(big, "a.py"),
        fix_diff=big,
        break_diff=big,
        context=(ContextFile("a.py", big), ContextFile("b.py", big)),
    )
    for tokens in (300, 2000, 6000):
        values = describe_inputs(episode, tokens)
        total = sum(len(v) for v in values.values())
        assert total <= tokens * CHARS_PER_TOKEN * 1.05  # markers may add a few characters
        assert "more lines cut" in values["error"]
        assert values["error"].startswith("line 0 ")  # the head: the first error is the cause


def test_clip_keeps_whole_lines_and_says_what_it_cut() -> None:
    text = "one\ntwo\nthree\nfour\n"
    assert clip(text, 100) == text
    assert clip(text, 9) == "one\ntwo\n[... 2 more lines cut]"


def test_answers_parse_strictly() -> None:
    good = {
        "description": "Adds the colon.",
        "problem": "A colon is missing.",
        "error_kind": "Syntax Error",
    }
    assert parse_description(json.dumps(good)).error_kind == "syntax error"
    # plain-text servers wrap JSON in prose and fences: the first object is taken
    fenced = "Sure!\n```json\n" + json.dumps(good) + "\n```\nanything"
    assert parse_description(fenced).description == "Adds the colon."
    for bad in (
        "no json here",
        "{not json",
        '{"description": ""}',
        "[1, 2]",
        json.dumps({**good, "problem": 3}),
    ):
        with pytest.raises(AnswerError):
            parse_description(bad)
    with pytest.raises(AnswerTooLong):
        parse_description("x" * (MAX_ANSWER_CHARS + 1))
    ideas = parse_prompts('{"lazy": ["fix it ", "fix calc"], "descriptive": ["The add function."]}')
    assert ideas.lazy == ("fix it", "fix calc") and len(ideas.descriptive) == 1
    with pytest.raises(AnswerError, match="lazy"):
        parse_prompts('{"lazy": [], "descriptive": ["x"]}')
    with pytest.raises(AnswerError, match="only strings"):
        parse_prompts('{"lazy": [1], "descriptive": ["x"]}')


def test_cache_round_trip_is_private_and_survives_reopening(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "hi"}]
    key = cache_key("m", "describe.v1", "abc", messages)
    assert key != cache_key("m2", "describe.v1", "abc", messages)
    assert key != cache_key("m", "describe.v2", "abc", messages)
    assert key != cache_key("m", "describe.v1", "abd", messages)
    assert key != cache_key("m", "describe.v1", "abc", [{"role": "user", "content": "hi!"}])
    path = tmp_path / "cache.sqlite"
    cache = AnswerCache(path)
    assert cache.get(key) is None
    cache.put(key, "m", "describe.v1", CachedAnswer("{}", 3, 4))
    cache.close()
    reopened = AnswerCache(path)
    assert reopened.get(key) == CachedAnswer("{}", 3, 4) and len(reopened) == 1
    reopened.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_mask_hides_only_whole_tokens() -> None:
    hidden = mask("call total_sum in calc.total_sum, not total_summary", frozenset({"total_sum"}))
    assert hidden == "call ... in calc.total_sum, not total_summary"
    assert mask("nothing", frozenset()) == "nothing"


def test_episode_round_trips_through_a_row() -> None:
    episode = replace(
        make_episode("err", "src/calc.py"),
        fix_diff=FIX,
        context=(ContextFile("src/calc.py", "def add(a, b)\n"),),
        prompt_candidates=(PromptCandidate("fix calc", "lazy", ("too_short",)),),
        description_status="described",
        llm_tokens_in=10,
    )
    again = Episode.from_row(episode.to_row())
    assert again == replace(episode, fix_paths=("src/calc.py",))
    assert diff_paths(FIX) == ("src/calc.py",)


def test_llm_config_section(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[llm]\nmodel = "qwen"\nbase_url = "http://127.0.0.1:9/v1"\nconcurrency = 2\n'
    )
    llm = load_config(config).llm
    assert (llm.model, llm.base_url, llm.concurrency) == ("qwen", "http://127.0.0.1:9/v1", 2)
    config.write_text('[llm]\napi_key = "sk-secret-value"\n')
    assert "sk-secret-value" not in repr(load_config(config))
    config.write_text('[llm]\nbase_url = "ftp://x"\n')
    with pytest.raises(ConfigError, match=r"llm.base_url must be an http:// or https:// URL"):
        load_config(config)
    config.write_text("[llm]\nconcurency = 2\n")
    with pytest.raises(ConfigError, match=r"unknown key llm.concurency"):
        load_config(config)


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


@pytest.mark.parametrize("offline", [False, True])
def test_no_model_or_offline_opens_no_socket(tmp_path: Path, offline: bool) -> None:
    from tests.llm_episodes import write_kept_episodes

    data = write_kept_episodes(tmp_path / "data", 2)
    config = tmp_path / "config.toml"
    # --offline wins over a configured model; without --offline there is no model
    config.write_text('[llm]\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\n' if offline else "")
    args = ["run", "--data-dir", str(data), "--out", str(tmp_path / "out"), "--config", str(config)]
    done = subprocess.run(
        [sys.executable, "-c", SOCKET_GUARD, *args, *(["--offline"] if offline else [])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.splitlines()[-1] == "SOCKETS [] OPENAI False CODE 0", (
        done.stdout + done.stderr
    )
    assert "kept:            2" in done.stdout


def test_describe_names_an_episodes_file_it_cannot_read(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from miner.cli import cli

    out = tmp_path / "out"
    out.mkdir()
    target = out / "episodes.parquet"
    args = ["describe", "--out", str(out), "--model", "m", "--base-url", "http://127.0.0.1:9/v1"]
    for content in (b"", b"not parquet at all", None):
        if content is None:  # another program's Parquet file
            pq.write_table(pa.table({"x": [1, 2]}), target)
        else:
            target.write_bytes(content)
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert result.output.startswith(f"Error: cannot read {target}: ")
        assert len(result.output.splitlines()) == 1
