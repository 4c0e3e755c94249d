"""``snapshotter``: the command line over the snapshotter core.

Every command is a thin wrapper: it parses options, calls the core, and turns
the core's ``RedgreenError`` into a one-line ``click.ClickException``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from snapshotter.build import BuildLimits
from snapshotter.capture import MIB, CaptureSettings
from snapshotter.errors import RedgreenError
from snapshotter.paths import default_data_dir

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RedgreenError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _data_dir_option(func: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Dataset directory (default: $REDGREEN_DATA_DIR or ~/.local/share/redgreen).",
    )(func)


def _build_options(func: F) -> F:
    options = [
        click.option(
            "--build-cmd",
            default=None,
            help="Build command, run in the workspace root through your shell.",
        ),
        click.option(
            "--build-timeout",
            type=float,
            default=600.0,
            show_default=True,
            help="Seconds before the build's process group is killed (status timeout).",
        ),
        click.option(
            "--max-file-size",
            type=int,
            default=MIB,
            show_default=True,
            help="Files larger than this many bytes are recorded by hash and size only.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
@click.version_option(package_name="redgreen")
@click.option("-v", "--verbose", is_flag=True, help="Log what is done, to stderr.")
def cli(verbose: bool) -> None:
    """Record workspace states and their build results for redgreen."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@cli.command()
@click.option(
    "--workspace",
    required=True,
    type=click.Path(path_type=Path),
    help="A Mercurial or Git working copy (any folder inside it).",
)
@_data_dir_option
@_build_options
@_user_errors
def snapshot(
    workspace: Path,
    data_dir: Path | None,
    build_cmd: str | None,
    build_timeout: float,
    max_file_size: int,
) -> None:
    """Record one snapshot of a workspace now, with the build result of that state.

    The data is durable and visible to the miner when this returns.
    """
    from snapshotter.snapshot import SnapshotOptions, take_snapshot

    options = SnapshotOptions(
        build_command=build_cmd,
        build_limits=BuildLimits(timeout_s=build_timeout),
        capture=CaptureSettings(max_file_bytes=max_file_size),
    )
    report = take_snapshot(workspace, data_dir or default_data_dir(), options)
    build = f", build {report.build_status}" if report.build_status else ""
    recorded = (
        f"{report.rows_recorded} row(s) recorded"
        if report.rows_recorded
        else "unchanged, nothing recorded"
    )
    changed = f"{report.files_changed} file(s) changed"
    click.echo(f"{report.workspace} ({report.vcs}): {changed}{build}; {recorded}")


@cli.command()
@_data_dir_option
@_user_errors
def flush(data_dir: Path | None) -> None:
    """Roll everything in the spool into Parquet now."""
    from snapshotter.roll import roll
    from snapshotter.spool import Spool

    target = data_dir or default_data_dir()
    with Spool.open(target) as spool:
        result = roll(spool, target)
    click.echo(f"rolled {result.rows} row(s) and {result.blobs} blob(s) into Parquet")


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the demo's dataset here (default: a temporary folder, removed afterwards).",
)
@_user_errors
def demo(data_dir: Path | None) -> None:
    """Watch redgreen end to end on a throw-away Mercurial repository.

    Makes a small Python program, edits it the way a developer does (green, a
    change that breaks the build, a failed attempt, the fix), snapshots with a
    real build after each step, mines the episode and prints it.
    """
    from snapshotter.demo import run_demo

    run_demo(data_dir, echo=click.echo)


def _register_commands() -> None:
    # commands with a module of their own, kept out of this file to keep it thin
    from snapshotter.cli_service import install_service, uninstall_service

    cli.add_command(install_service)
    cli.add_command(uninstall_service)


_register_commands()
