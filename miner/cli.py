"""The ``miner`` command line: a thin layer over the typed core.

Each command is a plain function whose docstring is its help text; the work
happens in :mod:`miner.pipeline` and :mod:`miner.query`, which raise
:class:`~snapshotter.errors.RedgreenError` for expected failures.  Only this
module turns those into one-line ``click.ClickException`` messages.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from miner import pipeline
from miner.dataset import Dataset, check_data_dir, strict_error
from miner.describe import get_describer
from miner.describe_stage import DescribeReport, describe_episodes, redescribe
from miner.query import format_table, run_query
from miner.record import Episode
from miner.settings import SPLIT_MODES
from schemas.files import Skipped
from schemas.views import dataset_views
from snapshotter.cli_common import config_option
from snapshotter.config import load_config
from snapshotter.errors import RedgreenError
from snapshotter.log_redaction import RedactingGroup, install
from snapshotter.paths import default_data_dir
from snapshotter.redact import redact_text

F = TypeVar("F", bound=Callable[..., Any])


@click.group(cls=RedactingGroup)
@click.version_option(package_name="redgreen")
def cli() -> None:
    """Mine green -> red -> green build-repair episodes from a redgreen dataset."""
    # what its libraries log or warn reaches stderr (logging's last resort), redacted
    install()


def data_dir_option(command: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Dataset directory (default: $REDGREEN_DATA_DIR or ~/.local/share/redgreen).",
    )(command)


def repo_option(command: F) -> F:
    """``--repo``: where ``verify`` and ``eval`` find the episodes' base revisions."""
    return click.option(
        "--repo",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Repository holding the episodes' base revisions (default: each recorded"
        " workspace, when it is on this machine).",
    )(command)


def strict_option(command: F) -> F:
    return click.option(
        "--strict",
        is_flag=True,
        help="Fail on a dataset file that cannot be read, instead of skipping it.",
    )(command)


def _echo_skipped(skipped: Skipped) -> None:
    click.echo(redact_text(str(skipped)), err=True)


def _data_dir(value: Path | None) -> Path:
    return value if value is not None else default_data_dir()


def out_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--out", "out_dir", required=True, type=click.Path(path_type=Path), help=help_text
    )


def llm_options(command: F) -> F:
    """The options of the LLM describer, shared by ``run`` and ``describe``."""
    for option in reversed(
        [
            click.option("--model", default=None, help="Model to ask, by its name on the server."),
            click.option(
                "--base-url", default=None, help="OpenAI-compatible endpoint (default: OpenAI's)."
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1, 256),
                default=None,
                help="Requests in flight (8).",
            ),
            click.option(
                "--max-tokens-total",
                type=click.IntRange(1),
                default=None,
                help="Stop cleanly once the run has spent this many tokens (in + out).",
            ),
            click.option(
                "--context-tokens",
                type=click.IntRange(256),
                default=None,
                help="Tokens of error, diffs and files per request (6000).",
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(min=0.1),
                default=None,
                help="Seconds a request may take (120).",
            ),
            click.option("--refresh", is_flag=True, help="Ignore cached answers and ask again."),
            click.option(
                "--dry-run",
                "dry_run",
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="Write the requests to this JSONL file and send nothing.",
            ),
            config_option,
        ]
    ):
        command = option(command)
    return command


@dataclass(frozen=True)
class LLMChoice:
    """The LLM options of one command line, over the config file's [llm] section."""

    model: str | None
    base_url: str | None
    concurrency: int | None
    max_tokens_total: int | None
    context_tokens: int | None
    timeout: float | None
    refresh: bool
    dry_run: Path | None
    config_file: Path | None

    def options(self) -> Any | None:
        """LLMOptions for the model, or None when no model is configured (offline)."""
        settings = load_config(self.config_file).llm
        model = self.model or settings.model
        if model is None:
            return None
        from miner.llm.client import LLMOptions  # imports openai: only when a model is used

        return LLMOptions(
            model=model,
            base_url=self.base_url or settings.base_url,
            api_key=os.environ.get("OPENAI_API_KEY") or settings.api_key,
            concurrency=self.concurrency or settings.concurrency,
            timeout=self.timeout or settings.timeout,
            max_retries=settings.max_retries,
            max_tokens_total=self.max_tokens_total or settings.max_tokens_total,
            context_tokens=self.context_tokens or settings.context_tokens,
            refresh=self.refresh,
            dry_run=self.dry_run,
        )


class Progress:
    """A progress bar on stderr while episodes are described or verified.

    ``step`` may be called from worker threads (verify's pool), so updates take a lock:
    the bar's count and its redraw are not safe to interleave.
    """

    def __init__(self, label: str = "describing") -> None:
        self._label = label
        self._bar: Any = None
        self._lock = threading.Lock()

    def start(self, total: int) -> None:
        if total:
            self._bar = click.progressbar(length=total, label=self._label, file=sys.stderr)
            self._bar.__enter__()

    def step(self, *_finished: object) -> None:
        """One more item done; what was done (an episode, its verdict) does not matter here."""
        with self._lock:
            if self._bar is not None:
                self._bar.update(1)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.__exit__(None, None, None)
                self._bar = None


def _echo_report(report: DescribeReport, dry_run: Path | None) -> None:
    def by_reason(counts: dict[str, int]) -> str:
        return ", ".join(f"{reason} {n}" for reason, n in counts.items()) or "none"

    for note in report.fallbacks:
        click.echo(redact_text(f"note: {note}"), err=True)
    if dry_run is not None:
        click.echo(
            f"dry run: {report.not_sent} episode(s) not sent; their requests are in {dry_run};"
            f" nothing was sent and no output was written"
            f" ({report.cache_hits} answer(s) came from the cache)"
        )
        return
    click.echo(f"described:       {report.described} of {report.selected}")
    failed = sum(report.failed.values())
    click.echo(f"failed:          {failed}" + (f" ({by_reason(report.failed)})" if failed else ""))
    click.echo(
        f"prompt filtered: {report.prompt_filtered}"
        f" (candidates filtered: {by_reason(report.candidates_filtered)})"
    )
    click.echo(f"requests:        {report.requests} ({report.cache_hits} cache hits)")
    click.echo(f"tokens:          {report.tokens_in} in, {report.tokens_out} out")
    click.echo(f"wall time:       {report.seconds:.1f} s")


@cli.command("run")
@data_dir_option
@out_option("Directory for episodes.parquet and train.jsonl.")
@click.option(
    "--offline", is_flag=True, help="Use the offline describer even if a model is configured."
)
@strict_option
@click.option(
    "--split-by",
    type=click.Choice(SPLIT_MODES),
    default=None,
    help="Hold out each host's latest episodes (time) or whole developers (developer) as test"
    " (default: split_by in the [miner] section of the config, else time).",
)
@click.option(
    "--fix-exclude",
    "fix_exclude",
    multiple=True,
    metavar="GLOB",
    help="Leave files matching GLOB out of every fix; repeatable, added to the default lock"
    " files and vendored trees and to the config's fix_exclude. DIR/ matches a directory"
    " anywhere.",
)
@click.option(
    "--default-fix-exclude/--no-default-fix-exclude",
    default=None,
    help="Leave lock files and vendored trees out of fixes, or keep them: then only your"
    " globs are left out (default: default_fix_exclude in the config, else leave them out).",
)
@llm_options
def run_command(
    data_dir: Path | None,
    out_dir: Path,
    offline: bool,
    strict: bool,
    split_by: str | None,
    fix_exclude: tuple[str, ...],
    default_fix_exclude: bool | None,
    **llm: Any,
) -> None:
    """Find episodes, rebuild their fixes, filter and describe them, write the results.

    Writes OUT/episodes.parquet (every episode, with the filters it fails) and
    OUT/train.jsonl (kept, described episodes in the chat fine-tuning shape).
    Kept episodes are described by --model (or [llm] model in the config)
    through any OpenAI-compatible server; without a model, or with
    --offline, the offline describer runs and nothing is sent anywhere.
    A dataset file that cannot be read is named on stderr and skipped
    (--strict: the run fails instead).  Lock files and vendored trees are
    left out of fixes; near-duplicate episodes are kept once; no
    near-duplicate group is split between train and test.  The split, the
    fix excludes and the filters' limits come from the [miner] section of
    the config; the flags override it.
    """
    choice = LLMChoice(**llm)
    progress = Progress()
    try:
        settings = load_config(choice.config_file).miner.settings(
            split_by=split_by, fix_exclude=fix_exclude, default_fix_exclude=default_fix_exclude
        )
        if offline and (choice.model or choice.base_url):
            raise click.UsageError("--offline cannot be used with --model or --base-url")
        options = None if offline else choice.options()
        if options is None and choice.base_url:
            raise click.UsageError(
                "--base-url needs a model: give --model, or set model in the [llm] section"
            )
        if options is None and choice.dry_run is not None:
            raise click.UsageError("--dry-run needs a model: without one nothing would be sent")
        stage = None
        if options is not None:

            def stage(episodes: list[Episode], out: Path) -> tuple[list[Episode], DescribeReport]:
                try:
                    return describe_episodes(
                        episodes, options, out, on_start=progress.start, on_done=progress.step
                    )
                finally:
                    progress.close()

        summary = pipeline.run(
            _data_dir(data_dir),
            out_dir,
            settings=settings,
            describer=get_describer("offline"),
            llm_stage=stage,
            write=choice.dry_run is None or options is None,
            strict=strict,
            on_skipped=_echo_skipped,
        )
    except RedgreenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"snapshots read:  {summary.snapshots}")
    click.echo(f"streams:         {summary.streams}")
    click.echo(f"episodes found:  {summary.episodes}")
    click.echo(f"kept:            {summary.kept} (train {summary.train}, test {summary.test})")
    reasons = ", ".join(f"{name} {count}" for name, count in summary.filters[:5]) or "none"
    click.echo(f"filter reasons:  {reasons}")
    if summary.skipped:
        click.echo(f"skipped files:   {len(summary.skipped)} (unreadable; named on stderr)")
    if summary.llm is not None:
        _echo_report(summary.llm, choice.dry_run)
    for path in summary.files:
        click.echo(f"wrote {path}")


@cli.command("describe")
@out_option("Miner output directory holding episodes.parquet.")
@click.option(
    "--only-failed", is_flag=True, help="Describe only episodes whose description failed."
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Describe at most N episodes.")
@llm_options
def describe_command(out_dir: Path, only_failed: bool, limit: int | None, **llm: Any) -> None:
    """Describe the kept episodes of an earlier run again with the model.

    Reads OUT/episodes.parquet, describes its kept episodes (or, with
    --only-failed, those whose description failed), and writes
    episodes.parquet and train.jsonl again.  Cached answers cost nothing.
    """
    choice = LLMChoice(**llm)
    progress = Progress()
    try:
        options = choice.options()
        if options is None:
            raise click.UsageError(
                "no model: give --model, or set model in the [llm] section of the config"
            )
        try:
            report = redescribe(
                out_dir,
                options,
                only_failed=only_failed,
                limit=limit,
                on_start=progress.start,
                on_done=progress.step,
            )
        finally:
            progress.close()
    except RedgreenError as exc:
        raise click.ClickException(str(exc)) from exc
    _echo_report(report, choice.dry_run)
    for path in report.files:
        click.echo(f"wrote {path}")


@cli.command("sql")
@data_dir_option
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(path_type=Path),
    help="Miner output directory: adds the episodes view.",
)
@click.option("-c", "--command", "query", default=None, help="SQL to run (default: read stdin).")
@click.option("--print-views", is_flag=True, help="Print the CREATE VIEW statements and exit.")
@strict_option
def sql_command(
    data_dir: Path | None,
    out_dir: Path | None,
    query: str | None,
    print_views: bool,
    strict: bool,
) -> None:
    """Query the dataset with DuckDB SQL.

    Views: snapshots, blobs, diagnostics and, with --out, episodes.
    --print-views prints their definitions for any DuckDB client.  A file
    that cannot be read is named on stderr and left out of the views
    (--strict: an error instead).
    """
    directory = _data_dir(data_dir)
    try:
        if print_views:
            check_data_dir(directory)
            views = dataset_views(directory, out_dir)
            if strict and views.skipped:
                raise strict_error(views.skipped)
            for skipped in views.skipped:
                _echo_skipped(skipped)
            click.echo(views.sql, nl=False)
            return
        sql = query if query is not None else sys.stdin.read()
        if not sql.strip():
            return
        with Dataset(directory, out_dir, utc=False, strict=strict) as dataset:
            for skipped in dataset.skipped:
                _echo_skipped(skipped)
            result = run_query(dataset, sql, on_skipped=_echo_skipped)
    except RedgreenError as exc:
        raise click.ClickException(str(exc)) from exc
    if result is not None:
        click.echo(format_table(result), nl=False)


# Commands that live in modules of their own, one line each.
from miner.cli_stats import stats_command  # noqa: E402

cli.add_command(stats_command)
from miner.cli_report import report_command  # noqa: E402

cli.add_command(report_command)
from miner.cli_eval import eval_command  # noqa: E402

cli.add_command(eval_command)
from miner.cli_verify import verify_command  # noqa: E402

cli.add_command(verify_command)
