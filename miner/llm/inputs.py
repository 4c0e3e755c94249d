"""What each stage is shown of an episode, trimmed to a token budget.

Tokens are estimated at four characters each (close for English and code
with the tokenizers of common models; the budget is a limit on what is
sent, not an exact count).  The budget is shared out so no one part can
crowd out the others: the error gets up to a quarter (its head: compilers
report the cause first), each diff up to a quarter, and the context files
the rest, the fix's own files first, each cut at the end when it does not fit.
Stage 2 never sees the diffs: only what the developer saw at the red state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from miner.record import Episode

CHARS_PER_TOKEN = 4
DEFAULT_CONTEXT_TOKENS = 6000
# a file cut shorter than this tells the model nothing: it is listed as omitted
_MIN_FILE_CHARS = 200


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` at a line end, saying how much was cut."""
    if len(text) <= max_chars:
        return text
    cut = text.rfind("\n", 0, max_chars)
    kept = text[: cut + 1] if cut > 0 else text[:max_chars] + "\n"
    lines = len(text[len(kept) :].splitlines()) or 1
    return f"{kept}[... {lines} more lines cut]"


def _diagnostic_line(d: Mapping[str, Any]) -> str:
    where = ":".join(str(d[k]) for k in ("file", "line", "column") if d.get(k) is not None)
    severity = d.get("severity") or "error"
    message = str(d.get("message") or "").strip()
    return f"{where}: {severity}: {message}" if where else f"{severity}: {message}"


def error_text(episode: Episode, max_chars: int) -> str:
    """Parsed diagnostics first (compact and complete), then the build output."""
    parts = []
    if episode.diagnostics:
        parts.append("\n".join(_diagnostic_line(d) for d in episode.diagnostics))
    if episode.error:
        parts.append(("Build output:\n" if parts else "") + episode.error.strip())
    return clip("\n\n".join(parts) or "(the build printed nothing)", max_chars)


def context_text(files: Iterable[tuple[str, str]], max_chars: int) -> str:
    shown: list[str] = []
    omitted: list[str] = []
    left = max_chars
    for path, content in files:
        header = f"--- {path}\n"
        room = left - len(header)
        if room < min(_MIN_FILE_CHARS, len(content) + 1):
            omitted.append(path)
            continue
        body = clip(content, room)
        shown.append(header + body)
        left -= len(header) + len(body)
    if omitted:
        shown.append(f"(not shown, over the budget: {', '.join(omitted)})")
    return "\n".join(shown) or "(no files)"


def describe_inputs(episode: Episode, context_tokens: int) -> dict[str, str]:
    """The values of the stage 1 template: error, both diffs, context."""
    budget = max(context_tokens, 1) * CHARS_PER_TOKEN
    error = error_text(episode, budget // 4)
    fix = clip(episode.fix_diff or "(empty)", budget // 4)
    broke = clip(episode.break_diff or "(not recorded)", budget // 4)
    left = budget - len(error) - len(fix) - len(broke)
    files = ((c.path, c.content) for c in episode.context)
    return {
        "error": error,
        "fix_diff": fix,
        "break_diff": broke,
        "context": context_text(files, left),
    }


def prompt_inputs(episode: Episode, problem: str, context_tokens: int) -> dict[str, str]:
    """The values of the stage 2 template: what the developer saw, and the problem."""
    budget = max(context_tokens, 1) * CHARS_PER_TOKEN
    error = error_text(episode, budget // 4)
    problem = clip(problem, budget // 4)
    left = budget - len(error) - len(problem)
    files = ((c.path, c.content) for c in episode.context)
    return {"error": error, "problem": problem, "context": context_text(files, left)}
