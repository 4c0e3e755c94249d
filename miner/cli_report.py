"""``miner report``: write the self-contained HTML report of a miner run."""

from __future__ import annotations

from pathlib import Path

import click

from miner.cli import _data_dir, _echo_skipped, data_dir_option, out_option, strict_option
from snapshotter.errors import RedgreenError


@click.command("report")
@out_option("Miner output directory holding episodes.parquet.")
@data_dir_option
@click.option(
    "--html",
    "html",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the page (default: OUT/report.html).",
)
@strict_option
def report_command(out_dir: Path, data_dir: Path | None, html: Path | None, strict: bool) -> None:
    """Write an HTML report of the episodes: charts, the funnel and the kept examples.

    One self-contained file that opens with no network: episodes per day, time
    spent red, the top error kinds with their median repair time, the filter
    funnel, fix sizes, verification outcomes, and a filterable list of the
    kept episodes with their error, prompt and highlighted fix diff.
    Snapshot counts come from --data-dir when it can be read.
    """
    from miner.report import write_report  # imports plotly: only for this command

    try:
        path = write_report(
            out_dir, _data_dir(data_dir), html, strict=strict, on_skipped=_echo_skipped
        )
    except RedgreenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path}")
