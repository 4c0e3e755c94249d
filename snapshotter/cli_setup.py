"""``snapshotter init``, ``doctor`` and ``gc``: setting a machine up and keeping it tidy.

Thin click commands over ``config.py``, ``detect.py``, ``doctor.py`` and
``retention.py``; they are registered on the ``snapshotter`` group by
``cli.py``.  Library errors (``RedgreenError``) become one-line messages.
"""

from __future__ import annotations

from pathlib import Path

import click

from snapshotter.cli_common import config_option, user_errors


@click.command()
@click.argument(
    "path", required=False, type=click.Path(file_okay=False, path_type=Path), default=None
)
@click.option(
    "--build",
    "build",
    default=None,
    metavar="CMD",
    help="Use this build command without asking ('' for none).",
)
@click.option("--yes", "-y", is_flag=True, help="Accept the proposed build command without asking.")
@config_option
@user_errors
def init(path: Path | None, build: str | None, yes: bool, config_file: Path | None) -> None:
    """Add the working copy at PATH (default: the current folder) to the config.

    Proposes a build command from the repository's marker files (dune-project,
    Cargo.toml, Makefile, go.mod, package.json with TypeScript, pyproject.toml)
    and asks you to confirm it or type another.  The command is only ever taken
    from you, never from a file inside the repository.  Writes the commented
    default config first if there is none.
    """
    from snapshotter.config import add_workspace, display, load_config, write_default_config
    from snapshotter.detect import propose_build
    from snapshotter.paths import default_config_file
    from snapshotter.vcs.base import find_root

    target = config_file or default_config_file()
    root, vcs = find_root(path or Path.cwd())
    existing = load_config(target)  # a broken config is reported before any question
    for ws in existing.workspaces:
        other = ws.path.resolve()
        if other == root:
            raise click.ClickException(
                f"{root} is already a workspace in {display(target)}"
                f" (build: {ws.build or 'none'}); edit the file to change it"
            )
        if other.is_relative_to(root) or root.is_relative_to(other):
            raise click.ClickException(
                f"{root} and the workspace {other} in {display(target)} are nested;"
                " workspaces must not be"
            )
    click.echo(f"{vcs} working copy at {root}")
    proposal = propose_build(root)
    if build is not None:
        command = build.strip() or None
    elif yes:
        command = proposal
    else:
        if proposal:
            click.echo(f"Proposed build command (from the repository's files): {proposal}")
        else:
            click.echo("No build command recognised from the repository's files.")
        answer = click.prompt(
            "Build command to run on each new state (empty for none)",
            default=proposal or "",
            show_default=bool(proposal),
        )
        command = str(answer).strip() or None
    created = not target.exists()
    write_default_config(target)
    add_workspace(root, command, target)
    if created:
        click.echo(f"wrote the commented default config to {display(target)}")
    build_text = f"build command {command!r}" if command else "no build command"
    click.echo(f"added workspace {root} ({vcs}, {build_text}) to {display(target)}")
    click.echo(
        "Next: start the agent with `snapshotter run`, or as a systemd user service with"
        " `snapshotter install-service`."
    )
    click.echo(
        "A running agent reloads its config on SIGHUP; `snapshotter doctor` checks the setup."
    )


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Dataset directory to check (default: from the config).",
)
@config_option
@user_errors
def doctor(data_dir: Path | None, config_file: Path | None) -> None:
    """Check that the agent can run here: tools, config, workspaces, limits, data directory.

    Prints one line per check and, for each failure, what to run to fix it.
    Exits with status 1 if any check failed.
    """
    from snapshotter.doctor import run_checks

    checks = run_checks(config_file, data_dir=data_dir)
    width = max(len(check.name) for check in checks)
    for check in checks:
        mark = click.style("ok  ", fg="green") if check.ok else click.style("FAIL", fg="red")
        click.echo(f"{mark}  {check.name.ljust(width)}  {check.detail}")
    failed = [check for check in checks if not check.ok]
    if not failed:
        click.echo("\nAll checks passed.")
        return
    click.echo("\nTo fix:")
    for check in failed:
        click.echo(f"  {check.name}: {check.fix or check.detail}")
    raise click.exceptions.Exit(1)


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Dataset directory (default: from the config, $REDGREEN_DATA_DIR or XDG).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@config_option
@user_errors
def gc(data_dir: Path | None, dry_run: bool, config_file: Path | None) -> None:
    """Delete the oldest days of data beyond the retention limits of the config.

    Whole days go, oldest first: those older than retention.max_age_days, then
    the oldest until the dataset fits retention.max_bytes.  The newest day
    always stays, and blobs that remaining snapshots still need are kept.
    """
    from snapshotter.config import display, format_size, load_config
    from snapshotter.retention import collect

    config = load_config(config_file)
    target = data_dir or config.data_dir
    report = collect(target, config.retention, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    if report.dates:
        days = ", ".join(day.isoformat() for day in report.dates)
        click.echo(f"{verb} {len(report.dates)} day(s): {days}")
        click.echo(
            f"{verb} {len(report.partitions)} partition(s), freeing {format_size(report.freed)}"
        )
        if report.blobs_copied:
            click.echo(f"kept {report.blobs_copied} blob(s) still referenced by newer snapshots")
    else:
        click.echo(f"nothing to delete in {display(target)}")
    estimate = " (estimated)" if dry_run and report.dates else ""
    size, budget = format_size(report.bytes_after), format_size(report.max_bytes)
    days_kept = config.retention.max_age_days
    click.echo(f"dataset: {size}{estimate} of a {budget} budget, keeping {days_kept} days")


COMMANDS = (init, doctor, gc)
