"""``miner eval``: pass rates of a model, and of two baselines, on held-out episodes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from miner.cli import (
    LLMChoice,
    _data_dir,
    data_dir_option,
    llm_options,
    out_option,
    repo_option,
)
from miner.record import Episode
from snapshotter.errors import RedgreenError

if TYPE_CHECKING:  # the command imports the engine itself: other commands need not load it
    from miner.eval.ask import ModelAnswer
    from miner.eval.run import EvalReport
    from miner.eval.score import Tally


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _line(label: str, kind: str, tally: Tally) -> str:
    applies, green = _rate(tally.applies_rate), _rate(tally.green_rate)
    return f"{label:<24} {kind:<22} {tally.episodes:>8} {applies:>8} {green:>8}"


def format_report(report: EvalReport) -> str:
    """The rows as a table: overall, then one line per error kind."""
    lines = [
        f"split {report.split}: {report.selected} episode(s); {report.no_repo} no_repo"
        " (repository not on this machine: left out of the rates)",
        "",
        f"{'row':<24} {'error kind':<22} {'episodes':>8} {'applies':>8} {'green':>8}",
    ]
    for row in report.rows:
        lines.append(_line(row.label, "(all)", row.overall))
        lines.extend(_line("", kind, tally) for kind, tally in row.by_error_kind.items())
    for row in report.rows:
        if row.kind != "model":
            continue
        failed = sum(row.failed_requests.values())
        reasons = ", ".join(f"{reason} {n}" for reason, n in row.failed_requests.items())
        lines.append("")
        lines.append(
            f"{row.label}: failed requests {failed}" + (f" ({reasons})" if failed else "")
            + f", replies without a diff {row.outcomes.get('no_diff', 0)},"
            f" diffs that did not apply {row.outcomes.get('does_not_apply', 0)}"
        )  # fmt: skip
    if report.ask is not None:
        ask = report.ask
        lines.append(
            f"requests: {ask.requests} ({ask.cache_hits} cache hits);"
            f" tokens: {ask.tokens_in} in, {ask.tokens_out} out"
        )
    return "\n".join(lines) + "\n"


def _echo_failure(episode: Episode, answer: ModelAnswer) -> None:
    if answer.failure is not None and answer.failure != "not_sent":
        click.echo(
            f"episode {episode.episode_id[:12]}: request failed ({answer.failure}):"
            f" {answer.detail}",
            err=True,
        )


@click.command("eval")
@out_option("Miner output directory holding episodes.parquet; results go to OUT/eval/.")
@data_dir_option
@repo_option
@click.option(
    "--split",
    type=click.Choice(["test", "train", "all"]),
    default="test",
    show_default=True,
    help="Kept episodes of this split.",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 256),
    default=None,
    help="Builds in parallel, one warm worker each (default: the CPU count).",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N episodes.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@llm_options
def eval_command(
    out_dir: Path,
    data_dir: Path | None,
    repo: Path | None,
    split: str,
    jobs: int | None,
    limit: int | None,
    as_json: bool,
    **llm: Any,
) -> None:
    """Evaluate a model: how often its diff turns a held-out red build green.

    For each kept episode of --split, the model (--model, or [llm] model in
    the config) is asked exactly what train.jsonl asks: the context files,
    the build output and the prompt.  The diff in its reply is applied to
    the red state in a warm worker and built with the recorded command.
    Two baselines run every time as sanity checks: applying nothing (0%
    green) and applying the recorded fix (about 100%).  Without a model only
    the baselines run and nothing is sent anywhere.  Episodes whose
    repository is not on this machine are counted as no_repo and left out of
    the rates.  Writes OUT/eval/<row>.jsonl, <row>.summary.json and
    summary.json.
    """
    choice = LLMChoice(**llm)
    try:
        options = choice.options()
        if options is None and choice.base_url:
            raise click.UsageError(
                "--base-url needs a model: give --model, or set model in the [llm] section"
            )
        if options is None and choice.dry_run is not None:
            raise click.UsageError("--dry-run needs a model: without one nothing would be sent")
        from miner.eval.run import evaluate

        report = evaluate(
            out_dir,
            _data_dir(data_dir),
            split=split,
            repo=repo,
            jobs=jobs or os.cpu_count() or 1,
            limit=limit,
            options=options,
            on_answer=_echo_failure,
        )
    except RedgreenError as exc:
        raise click.ClickException(str(exc)) from exc
    if report.dry_run:
        assert report.ask is not None
        click.echo(
            f"dry run: {report.ask.not_sent} request(s) written to {choice.dry_run};"
            f" nothing was sent, built or written ({report.ask.cache_hits} answer(s)"
            " came from the cache)"
        )
        return
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    click.echo(format_report(report), nl=False)
    for path in report.files:
        click.echo(f"wrote {path}")
