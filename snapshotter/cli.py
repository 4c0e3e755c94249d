"""``snapshotter``: the command line over the snapshotter core.

Every command is a thin wrapper: it parses options, calls the core, and turns
the core's ``RedgreenError`` into a one-line ``click.ClickException``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from snapshotter.build import BuildLimits
from snapshotter.capture import MIB, CaptureSettings
from snapshotter.cli_common import config_option, user_errors
from snapshotter.errors import RedgreenError
from snapshotter.log_redaction import RedactingGroup, install
from snapshotter.paths import default_data_dir

F = TypeVar("F", bound=Callable[..., Any])


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


@click.group(cls=RedactingGroup)
@click.version_option(package_name="redgreen")
@click.option("-v", "--verbose", is_flag=True, help="Log what is done, to stderr.")
def cli(verbose: bool) -> None:
    """Record workspace states and their build results for redgreen."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # every line logged, warned or shown as an error is redacted (a path can hold a token)
    install()


@cli.command()
@click.option(
    "--workspace",
    required=True,
    type=click.Path(path_type=Path),
    help="A Mercurial or Git working copy (any folder inside it).",
)
@_data_dir_option
@_build_options
@user_errors
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
@user_errors
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
@user_errors
def demo(data_dir: Path | None) -> None:
    """Watch redgreen end to end on a throw-away Mercurial repository.

    Makes a small Python program, edits it the way a developer does (green, a
    change that breaks the build, a failed attempt, the fix), snapshots with a
    real build after each step, mines the episode and prints it.
    """
    from snapshotter.demo import run_demo

    run_demo(data_dir, echo=click.echo)


@cli.command()
@click.option(
    "--workspace",
    "workspaces",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Watch this working copy instead of the config's (repeatable).",
)
@_data_dir_option
@click.option("--interval", type=float, default=None, help="Seconds between ticks (default 20).")
@click.option("--build-cmd", default=None, help="Build command for the --workspace ones.")
@config_option
@user_errors
def run(
    workspaces: tuple[Path, ...],
    data_dir: Path | None,
    interval: float | None,
    build_cmd: str | None,
    config_file: Path | None,
) -> None:
    """Run the agent: snapshot every watched workspace every interval, build new states.

    Runs until SIGTERM or Ctrl-C; SIGHUP reloads the config. Meant to run as a
    systemd user service (see install-service).
    """
    from snapshotter.agent import Agent, AgentOptions

    _journal_logging()
    options = AgentOptions(
        config_file=config_file,
        data_dir=data_dir,
        interval=interval,
        workspaces=workspaces,
        build_command=build_cmd,
    )
    Agent(options).run()


def _journal_logging() -> None:
    """Log lines journald understands: a <priority> prefix, no timestamp of our own."""
    import os

    root = logging.getLogger()
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    if os.environ.get("JOURNAL_STREAM"):
        priorities = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}

        class JournalFormatter(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                prefix = f"<{priorities.get(record.levelname, 6)}>"
                return prefix + super().format(record)

        for handler in root.handlers:
            handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    install()  # the filters stay on a handler whose formatter changed; new handlers get one


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@user_errors
def status(as_json: bool) -> None:
    """Show the agent and each workspace: last snapshot, build status, today's rows, pause."""
    from snapshotter.status_view import gather_status, render_status

    report = gather_status()
    if as_json:
        import json

        click.echo(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        click.echo(render_status(report))


@cli.command()
@click.option(
    "--for",
    "duration",
    default=None,
    help="Resume by itself after this long (30m, 1h, 2d); default: until resume.",
)
@user_errors
def pause(duration: str | None) -> None:
    """Stop recording (privacy switch); takes effect within one tick."""
    from snapshotter import control

    state = control.pause(control.parse_duration(duration) if duration else None)
    until = state.until.strftime("%Y-%m-%d %H:%M:%S UTC") if state.until else "you resume"
    click.echo(f"recording paused until {until}; `snapshotter resume` resumes")


@cli.command()
@user_errors
def resume() -> None:
    """Resume recording after a pause."""
    from snapshotter import control

    click.echo("recording resumed" if control.resume() else "recording was not paused")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--workspace",
    type=click.Path(path_type=Path),
    default=Path("."),
    help="The working copy being built (default: the current directory).",
)
@_data_dir_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@user_errors
def build(workspace: Path, data_dir: Path | None, command: tuple[str, ...]) -> None:
    """Run your own build (snapshotter build -- make -j8) and record its result.

    Output and exit code pass through unchanged; the result is recorded
    against the state that was built, so the agent does not build it again.
    """
    import shlex
    import sys

    from snapshotter import control
    from snapshotter.build import BuildLimits, BuildOutcome, run_build
    from snapshotter.snapshot import SnapshotOptions, take_snapshot

    line = shlex.join(command)
    out = sys.stdout.buffer

    def passthrough(chunk: bytes) -> None:
        out.write(chunk)
        out.flush()

    # a developer's own build: no timeout of ours worth killing it for
    limits = BuildLimits(timeout_s=7 * 24 * 3600.0)
    if control.current_pause() is not None:
        outcome = run_build(line, workspace.resolve(), limits, on_output=passthrough)
        raise SystemExit(_exit_code(outcome.exit_code))

    ran: list[BuildOutcome] = []

    def runner(cmd: str, root: Path) -> BuildOutcome:
        ran.append(run_build(cmd, root, limits, on_output=passthrough))
        return ran[0]

    try:
        take_snapshot(
            workspace,
            data_dir or default_data_dir(),
            SnapshotOptions(build_command=line),
            build_runner=runner,
        )
    except RedgreenError as exc:
        # recording failed; the developer's build must still run, and only once
        from snapshotter.redact import redact_text

        click.echo(redact_text(f"snapshotter: build not recorded: {exc}"), err=True)
        if not ran:
            ran.append(run_build(line, workspace.resolve(), limits, on_output=passthrough))
    raise SystemExit(_exit_code(ran[0].exit_code))


def _exit_code(code: int | None) -> int:
    if code is None:
        return 124  # timed out or could not run, as timeout(1) says
    return 128 - code if code < 0 else code


def _register_commands() -> None:
    # commands with a module of their own, kept out of this file to keep it thin
    from snapshotter.cli_service import install_service, uninstall_service
    from snapshotter.cli_setup import COMMANDS

    cli.add_command(install_service)
    cli.add_command(uninstall_service)
    for command in COMMANDS:
        cli.add_command(command)


_register_commands()
