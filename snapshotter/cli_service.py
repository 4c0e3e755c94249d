"""``snapshotter install-service`` and ``uninstall-service``: the agent under systemd.

Thin commands over ``snapshotter.service``; registered on the ``snapshotter``
group by ``snapshotter.cli``.
"""

from __future__ import annotations

import click

from snapshotter import service
from snapshotter.errors import RedgreenError


@click.command("install-service")
@click.option(
    "--no-enable",
    is_flag=True,
    help="Only write the unit file; do not enable or start it.",
)
def install_service(no_enable: bool) -> None:
    """Install the agent as a systemd user service and start it.

    Writes ~/.config/systemd/user/snapshotter.service (running this
    snapshotter), then runs `systemctl --user daemon-reload` and
    `systemctl --user enable --now snapshotter.service`.
    """
    try:
        report = service.install_service(enable=not no_enable)
    except RedgreenError as exc:
        click.echo(service.LINGER_HINT, err=True)
        raise click.ClickException(str(exc)) from exc
    for line in report.lines:
        click.echo(line)


@click.command("uninstall-service")
def uninstall_service() -> None:
    """Stop and disable the agent's systemd user service and remove its unit file."""
    try:
        report = service.uninstall_service()
    except RedgreenError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in report.lines:
        click.echo(line)
