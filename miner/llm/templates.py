"""Prompt templates: versioned text files beside this module.

A template file ``NAME.vN.txt`` holds the system message, a line
``==== user ====``, then the user message with ``$placeholders``
(:class:`string.Template`, so JSON braces in the text need no escaping).
Its version, ``NAME.vN``, is stored with every episode it described and is
part of every cache key, with a hash of the text so that an edit made without
bumping the version cannot serve stale answers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from string import Template

from miner.errors import MinerError

USER_MARK = "==== user ===="
DESCRIBE = "describe.v1"
PROMPTS = "prompts.v1"


@dataclass(frozen=True)
class PromptTemplate:
    version: str  # e.g. "describe.v1"
    system: str
    user: Template
    digest: str  # sha256 of the file, first 16 hex digits

    def messages(self, values: dict[str, str]) -> list[dict[str, str]]:
        """The chat messages for ``values``; every placeholder must be given."""
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.substitute(values)},
        ]


def load_template(version: str) -> PromptTemplate:
    try:
        text = (
            resources.files("miner.llm")
            .joinpath("templates", f"{version}.txt")
            .read_text(encoding="utf-8")
        )
    except FileNotFoundError:
        raise MinerError(f"no prompt template {version!r} in miner/llm/templates") from None
    system, mark, user = text.partition(USER_MARK)
    if not mark:
        raise MinerError(f"prompt template {version} has no {USER_MARK!r} line")
    return PromptTemplate(
        version=version,
        system=system.strip(),
        user=Template(user.strip() + "\n"),
        digest=hashlib.sha256(text.encode()).hexdigest()[:16],
    )
