"""The JSON each stage answers: its schema, and a strict parser for it.

The same schema is sent as the ``json_schema`` response format, described in
the template for servers without structured output, and checked here: an
answer is accepted only if it is one JSON object with every key of the
right type.  In plain-text mode models wrap JSON in prose or code fences;
:func:`parse_answer` takes the first object it finds and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# an answer longer than this is not a description: the model ran away
MAX_ANSWER_CHARS = 20_000


class AnswerError(ValueError):
    """An answer that is not the JSON asked for; the message says why, for a retry."""


class AnswerTooLong(AnswerError):
    pass


@dataclass(frozen=True)
class Description:
    description: str
    problem: str
    error_kind: str


@dataclass(frozen=True)
class PromptIdeas:
    lazy: tuple[str, ...]
    descriptive: tuple[str, ...]


def _string(max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length}


def _strings(max_length: int, most: int) -> dict[str, Any]:
    return {"type": "array", "items": _string(max_length), "minItems": 1, "maxItems": most}


DESCRIPTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "description": _string(2000),
        "problem": _string(1000),
        "error_kind": _string(60),
    },
    "required": ["description", "problem", "error_kind"],
    "additionalProperties": False,
}
PROMPTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"lazy": _strings(200, 5), "descriptive": _strings(500, 4)},
    "required": ["lazy", "descriptive"],
    "additionalProperties": False,
}


def _first_object(text: str) -> dict[str, Any]:
    if len(text) > MAX_ANSWER_CHARS:
        raise AnswerTooLong(f"the answer is {len(text):,} characters, over {MAX_ANSWER_CHARS:,}")
    decoder = json.JSONDecoder()
    start = text.find("{")
    last_error = "no JSON object in the answer"
    while start != -1:
        try:
            value, _end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            last_error = f"invalid JSON: {exc.msg} at character {exc.pos}"
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    raise AnswerError(last_error)


def _text(value: dict[str, Any], key: str) -> str:
    item = value.get(key)
    if not isinstance(item, str) or not item.strip():
        raise AnswerError(f'"{key}" must be a non-empty string')
    return item.strip()


def _texts(value: dict[str, Any], key: str) -> tuple[str, ...]:
    items = value.get(key)
    if not isinstance(items, list) or not items:
        raise AnswerError(f'"{key}" must be a non-empty list of strings')
    if not all(isinstance(item, str) for item in items):
        raise AnswerError(f'"{key}" must hold only strings')
    return tuple(item.strip() for item in items)


def parse_description(text: str) -> Description:
    value = _first_object(text)
    return Description(
        description=_text(value, "description"),
        problem=_text(value, "problem"),
        error_kind=_text(value, "error_kind").lower(),
    )


def parse_prompts(text: str) -> PromptIdeas:
    value = _first_object(text)
    return PromptIdeas(lazy=_texts(value, "lazy"), descriptive=_texts(value, "descriptive"))
