"""``miner verify``: the command line over :mod:`miner.verify.verify`."""

from __future__ import annotations

from pathlib import Path

import click

from miner.cli import Progress, _data_dir, data_dir_option, out_option, repo_option
from miner.verify.verify import OUTCOMES, verify_out_dir
from snapshotter.build import BuildLimits
from snapshotter.errors import RedgreenError


@click.command("verify")
@out_option("Miner output directory holding episodes.parquet.")
@data_dir_option
@repo_option
@click.option(
    "--jobs", type=click.IntRange(1, 256), default=None, help="Workers (default: the cores)."
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Verify at most N episodes.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=600.0,
    show_default=True,
    help="Seconds one build may take before its process group is killed.",
)
@click.option("--refresh", is_flag=True, help="Verify again episodes already verified.")
def verify_command(
    out_dir: Path,
    data_dir: Path | None,
    repo: Path | None,
    jobs: int | None,
    limit: int | None,
    timeout: float,
    refresh: bool,
) -> None:
    """Rebuild each kept episode's red state and check that its fix turns it green.

    The red state is the base revision's tree, read from the repository
    (--repo, else the recorded workspace when it is on this machine) into a
    scratch copy outside it, with the recorded files laid over it.  The
    recorded build command must fail with the recorded error, the fix diff
    must apply with patch, and the build must then pass.  Each episode gets
    verified = reproduced, not_red, does_not_apply, not_green or no_repo, with
    the builds' output, in OUT/episodes.parquet; train.jsonl loses disproved
    episodes.  Workers keep warm scratch copies and build incrementally.
    Only episodes not verified yet, unless --refresh.  The working copy is
    never touched.  A progress bar on stderr counts the episodes verified.
    """
    limits = BuildLimits(timeout_s=timeout)
    progress = Progress("verifying")
    try:
        try:
            report = verify_out_dir(
                _data_dir(data_dir),
                out_dir,
                repo=repo,
                jobs=jobs,
                limit=limit,
                limits=limits,
                refresh=refresh,
                on_start=progress.start,
                on_done=progress.step,
            )
        finally:
            progress.close()
    except RedgreenError as exc:
        raise click.ClickException(str(exc)) from exc
    if not report.selected:
        click.echo("nothing to verify (every kept episode is verified; --refresh redoes them)")
        return
    click.echo(f"verified:        {report.selected} episode(s) in {report.seconds:.1f} s")
    for name in OUTCOMES:
        if name in report.outcomes:
            click.echo(f"{name + ':':<16} {report.outcomes[name]}")
    for path in report.files:
        click.echo(f"wrote {path}")
