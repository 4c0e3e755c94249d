"""Ask the model for a fix of each episode, exactly as ``train.jsonl`` asks it.

The messages are the first two of the episode's ``train.jsonl`` line (the
system prompt, then the context files, the build output and the prompt), so
a model fine-tuned on that file is evaluated on the question it learned to
answer.  Requests run concurrently under the client's limits; answers go to
the run's answer cache in the output directory, so a rerun asks nothing.
One episode's failed request is recorded on its answer and never stops the
others.  ``openai`` is imported here only when a model is asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from miner.eval.diffs import extract_diff
from miner.output import SYSTEM_PROMPT, user_message
from miner.record import Episode

if TYPE_CHECKING:  # imported for real only when a model is used: openai loads slowly
    from miner.llm.client import LLMClient, LLMOptions

# the shape of an eval request (messages of train.jsonl, plain text): part of the cache key
EVAL_REQUEST = "eval.v1"


@dataclass(frozen=True)
class ModelAnswer:
    episode_id: str
    reply: str | None = None  # None: no reply (the request failed, or a dry run)
    diff: str | None = None  # the diff found in the reply
    failure: str | None = None  # why the request failed (RequestFailed reason); "not_sent"
    detail: str | None = None


@dataclass(frozen=True)
class AskReport:
    answers: dict[str, ModelAnswer]  # by episode id
    requests: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    not_sent: int = 0  # --dry-run: written to the dry-run file
    fallbacks: list[str] = field(default_factory=list)


def eval_messages(episode: Episode) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message(episode)},
    ]


async def _ask_one(client: LLMClient, episode: Episode) -> ModelAnswer:
    from miner.llm.client import DryRunStop, RequestFailed

    try:
        answer = await client.ask_text(eval_messages(episode), EVAL_REQUEST)
    except DryRunStop:
        return ModelAnswer(episode.episode_id, failure="not_sent", detail="dry run")
    except RequestFailed as exc:
        return ModelAnswer(episode.episode_id, failure=exc.reason, detail=exc.detail)
    reply = str(answer.value)
    return ModelAnswer(episode.episode_id, reply=reply, diff=extract_diff(reply))


def ask_model(
    episodes: Sequence[Episode],
    options: LLMOptions,
    cache_dir: Path,
    on_answer: Callable[[Episode, ModelAnswer], None] | None = None,
) -> AskReport:
    """The model's answer for each of ``episodes``; ``on_answer`` hears of each as it comes."""
    from miner.llm.cache import CACHE_FILE, AnswerCache
    from miner.llm.client import LLMClient

    cache = AnswerCache(cache_dir / CACHE_FILE)
    try:

        async def run() -> AskReport:
            client = LLMClient(options, cache)

            async def one(episode: Episode) -> ModelAnswer:
                answer = await _ask_one(client, episode)
                if on_answer is not None:
                    on_answer(episode, answer)
                return answer

            try:
                answers = await asyncio.gather(*(one(e) for e in episodes))
            finally:
                await client.aclose()
            usage = client.usage
            return AskReport(
                answers={a.episode_id: a for a in answers},
                requests=usage.requests,
                cache_hits=usage.cache_hits,
                tokens_in=usage.tokens_in,
                tokens_out=usage.tokens_out,
                not_sent=sum(a.failure == "not_sent" for a in answers),
                fallbacks=list(usage.fallbacks),
            )

        return asyncio.run(run())
    finally:
        cache.close()
