"""The browsable table of kept episodes: one ``<details>`` per episode, as HTML.

Everything that comes from the data (errors, prompts, diffs, paths, host
names) is escaped with :func:`html.escape`: a build output may hold any text,
``<script>`` included, and the page must show it, not run it.  Diff lines get
a CSS class by their first characters (``add``, ``del``, ``hunk``, ``meta``);
the page's stylesheet colours them.  Newest episodes come first.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from miner.record import Episode

_META_PREFIXES = ("diff --git ", "index ", "--- ", "+++ ", "new file", "deleted file", "rename ")


def _line_class(line: str) -> str | None:
    if line.startswith(_META_PREFIXES):
        return "meta"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return None


def highlight_diff(diff: str) -> str:
    """``diff`` as escaped HTML lines, each added, removed, hunk or header line in a span."""
    lines = []
    for line in diff.splitlines():
        kind = _line_class(line)
        text = escape(line)
        lines.append(f'<span class="{kind}">{text}</span>' if kind else text)
    return "\n".join(lines)


def _cell(text: str | None) -> str:
    return escape(text) if text else '<span class="none">-</span>'


def example(episode: Episode) -> str:
    """One kept episode: a summary line, then its prompt, error and fix diff."""
    when = episode.red_ended_at.strftime("%Y-%m-%d %H:%M")
    minutes = f"{episode.red_seconds / 60:.1f} min red"
    summary = " ".join(
        [
            f'<span class="when">{escape(when)}</span>',
            f'<span class="host">{_cell(episode.host)}</span>',
            f'<span class="kind">{_cell(episode.error_kind)}</span>',
            f'<span class="size">{episode.fix_lines} lines, {episode.fix_files} files</span>',
            f'<span class="red">{minutes}</span>',
            f'<span class="split">{_cell(episode.split)}</span>',
            f'<span class="verified">{_cell(episode.verified or "not verified")}</span>',
            f'<span class="prompt">{_cell(episode.prompt)}</span>',
        ]
    )
    return (
        f'<details class="example" id="e-{escape(episode.episode_id[:16])}">'
        f"<summary>{summary}</summary>"
        f'<div class="body">'
        f"<h4>Prompt</h4><p>{_cell(episode.prompt)}</p>"
        f"<h4>Workspace</h4><p>{_cell(episode.workspace)}</p>"
        f'<h4>Error</h4><pre class="error">{escape(episode.error or "")}</pre>'
        f'<h4>Fix</h4><pre class="diff">{highlight_diff(episode.fix_diff)}</pre>'
        f"</div></details>"
    )


def examples(episodes: Sequence[Episode]) -> str:
    """The kept episodes, newest first, as HTML; a sentence when there are none."""
    kept = sorted(
        (e for e in episodes if e.kept),
        key=lambda e: (e.red_ended_at, e.episode_id),
        reverse=True,
    )
    if not kept:
        return '<p class="empty">No kept episodes.</p>'
    return "\n".join(example(e) for e in kept)
