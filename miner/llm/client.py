"""One model behind the ``openai`` client: the only module that imports it.

What it adds to ``AsyncOpenAI`` (which already retries 408/409/429/5xx and
dropped connections with backoff, honouring ``Retry-After``):

* a bound on requests in flight (``concurrency``) and a timeout per request;
* the answer cache: a cached answer costs no request;
* the response-format ladder: ``json_schema`` first; a server that rejects it
  (400/422, or a 500 that names the format) is asked in ``json_object`` mode,
  then in plain text with the schema spelled out, for the rest of the run;
* one retry of an answer that does not parse, with the parse error;
* a token budget for the run, and ``--dry-run``: requests written to a file
  for a person to review, nothing sent.

Failures come out as :class:`RequestFailed` with a short ``reason`` that the
episode records (``rate_limited``, ``server_error``, ``connection``,
``timeout``, ``bad_request``, ``bad_json``, ``too_long``, ``budget``).

:meth:`LLMClient.ask_text` asks for a plain-text answer (``miner eval`` wants a
diff, not JSON) with the same cache, limits, budget and dry run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import openai
from openai.types.chat import ChatCompletion

from miner.errors import MinerError
from miner.llm.answers import AnswerError, AnswerTooLong
from miner.llm.cache import AnswerCache, CachedAnswer, cache_key
from miner.llm.templates import PromptTemplate

T = TypeVar("T")

FORMATS = ("json_schema", "json_object", "text")
# tokens a stage may answer with: a description is a few sentences
MAX_ANSWER_TOKENS = 1024
# tokens a plain-text answer may take (ask_text): a diff of a focused fix, with some prose
MAX_TEXT_TOKENS = 4096
# words of the errors servers give for a response format they do not support
_FORMAT_WORDS = ("response_format", "response format", "json_schema", "schema", "grammar")


class RequestFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DryRunStop(Exception):
    """The request was written to the dry-run file; nothing was sent."""


@dataclass(frozen=True)
class LLMOptions:
    model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never printed or stored
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 3
    max_tokens_total: int | None = None
    context_tokens: int = 6000
    refresh: bool = False
    dry_run: Path | None = None


@dataclass
class Usage:
    requests: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    fallbacks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    value: Any
    tokens_in: int
    tokens_out: int
    cached: bool


def _is_format_rejection(exc: openai.APIStatusError) -> bool:
    """A server refusing the response format (not, say, a prompt over its context)."""
    if exc.status_code not in (400, 422) and exc.status_code < 500:
        return False
    text = f"{exc.message} {exc.body}".lower()
    return any(word in text for word in _FORMAT_WORDS)


def _failure(exc: openai.OpenAIError) -> RequestFailed:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, openai.APITimeoutError):
        return RequestFailed("timeout", detail)
    if isinstance(exc, openai.APIConnectionError):
        return RequestFailed("connection", detail)
    if isinstance(exc, openai.RateLimitError):
        return RequestFailed("rate_limited", detail)
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return RequestFailed("server_error", f"HTTP {exc.status_code}: {detail}")
        return RequestFailed("bad_request", f"HTTP {exc.status_code}: {detail}")
    if isinstance(exc, openai.LengthFinishReasonError):
        return RequestFailed("too_long", detail)
    return RequestFailed("bad_response", detail)


class LLMClient:
    def __init__(self, options: LLMOptions, cache: AnswerCache) -> None:
        self.options = options
        self.cache = cache
        self.usage = Usage()
        api_key = options.api_key
        if api_key is None:
            if options.base_url is None:
                raise MinerError(
                    "no API key for the OpenAI API: set OPENAI_API_KEY, or give --base-url"
                    " for a server that needs none"
                )
            api_key = "unused"  # local servers ignore it; the client requires one
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=options.base_url,
            timeout=options.timeout,
            max_retries=options.max_retries,
        )
        self._slots = asyncio.Semaphore(max(options.concurrency, 1))
        self._format = 0
        self._dry_run: IO[str] | None = None
        if options.dry_run is not None:
            try:
                self._dry_run = open(options.dry_run, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise MinerError(f"cannot write {options.dry_run}: {exc.strerror}") from exc

    async def aclose(self) -> None:
        await self._client.close()
        if self._dry_run is not None:
            self._dry_run.close()

    def budget_left(self) -> bool:
        limit = self.options.max_tokens_total
        return limit is None or self.usage.tokens_in + self.usage.tokens_out < limit

    async def ask(
        self,
        template: PromptTemplate,
        values: dict[str, str],
        schema_name: str,
        schema: dict[str, Any],
        parse: Callable[[str], T],
    ) -> Answer:
        """``template`` filled with ``values``, answered (cache first) and parsed."""
        messages = template.messages(values)
        key = cache_key(self.options.model, template.version, template.digest, messages)
        if not self.options.refresh and (hit := self.cache.get(key)) is not None:
            try:
                value = parse(hit.content)
            except AnswerError:
                pass  # a cache written by an older parser: ask again
            else:
                self.usage.cache_hits += 1
                return Answer(value, hit.tokens_in, hit.tokens_out, cached=True)
        if self._dry_run is not None:
            self._write_dry_run(template.version, messages, schema_name, schema)
            raise DryRunStop
        content, tokens_in, tokens_out = await self._complete(messages, schema_name, schema)
        try:
            value = parse(content)
        except AnswerTooLong as exc:
            raise RequestFailed("too_long", str(exc)) from exc
        except AnswerError as exc:
            # once more, telling the model what was wrong with its answer
            retry = [
                *messages,
                {"role": "assistant", "content": content[:4000]},
                {
                    "role": "user",
                    "content": f"That answer is not valid: {exc}. Reply with only the JSON object.",
                },
            ]
            content, more_in, more_out = await self._complete(retry, schema_name, schema)
            tokens_in, tokens_out = tokens_in + more_in, tokens_out + more_out
            try:
                value = parse(content)
            except AnswerTooLong as exc2:
                raise RequestFailed("too_long", str(exc2)) from exc2
            except AnswerError as exc2:
                raise RequestFailed("bad_json", str(exc2)) from exc2
        self.cache.put(
            key, self.options.model, template.version, CachedAnswer(content, tokens_in, tokens_out)
        )
        return Answer(value, tokens_in, tokens_out, cached=False)

    async def ask_text(
        self,
        messages: list[dict[str, str]],
        cache_version: str,
        max_tokens: int = MAX_TEXT_TOKENS,
    ) -> Answer:
        """``messages`` answered in plain text (cache first); ``value`` is the reply.

        ``cache_version`` names the request's shape (the caller's prompt version) and is
        part of the cache key with the messages.  A reply cut at ``max_tokens`` is a
        :class:`RequestFailed` (``too_long``), like an empty one (``empty``).
        """
        key = cache_key(self.options.model, cache_version, f"text:{max_tokens}", messages)
        if not self.options.refresh and (hit := self.cache.get(key)) is not None:
            self.usage.cache_hits += 1
            return Answer(hit.content, hit.tokens_in, hit.tokens_out, cached=True)
        if self._dry_run is not None:
            self._write_request({"template": cache_version, "messages": messages})
            raise DryRunStop
        try:
            async with self._slots:
                if not self.budget_left():  # checked in the slot, as _complete does
                    raise RequestFailed(
                        "budget", "the run's token budget (--max-tokens-total) is spent"
                    )
                self.usage.requests += 1
                response = await self._client.chat.completions.create(
                    model=self.options.model,
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=max_tokens,
                    temperature=0,
                    seed=0,
                )
        except openai.OpenAIError as exc:
            raise _failure(exc) from exc
        content, tokens_in, tokens_out = self._read(response, max_tokens, empty="empty")
        self.cache.put(
            key, self.options.model, cache_version, CachedAnswer(content, tokens_in, tokens_out)
        )
        return Answer(content, tokens_in, tokens_out, cached=False)

    async def _complete(
        self, messages: list[dict[str, str]], schema_name: str, schema: dict[str, Any]
    ) -> tuple[str, int, int]:
        while True:
            try:
                async with self._slots:
                    # checked once a slot is free: the requests ahead may have spent it
                    if not self.budget_left():
                        raise RequestFailed(
                            "budget", "the run's token budget (--max-tokens-total) is spent"
                        )
                    # read in the slot: a request ahead may have learned the server's format
                    mode = self._format
                    self.usage.requests += 1
                    response = await self._client.chat.completions.create(
                        model=self.options.model,
                        messages=self._with_format(messages, mode, schema),  # type: ignore[arg-type]
                        max_tokens=MAX_ANSWER_TOKENS,
                        temperature=0,
                        seed=0,
                        **self._format_arguments(mode, schema_name, schema),
                    )
            except openai.APIStatusError as exc:
                if mode < len(FORMATS) - 1 and _is_format_rejection(exc):
                    if self._format == mode:  # the first of the requests in flight to see it
                        self._format = mode + 1
                        self.usage.fallbacks.append(
                            f"{FORMATS[mode]} rejected (HTTP {exc.status_code}):"
                            f" using {FORMATS[mode + 1]}"
                        )
                    continue
                raise _failure(exc) from exc
            except openai.OpenAIError as exc:
                raise _failure(exc) from exc
            return self._read(response, MAX_ANSWER_TOKENS, empty="bad_json")

    def _read(self, response: ChatCompletion, max_tokens: int, empty: str) -> tuple[str, int, int]:
        """The answer of ``response`` and its tokens, counted; a cut or empty one fails."""
        usage = response.usage
        tokens_in = usage.prompt_tokens if usage else 0
        tokens_out = usage.completion_tokens if usage else 0
        self.usage.tokens_in += tokens_in
        self.usage.tokens_out += tokens_out
        choice = response.choices[0] if response.choices else None
        content: str | None = choice.message.content if choice else None
        if choice is not None and choice.finish_reason == "length":
            raise RequestFailed("too_long", f"the answer passed {max_tokens} tokens")
        if not content:
            raise RequestFailed(empty, "the answer was empty")
        return content, tokens_in, tokens_out

    @staticmethod
    def _with_format(
        messages: list[dict[str, str]], mode: int, schema: dict[str, Any]
    ) -> list[dict[str, str]]:
        if FORMATS[mode] == "json_schema":
            return messages
        # without structured output the schema travels in the system message
        system, *rest = messages
        spelled = json.dumps(schema, separators=(",", ":"))
        note = f"\n\nThe JSON object must match this JSON Schema: {spelled}"
        return [{"role": "system", "content": system["content"] + note}, *rest]

    @staticmethod
    def _format_arguments(mode: int, schema_name: str, schema: dict[str, Any]) -> dict[str, Any]:
        if FORMATS[mode] == "json_schema":
            return {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "schema": schema, "strict": True},
                }
            }
        if FORMATS[mode] == "json_object":
            return {"response_format": {"type": "json_object"}}
        return {}

    def _write_dry_run(
        self,
        template: str,
        messages: list[dict[str, str]],
        schema_name: str,
        schema: dict[str, Any],
    ) -> None:
        assert self._dry_run is not None
        request = {
            "template": template,
            "model": self.options.model,
            "base_url": self.options.base_url,
            "messages": messages,
            **self._format_arguments(0, schema_name, schema),
        }
        self._dry_run.write(json.dumps(request, ensure_ascii=False) + "\n")
        self._dry_run.flush()

    def _write_request(self, fields: dict[str, Any]) -> None:
        """One plain-text request in the dry-run file."""
        assert self._dry_run is not None
        request = {"model": self.options.model, "base_url": self.options.base_url, **fields}
        self._dry_run.write(json.dumps(request, ensure_ascii=False) + "\n")
        self._dry_run.flush()
