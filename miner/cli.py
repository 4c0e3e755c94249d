"""The ``miner`` command line: a thin layer over the typed core.

Each command is a plain function whose docstring is its help text; the work
happens in :mod:`miner.pipeline` and :mod:`miner.query`, which raise
:class:`~snapshotter.errors.RedgreenError` for expected failures.  Only this
module turns those into one-line ``click.ClickException`` messages.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from miner import pipeline
from miner.dataset import Dataset, check_data_dir
from miner.describe import get_describer
from miner.query import format_table, run_query
from schemas.views import all_views
from snapshotter.errors import RedgreenError
from snapshotter.paths import default_data_dir

F = TypeVar("F", bound=Callable[..., Any])

LLM_NOT_AVAILABLE = "the LLM describer is not available yet; use --offline"


def data_dir_option(command: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Dataset directory (default: $REDGREEN_DATA_DIR or ~/.local/share/redgreen).",
    )(command)


def _data_dir(value: Path | None) -> Path:
    return value if value is not None else default_data_dir()


@click.group()
@click.version_option(package_name="redgreen")
def cli() -> None:
    """Mine green -> red -> green build-repair episodes from a redgreen dataset."""


@cli.command("run")
@data_dir_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory for episodes.parquet and train.jsonl.",
)
@click.option("--offline", is_flag=True, help="Describe episodes offline (the default for now).")
@click.option("--model", default=None, help="LLM that describes episodes (not available yet).")
@click.option("--base-url", default=None, help="OpenAI-compatible endpoint of --model.")
def run_command(
    data_dir: Path | None,
    out_dir: Path,
    offline: bool,
    model: str | None,
    base_url: str | None,
) -> None:
    """Find episodes, rebuild their fixes, filter and describe them, write the results.

    Writes OUT/episodes.parquet (every episode, with the filters it fails) and
    OUT/train.jsonl (kept episodes in the chat fine-tuning shape).
    """
    if model is not None or base_url is not None:
        raise click.ClickException(LLM_NOT_AVAILABLE)
    try:
        summary = pipeline.run(_data_dir(data_dir), out_dir, describer=get_describer("offline"))
    except RedgreenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"snapshots read:  {summary.snapshots}")
    click.echo(f"streams:         {summary.streams}")
    click.echo(f"episodes found:  {summary.episodes}")
    click.echo(f"kept:            {summary.kept} (train {summary.train}, test {summary.test})")
    reasons = ", ".join(f"{name} {count}" for name, count in summary.filters[:5]) or "none"
    click.echo(f"filter reasons:  {reasons}")
    for path in summary.files:
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
def sql_command(
    data_dir: Path | None, out_dir: Path | None, query: str | None, print_views: bool
) -> None:
    """Query the dataset with DuckDB SQL.

    Views: snapshots, blobs, diagnostics and, with --out, episodes.
    --print-views prints their definitions for any DuckDB client.
    """
    directory = _data_dir(data_dir)
    try:
        if print_views:
            check_data_dir(directory)
            click.echo(all_views(directory, out_dir), nl=False)
            return
        sql = query if query is not None else sys.stdin.read()
        if not sql.strip():
            return
        with Dataset(directory, out_dir, utc=False) as dataset:
            result = run_query(dataset, sql)
    except RedgreenError as exc:
        raise click.ClickException(str(exc)) from exc
    if result is not None:
        click.echo(format_table(result), nl=False)
