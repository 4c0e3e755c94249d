"""The report's charts, as plotly figures built from the episodes and the funnel.

Each chart is a :class:`Chart`: a title, a sentence saying what it shows, and
the figure.  The figures carry data only; :mod:`miner.report.page` turns them
into HTML, with the plotly.js bundle inlined once for all of them.  Plotly is
imported here and nowhere else, and only ``miner report`` imports this module,
so the other commands do not pay for it.

Times are in minutes, days are UTC days of the green build that ended the
episode (``red_ended_at``).  Episodes the describer did not see (filtered
ones) have no stored ``error_kind``: the offline describer's classifier names
their kind from the error text, so every episode counts in the kinds chart.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from miner.describe import error_kind
from miner.record import DOES_NOT_APPLY, NO_REPO, NOT_GREEN, NOT_RED, REPRODUCED, Episode
from miner.stats import Funnel

TOP_ERROR_KINDS = 10
NOT_VERIFIED = "not verified"
# verification outcomes, best first; anything else a newer verify writes follows
VERIFY_ORDER = (REPRODUCED, NOT_RED, NOT_GREEN, DOES_NOT_APPLY, NO_REPO, NOT_VERIFIED)
KEPT_COLOUR = "#2e7d32"
REJECTED_COLOUR = "#c62828"


@dataclass(frozen=True)
class Chart:
    slug: str  # the element id of its section
    title: str
    caption: str
    figure: Any  # plotly.graph_objects.Figure (plotly ships no type hints)


def _layout(figure: Any, **extra: Any) -> Any:
    figure.update_layout(
        template="plotly_white",
        margin={"l": 60, "r": 30, "t": 30, "b": 50},
        legend={"orientation": "h", "y": 1.08},
        **extra,
    )
    return figure


def _minutes(episode: Episode) -> float:
    return round(episode.red_seconds / 60, 2)


def kind_of(episode: Episode) -> str:
    return episode.error_kind or error_kind(episode.error or "")


def episodes_per_day(episodes: Sequence[Episode]) -> Chart:
    days: dict[str, Counter[bool]] = defaultdict(Counter)
    for e in episodes:
        days[e.red_ended_at.date().isoformat()][e.kept] += 1
    x = sorted(days)
    figure = go.Figure(
        [
            go.Bar(name="kept", x=x, y=[days[d][True] for d in x], marker_color=KEPT_COLOUR),
            go.Bar(
                name="rejected", x=x, y=[days[d][False] for d in x], marker_color=REJECTED_COLOUR
            ),
        ]
    )
    _layout(figure, barmode="stack", xaxis={"type": "category", "title": "day (UTC)"})
    figure.update_yaxes(title="episodes")
    return Chart(
        "per-day", "Episodes per day", "Episodes by the day their build went green.", figure
    )


def time_red(episodes: Sequence[Episode]) -> Chart:
    figure = go.Figure(go.Histogram(x=[_minutes(e) for e in episodes], marker_color="#ef6c00"))
    _layout(figure, bargap=0.05)
    figure.update_xaxes(title="minutes red")
    figure.update_yaxes(title="episodes")
    return Chart(
        "time-red",
        "Time spent red",
        "From the first red build to the green one that ended it, every episode.",
        figure,
    )


def error_kinds(episodes: Sequence[Episode]) -> Chart:
    minutes: dict[str, list[float]] = defaultdict(list)
    for e in episodes:
        minutes[kind_of(e)].append(_minutes(e))
    top = sorted(minutes, key=lambda k: (-len(minutes[k]), k))[:TOP_ERROR_KINDS]
    medians = [round(statistics.median(minutes[k]), 2) for k in top]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(
        go.Bar(name="episodes", x=top, y=[len(minutes[k]) for k in top], marker_color="#5c6bc0"),
        secondary_y=False,
    )
    figure.add_trace(
        go.Scatter(
            name="median minutes red",
            x=top,
            y=medians,
            mode="markers+lines",
            marker={"size": 10, "color": "#ef6c00"},
        ),
        secondary_y=True,
    )
    _layout(figure)
    figure.update_yaxes(title_text="episodes", secondary_y=False)
    figure.update_yaxes(title_text="median minutes red", secondary_y=True, rangemode="tozero")
    return Chart(
        "error-kinds",
        "Top error kinds",
        f"The {TOP_ERROR_KINDS} most frequent kinds of error, with the median time to repair.",
        figure,
    )


def filter_funnel(overall: Funnel) -> Chart:
    # a filter that removed nothing is a flat step: it stays in the table, not here
    idle = {f"after {step.name}" for step in overall.filters if step.removed == 0}
    steps = [
        (name, count) for name, count in overall.steps() if count is not None and name not in idle
    ]
    figure = go.Figure(
        go.Funnel(
            y=[name for name, _ in steps],
            x=[count for _, count in steps],
            textinfo="value",
            marker={"color": "#26a69a"},
        )
    )
    _layout(figure, height=max(360, 34 * len(steps)))
    return Chart(
        "funnel",
        "Filter funnel",
        "Each rejecting filter removes the episodes that fail it and no earlier one"
        " (filters that removed none are in the table above); verified and described"
        " are counted among the kept.",
        figure,
    )


def fix_size(episodes: Sequence[Episode]) -> Chart:
    figure = go.Figure(
        [
            go.Histogram(
                name=name,
                x=[e.fix_lines for e in episodes if e.kept is kept],
                marker_color=colour,
            )
            for name, kept, colour in (
                ("kept", True, KEPT_COLOUR),
                ("rejected", False, REJECTED_COLOUR),
            )
        ]
    )
    _layout(figure, barmode="stack", bargap=0.05)
    figure.update_xaxes(title="lines changed by the fix")
    figure.update_yaxes(title="episodes")
    return Chart("fix-size", "Fix size", "Lines added plus lines removed by each fix.", figure)


def verification(episodes: Sequence[Episode]) -> Chart:
    counts = Counter(e.verified or NOT_VERIFIED for e in episodes if e.kept)
    order = [v for v in VERIFY_ORDER if v in counts]
    order += sorted(set(counts) - set(VERIFY_ORDER))
    figure = go.Figure(go.Bar(x=order, y=[counts[v] for v in order], marker_color="#8d6e63"))
    _layout(figure, xaxis={"type": "category"})
    figure.update_yaxes(title="kept episodes")
    return Chart(
        "verification",
        "Verification outcomes",
        "What `miner verify` found when it replayed each kept episode.",
        figure,
    )


def charts(episodes: Sequence[Episode], overall: Funnel) -> list[Chart]:
    """Every chart of the report, in page order (none without episodes)."""
    if not episodes:
        return []
    return [
        episodes_per_day(episodes),
        time_red(episodes),
        error_kinds(episodes),
        filter_funnel(overall),
        fix_size(episodes),
        verification(episodes),
    ]
