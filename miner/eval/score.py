"""Per-episode outcomes of one evaluated row, and the rates they add up to.

A row is one way of answering every episode: a baseline (apply nothing,
apply the recorded fix) or a model.  Each episode ends in one outcome:

    green, red, timeout, error   the diff applied and the build ended so
    does_not_apply               the diff did not apply to the red state
    no_diff                      the model's reply held no diff
    request_failed               the model was not reached or did not answer
    not_sent                     --dry-run: the request went to a file
    no_repo                      the base revision's repository is not here

``no_repo`` episodes are left out of the rates (and counted); every other
outcome is in them, a failed request included: a model that could not answer
did not fix the build.  ``applies`` is the share of diffs that applied, the
pass rate ``green`` the share that built green.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GREEN = "green"
DOES_NOT_APPLY = "does_not_apply"
NO_DIFF = "no_diff"
REQUEST_FAILED = "request_failed"
NOT_SENT = "not_sent"
NO_REPO = "no_repo"
UNKNOWN_KIND = "unknown"


@dataclass(frozen=True)
class EpisodeResult:
    episode_id: str
    error_kind: str
    outcome: str
    applied: bool = False
    status: str = ""  # the build's status once the diff applied
    fingerprint: str | None = None  # of the build's error, when it stayed red
    failure: str | None = None  # why the model's request failed
    detail: str | None = None
    diff: str | None = None  # the diff the model gave
    reply: str | None = None  # the model's reply (its start)
    output: str | None = None  # the build's output (its tail), or the patch tool's message

    def to_json(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "error_kind": self.error_kind,
            "outcome": self.outcome,
            "applied": self.applied,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "failure": self.failure,
            "detail": self.detail,
            "diff": self.diff,
            "reply": self.reply,
            "output": self.output,
        }


@dataclass(frozen=True)
class Tally:
    """Counts over the rated episodes (no_repo left out)."""

    episodes: int = 0
    applied: int = 0
    green: int = 0

    @property
    def applies_rate(self) -> float | None:
        return self.applied / self.episodes if self.episodes else None

    @property
    def green_rate(self) -> float | None:
        return self.green / self.episodes if self.episodes else None

    def add(self, result: EpisodeResult) -> Tally:
        return Tally(
            self.episodes + 1,
            self.applied + result.applied,
            self.green + (result.outcome == GREEN),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "applied": self.applied,
            "green": self.green,
            "applies_rate": self.applies_rate,
            "green_rate": self.green_rate,
        }


@dataclass(frozen=True)
class RowSummary:
    name: str  # file stem: baseline-nothing, baseline-recorded-fix, model-NAME
    label: str  # for people: "apply nothing", "recorded fix", the model's name
    kind: str  # baseline or model
    overall: Tally
    by_error_kind: dict[str, Tally]  # sorted by kind
    no_repo: int
    outcomes: dict[str, int]  # every outcome's count, sorted by outcome
    failed_requests: dict[str, int]  # by reason, sorted

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "kind": self.kind,
            **self.overall.to_json(),
            "no_repo": self.no_repo,
            "outcomes": self.outcomes,
            "failed_requests": self.failed_requests,
            "by_error_kind": {kind: t.to_json() for kind, t in self.by_error_kind.items()},
        }


def summarize(name: str, label: str, kind: str, results: Iterable[EpisodeResult]) -> RowSummary:
    overall = Tally()
    by_kind: dict[str, Tally] = {}
    outcomes: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for result in results:
        outcomes[result.outcome] += 1
        if result.outcome == REQUEST_FAILED:
            failures[result.failure or "unknown"] += 1
        if result.outcome == NO_REPO:
            continue
        overall = overall.add(result)
        by_kind[result.error_kind] = by_kind.get(result.error_kind, Tally()).add(result)
    return RowSummary(
        name=name,
        label=label,
        kind=kind,
        overall=overall,
        by_error_kind=dict(sorted(by_kind.items())),
        no_repo=outcomes[NO_REPO],
        outcomes=dict(sorted(outcomes.items())),
        failed_requests=dict(sorted(failures.items())),
    )
