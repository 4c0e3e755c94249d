"""Both stages for one episode, the prompt filters, and a whole batch.

    stage 1  error + break diff + fix diff + context  -> description, problem, error kind
    stage 2  error + context + problem (fix-only names masked) -> lazy and descriptive requests
    filters  every candidate checked (miner.prompt_filters); the best lazy one is the prompt

Episodes run concurrently (the client bounds the requests in flight); one
episode's failure is recorded on it (``description_status='failed'`` and a
``failure_reason``) and never stops the batch.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from miner.llm.answers import (
    DESCRIPTION_SCHEMA,
    PROMPTS_SCHEMA,
    Description,
    PromptIdeas,
    parse_description,
    parse_prompts,
)
from miner.llm.client import DryRunStop, LLMClient, RequestFailed
from miner.llm.inputs import describe_inputs, prompt_inputs
from miner.llm.templates import DESCRIBE, PROMPTS, PromptTemplate, load_template
from miner.prompt_filters import (
    DESCRIPTIVE,
    LAZY,
    Candidate,
    PromptLimits,
    RedState,
    check_candidates,
    choose_prompt,
    solution_tokens,
)
from miner.record import (
    DESCRIBE_FAILED,
    DESCRIBED,
    NOT_SENT,
    PROMPT_FILTERED,
    Episode,
    PromptCandidate,
)


@dataclass
class BatchSummary:
    described: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    filtered: Counter[str] = field(default_factory=Counter)  # candidates, by filter
    prompt_filtered: int = 0
    not_sent: int = 0


def red_state(episode: Episode) -> RedState:
    return RedState(
        error=episode.error or "",
        files={c.path: c.content for c in episode.context},
        fix_diff=episode.fix_diff,
    )


def mask(text: str, tokens: frozenset[str]) -> str:
    """``text`` with every token only the fix reveals replaced by ``...``."""
    if not tokens:
        return text
    words = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
    return re.sub(rf"(?<![\w.]){words}(?![\w])", "...", text)


class EpisodeDescriber:
    def __init__(self, client: LLMClient, limits: PromptLimits | None = None) -> None:
        self.client = client
        self.limits = limits or PromptLimits()
        self.describe_template: PromptTemplate = load_template(DESCRIBE)
        self.prompts_template: PromptTemplate = load_template(PROMPTS)
        self.template_version = f"{DESCRIBE}+{PROMPTS}"

    async def describe(self, episode: Episode) -> Episode:
        tokens = [0, 0]
        base = replace(
            episode,
            describer=self.client.options.model,
            template_version=self.template_version,
            description=None,
            prompt=None,
            prompt_candidates=(),
            failure_reason=None,
        )
        context_tokens = self.client.options.context_tokens
        try:
            first = await self.client.ask(
                self.describe_template,
                describe_inputs(episode, context_tokens),
                "description",
                DESCRIPTION_SCHEMA,
                parse_description,
            )
            described: Description = first.value
            tokens[0] += first.tokens_in
            tokens[1] += first.tokens_out
            red = red_state(episode)
            problem = mask(described.problem, solution_tokens(red))
            second = await self.client.ask(
                self.prompts_template,
                prompt_inputs(episode, problem, context_tokens),
                "prompts",
                PROMPTS_SCHEMA,
                parse_prompts,
            )
            ideas: PromptIdeas = second.value
            tokens[0] += second.tokens_in
            tokens[1] += second.tokens_out
        except DryRunStop:
            return replace(base, description_status=NOT_SENT)
        except RequestFailed as failed:
            return replace(
                base,
                description_status=DESCRIBE_FAILED,
                failure_reason=failed.reason,
                llm_tokens_in=tokens[0],
                llm_tokens_out=tokens[1],
            )
        candidates = [Candidate(t, LAZY) for t in ideas.lazy] + [
            Candidate(t, DESCRIPTIVE) for t in ideas.descriptive
        ]
        checked = check_candidates(candidates, red, self.limits)
        chosen = choose_prompt(checked)
        return replace(
            base,
            description=described.description,
            error_kind=described.error_kind,
            prompt=chosen.candidate.text if chosen else None,
            prompt_candidates=tuple(
                PromptCandidate(c.candidate.text, c.candidate.style, c.reasons) for c in checked
            ),
            description_status=DESCRIBED if chosen else PROMPT_FILTERED,
            llm_tokens_in=tokens[0],
            llm_tokens_out=tokens[1],
        )


async def describe_batch(
    episodes: Sequence[Episode],
    describer: EpisodeDescriber,
    on_done: Callable[[Episode], None] = lambda _episode: None,
) -> tuple[list[Episode], BatchSummary]:
    """Every episode described, in input order, and what happened to them."""

    async def one(episode: Episode) -> Episode:
        result = await describer.describe(episode)
        on_done(result)
        return result

    results = list(await asyncio.gather(*(one(e) for e in episodes)))
    summary = BatchSummary()
    for result in results:
        if result.description_status == DESCRIBED:
            summary.described += 1
        elif result.description_status == DESCRIBE_FAILED:
            summary.failed[result.failure_reason or "unknown"] += 1
        elif result.description_status == PROMPT_FILTERED:
            summary.prompt_filtered += 1
        elif result.description_status == NOT_SENT:
            summary.not_sent += 1
        for candidate in result.prompt_candidates:
            summary.filtered.update(candidate.filters)
    return results, summary
