"""``miner stats``: the funnel from snapshots to training lines, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from miner.cli import _data_dir, _echo_skipped, data_dir_option, out_option, strict_option
from miner.stats import compute_stats, format_stats
from snapshotter.errors import RedgreenError


@click.command("stats")
@out_option("Miner output directory holding episodes.parquet.")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of a table.")
@strict_option
def stats_command(out_dir: Path, data_dir: Path | None, as_json: bool, strict: bool) -> None:
    """Show the funnel: snapshots -> usable states -> episodes -> filters -> kept.

    Overall and per host: the snapshots recorded (every row), the usable states
    (rows built green or red on their own state), the episodes found, the
    episodes left after each rejecting filter in turn (and how many it
    removed), the kept ones, and among those the ones `miner verify`
    reproduced and the ones described (the lines of train.jsonl).  Snapshots
    and usable states come from --data-dir; without a readable dataset they
    are left out and the rest still comes from OUT/episodes.parquet.
    """
    try:
        stats = compute_stats(out_dir, _data_dir(data_dir), strict=strict, on_skipped=_echo_skipped)
    except RedgreenError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(stats.to_json(), indent=2))
    else:
        click.echo(format_stats(stats), nl=False)
