"""The real LLM server and the fault proxy, driven through the official `openai` client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest

from tests.fault_proxy import (
    FaultProxy,
    cut,
    delay,
    drop,
    reject_json_schema,
    reply,
    status,
)
from tests.llm_server import LlamaServer, write_tiny_model

MODEL = "tiny"  # llama-server answers with its one model whatever the name
FIX_SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "files": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["summary", "files"],
    "additionalProperties": False,
}
JSON_SCHEMA_FORMAT: Any = {
    "type": "json_schema",
    "json_schema": {"name": "fix", "schema": FIX_SCHEMA, "strict": True},
}


class Fix(pydantic.BaseModel):
    summary: str
    files: list[str]


def client(base_url: str, *, max_retries: int = 2, timeout: float = 30.0) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=base_url, api_key="test", max_retries=max_retries, timeout=timeout
    )


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def llm(llm_server: LlamaServer) -> Iterator[openai.OpenAI]:
    with client(llm_server.base_url) as c:
        yield c


def test_tiny_model_is_deterministic(tmp_path: Path) -> None:
    one = write_tiny_model(tmp_path / "a.gguf", seed=3).read_bytes()
    assert one == write_tiny_model(tmp_path / "b.gguf", seed=3).read_bytes()
    assert one != write_tiny_model(tmp_path / "c.gguf", seed=4).read_bytes()
    assert len(one) < 1_000_000


def test_the_model_is_listed_under_its_alias(llm: openai.OpenAI) -> None:
    assert [model.id for model in llm.models.list()] == [MODEL]


def test_plain_chat_answers_text(llm: openai.OpenAI) -> None:
    answer = llm.chat.completions.create(model=MODEL, messages=ask("Say hello."), max_tokens=24)
    content = answer.choices[0].message.content
    assert isinstance(content, str) and content
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage is not None
    assert 0 < answer.usage.completion_tokens <= 24
    assert answer.usage.prompt_tokens > len("Say hello.")


def test_json_schema_answers_validate(llm: openai.OpenAI) -> None:
    for i in range(10):
        answer = llm.chat.completions.create(
            model=MODEL,
            messages=ask(f"Describe fix number {i}: renamed helper_{i} in src/m{i}.py"),
            response_format=JSON_SCHEMA_FORMAT,
            max_tokens=400,
        )
        content = answer.choices[0].message.content
        assert content is not None
        data = json.loads(content)
        assert set(data) == {"summary", "files"}, content
        assert isinstance(data["summary"], str), content
        assert isinstance(data["files"], list), content
        assert all(isinstance(f, str) for f in data["files"]), content


def test_parse_fills_a_pydantic_model(llm: openai.OpenAI) -> None:
    answer = llm.chat.completions.parse(
        model=MODEL, messages=ask("Describe the fix."), response_format=Fix, max_tokens=400
    )
    assert isinstance(answer.choices[0].message.parsed, Fix)


def test_json_object_mode_answers_an_object(llm: openai.OpenAI) -> None:
    answer = llm.chat.completions.create(
        model=MODEL,
        messages=ask("Answer in JSON."),
        response_format={"type": "json_object"},
        max_tokens=400,
    )
    content = answer.choices[0].message.content
    assert content is not None
    assert isinstance(json.loads(content), dict)


def test_long_prompts_and_concurrent_requests_are_served(llm: openai.OpenAI) -> None:
    error_log = "src/app.py:12: error: name 'helper' is not defined\n" * 60  # ~3,000 chars

    def one(i: int) -> int:
        answer = llm.chat.completions.create(
            model=MODEL, messages=ask(f"{i}\n{error_log}"), max_tokens=8
        )
        assert answer.usage is not None
        return answer.usage.prompt_tokens

    with ThreadPoolExecutor(4) as pool:
        tokens = list(pool.map(one, range(4)))
    assert all(n > len(error_log) for n in tokens)


def test_a_prompt_past_the_slot_context_is_a_bad_request(llm: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="context size"):
        llm.chat.completions.create(model=MODEL, messages=ask("x" * 17_000), max_tokens=4)


def test_max_tokens_truncates_a_json_answer(llm: openai.OpenAI) -> None:
    answer = llm.chat.completions.create(
        model=MODEL, messages=ask("Hi"), response_format=JSON_SCHEMA_FORMAT, max_tokens=5
    )
    assert answer.choices[0].finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer.choices[0].message.content or "")


def test_proxy_forwards_and_records(fault_proxy: FaultProxy) -> None:
    with client(fault_proxy.base_url) as c:
        answer = c.chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=4)
        streamed = c.chat.completions.create(
            model=MODEL, messages=ask("Hi again"), max_tokens=6, stream=True
        )
        chunks = [chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices]
    assert answer.choices[0].message.content
    assert "".join(chunks)
    assert fault_proxy.count == 2
    first, second = fault_proxy.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.json["messages"] == ask("Hi")
    assert second.json["stream"] is True


def test_429_with_retry_after_is_retried(fault_proxy: FaultProxy) -> None:
    fault_proxy.inject(status(429, retry_after=1))
    started = time.monotonic()
    with client(fault_proxy.base_url, max_retries=2) as c:
        answer = c.chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=4)
    assert answer.choices[0].message.content
    assert fault_proxy.count == 2
    assert time.monotonic() - started >= 1.0  # the client waited as Retry-After said


def test_429_without_retries_is_a_rate_limit_error(fault_proxy: FaultProxy) -> None:
    fault_proxy.inject(status(429, retry_after=1))
    with client(fault_proxy.base_url, max_retries=0) as c, pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=4)
    assert fault_proxy.count == 1


def test_500_is_retried(fault_proxy: FaultProxy) -> None:
    fault_proxy.inject(status(500))
    with client(fault_proxy.base_url, max_retries=2) as c:
        answer = c.chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=4)
    assert answer.choices[0].message.content
    assert [r.fault for r in fault_proxy.requests] == [status(500), None]
    assert [r.headers.get("x-stainless-retry-count") for r in fault_proxy.requests] == ["0", "1"]


@pytest.mark.parametrize("fault", [drop(), cut()], ids=["drop", "cut"])
def test_broken_connections_are_connection_errors(fault_proxy: FaultProxy, fault: Any) -> None:
    fault_proxy.inject(fault)
    with (
        client(fault_proxy.base_url, max_retries=0) as c,
        pytest.raises(openai.APIConnectionError),
    ):
        c.chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=4)
    assert fault_proxy.count == 1


def test_delay_past_the_client_timeout_is_a_timeout(fault_proxy: FaultProxy) -> None:
    fault_proxy.inject(delay(30))  # the proxy cuts the wait short when it stops
    with (
        client(fault_proxy.base_url, max_retries=0, timeout=0.3) as c,
        pytest.raises(openai.APITimeoutError),
    ):
        c.chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=4)


def test_reject_json_schema_emulates_a_server_without_structured_output(
    fault_proxy: FaultProxy,
) -> None:
    fault_proxy.always(reject_json_schema())
    with client(fault_proxy.base_url, max_retries=2) as c:
        with pytest.raises(openai.BadRequestError, match="json_schema"):
            c.chat.completions.create(
                model=MODEL, messages=ask("Hi"), response_format=JSON_SCHEMA_FORMAT, max_tokens=4
            )
        plain = c.chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=4)
    assert plain.choices[0].message.content
    assert fault_proxy.count == 2  # a 400 is not retried


def test_reply_answers_the_given_content(fault_proxy: FaultProxy) -> None:
    fault_proxy.inject(reply("not json"), reply("streamed"))
    with client(fault_proxy.base_url) as c:
        answer = c.chat.completions.create(
            model=MODEL, messages=ask("Hi"), response_format=JSON_SCHEMA_FORMAT
        )
        streamed = c.chat.completions.create(
            model=MODEL,
            messages=ask("Hi"),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(streamed)
    assert answer.choices[0].message.content == "not json"
    assert answer.usage is not None and answer.usage.completion_tokens == len("not json")
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "streamed"
    assert chunks[-1].usage is not None
    assert fault_proxy.requests[0].json["response_format"]["type"] == "json_schema"
