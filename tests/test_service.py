"""The systemd user unit, checked by systemd itself, and install-/uninstall-service."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from snapshotter.cli_service import install_service, uninstall_service
from snapshotter.service import UNIT_NAME, ServiceError, render_unit, unit_template

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / UNIT_NAME
VENV_SNAPSHOTTER = Path(sys.executable).parent / "snapshotter"
BY_HAND = "systemctl --user daemon-reload && systemctl --user enable --now snapshotter.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat, unlike in an INI file)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_unit_has_the_directives_the_agent_relies_on() -> None:
    unit = parse_unit(UNIT.read_text())
    assert set(unit) == {"Unit", "Service", "Install"}
    assert unit["Unit"]["Description"] and unit["Unit"]["Documentation"]
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert unit["Service"]["ExecStart"] == ["%h/.local/bin/snapshotter run"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert service["KillMode"] == "mixed"
    assert service["NoNewPrivileges"] == "yes"
    assert service["Nice"] == "10"
    assert service["IOSchedulingClass"] == "idle"
    assert "CPUWeight" in service or service.get("CPUSchedulingPolicy") == "idle"
    assert service["MemoryMax"] and service["MemoryHigh"]
    assert service["Environment"] == "PYTHONUNBUFFERED=1"
    assert service["RestartSec"] and service["TimeoutStopSec"]
    # Ticks every 20 s each send WATCHDOG=1: several may be late before a restart.
    assert service["WatchdogSec"].endswith("s") and int(service["WatchdogSec"][:-1]) >= 60
    assert unit["Install"]["WantedBy"] == ["default.target"]


def _verify(unit_path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install the Debian package `systemd`"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return subprocess.run(
        [analyze, "--user", "verify", str(unit_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"},
        timeout=60,
        check=False,
    )


def _about_our_unit(output: str) -> list[str]:
    return [line for line in output.splitlines() if "snapshotter" in line]


@pytest.mark.parametrize("where", ["venv", "awkward"])
def test_systemd_analyze_verify_accepts_the_installed_unit(tmp_path: Path, where: str) -> None:
    if where == "venv":
        executable = VENV_SNAPSHOTTER
    else:
        # Spaces, a specifier and a variable sign: ExecStart must quote and escape them.
        executable = tmp_path / "my tools 100% $HOME" / "snapshotter"
        executable.parent.mkdir()
        executable.write_text("#!/bin/sh\n")
        executable.chmod(0o755)
    assert os.access(executable, os.X_OK)
    copy = tmp_path / "unit" / UNIT_NAME
    copy.parent.mkdir()
    copy.write_text(render_unit(UNIT.read_text(), executable))
    done = _verify(copy, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _about_our_unit(done.stdout + done.stderr) == []


def test_systemd_analyze_verify_does_complain_here(tmp_path: Path) -> None:
    """The check above is real: a mistake in our unit shows up in what it filters."""
    copy = tmp_path / "unit" / UNIT_NAME
    copy.parent.mkdir()
    text = render_unit(UNIT.read_text(), VENV_SNAPSHOTTER)
    copy.write_text(text.replace("Nice=10\n", "Nice=10\nNicety=11\n"))
    done = _verify(copy, tmp_path)
    assert any("Nicety" in line for line in _about_our_unit(done.stderr)), done.stderr


@pytest.mark.parametrize("character", ["'", '"', "\\", "\t"])
def test_a_path_systemd_would_refuse_is_refused_here(tmp_path: Path, character: str) -> None:
    executable = f"/opt/it{character}s/snapshotter"
    with pytest.raises(ServiceError, match="quote, backslash or control character"):
        render_unit(UNIT.read_text(), Path(executable))
    # systemd's own verdict on that path, however it is quoted:
    quoted = '"' + executable.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") + '"'
    copy = tmp_path / "unit" / UNIT_NAME
    copy.parent.mkdir()
    copy.write_text(UNIT.read_text().replace("%h/.local/bin/snapshotter", quoted))
    done = _verify(copy, tmp_path)
    assert done.returncode != 0
    assert "Executable name contains special characters" in done.stderr


def test_the_template_is_the_repository_unit() -> None:
    assert unit_template().read_bytes() == UNIT.read_bytes()


def installed_unit() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / UNIT_NAME


# A systemd user manager cannot run in this container (no systemd as pid 1, no
# user session bus), so `systemctl --user` is the one thing these tests stand in
# for: a script first on PATH that records its arguments and answers like
# systemctl does.  The unit itself is checked by the real systemd-analyze above.
class FakeSystemctl:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = tmp_path / "fake-bin"
        self.bin.mkdir()
        self.log = tmp_path / "systemctl.log"
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}")
        self.answer()

    def answer(self, fail_when: str = "", stderr: str = "", code: int = 1) -> None:
        """Succeed, or fail with ``stderr`` when the arguments contain ``fail_when``."""
        failing = (
            f'case "$*" in *"{fail_when}"*) printf "%s\\n" "{stderr}" >&2; exit {code};; esac\n'
            if fail_when
            else ""
        )
        script = self.bin / "systemctl"
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{self.log}"\n{failing}exit 0\n')
        script.chmod(0o755)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSystemctl:
    return FakeSystemctl(tmp_path, monkeypatch)


def invoke(command: click.Command, *args: str) -> Result:
    return CliRunner().invoke(command, list(args))


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def test_no_enable_only_writes_the_unit(systemctl: FakeSystemctl) -> None:
    old_umask = os.umask(0o077)
    try:
        result = invoke(install_service, "--no-enable")
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    unit = installed_unit()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    text = unit.read_text()
    assert parse_unit(text)["Service"]["ExecStart"] == [f"{VENV_SNAPSHOTTER} run"]
    assert text == UNIT.read_text().replace(
        "ExecStart=%h/.local/bin/snapshotter run", f"ExecStart={VENV_SNAPSHOTTER} run"
    )
    assert systemctl.calls() == []
    assert f"Wrote {unit}" in result.stdout
    assert f"To enable and start it, run: {BY_HAND}" in result.stdout
    assert "loginctl enable-linger $USER" in result.stdout
    assert not list(unit.parent.glob(".*tmp"))


def test_install_enables_and_starts_through_systemctl(systemctl: FakeSystemctl) -> None:
    result = invoke(install_service)
    assert result.exit_code == 0, result.output
    assert systemctl.calls() == [
        "--user daemon-reload",
        "--user enable --now snapshotter.service",
    ]
    assert installed_unit().is_file()
    assert "Enabled and started snapshotter.service" in result.stdout
    assert "loginctl enable-linger $USER" in result.stdout


def test_install_again_replaces_the_unit(systemctl: FakeSystemctl) -> None:
    installed_unit().parent.mkdir(parents=True)
    installed_unit().write_text("[Service]\nExecStart=/old/snapshotter run\n")
    installed_unit().chmod(0o600)
    assert invoke(install_service, "--no-enable").exit_code == 0
    assert f"ExecStart={VENV_SNAPSHOTTER} run" in installed_unit().read_text()
    assert stat.S_IMODE(installed_unit().stat().st_mode) == 0o644


def test_install_without_a_user_manager_says_where_the_unit_is(
    systemctl: FakeSystemctl,
) -> None:
    systemctl.answer("daemon-reload", "Failed to connect to bus: No medium found")
    result = invoke(install_service)
    assert result.exit_code == 1
    assert error_lines(result) == [
        f"Error: the unit was written to {installed_unit()}, but "
        "`systemctl --user daemon-reload` failed: Failed to connect to bus: No medium found; "
        f"once your user manager runs, run: {BY_HAND}"
    ]
    assert installed_unit().is_file()
    assert systemctl.calls() == ["--user daemon-reload"]
    assert "loginctl enable-linger $USER" in result.stderr
    assert "Traceback" not in result.output


def test_install_when_the_agent_fails_to_start(systemctl: FakeSystemctl) -> None:
    systemctl.answer(
        "enable",
        "Job for snapshotter.service failed because the control process exited with error code.",
    )
    result = invoke(install_service)
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert str(installed_unit()) in line
    assert "`systemctl --user enable --now snapshotter.service` failed: Job for" in line
    assert systemctl.calls() == ["--user daemon-reload", "--user enable --now snapshotter.service"]


def test_install_without_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = invoke(install_service)
    assert result.exit_code == 1
    assert error_lines(result) == [
        f"Error: the unit was written to {installed_unit()}, but systemctl was not found "
        f"(no systemd here?); to start it, run: {BY_HAND}"
    ]
    assert installed_unit().is_file()


def test_uninstall_disables_removes_and_reloads(systemctl: FakeSystemctl) -> None:
    assert invoke(install_service).exit_code == 0
    wants = installed_unit().parent / "default.target.wants" / UNIT_NAME
    wants.parent.mkdir()
    wants.symlink_to(installed_unit())  # what a real `enable` leaves behind
    result = invoke(uninstall_service)
    assert result.exit_code == 0, result.output
    assert systemctl.calls()[2:] == [
        "--user disable --now snapshotter.service",
        "--user daemon-reload",
    ]
    assert not installed_unit().exists()
    assert not wants.is_symlink()
    assert f"Removed {installed_unit()}." in result.stdout


def test_uninstall_of_a_unit_systemd_never_loaded(systemctl: FakeSystemctl) -> None:
    systemctl.answer(
        "disable", "Failed to disable unit: Unit file snapshotter.service does not exist."
    )
    result = invoke(uninstall_service)
    assert result.exit_code == 0, result.output
    assert f"{installed_unit()} was not installed." in result.stdout
    assert systemctl.calls() == [
        "--user disable --now snapshotter.service",
        "--user daemon-reload",
    ]


def test_uninstall_reports_other_failures_and_still_removes_the_file(
    systemctl: FakeSystemctl,
) -> None:
    assert invoke(install_service, "--no-enable").exit_code == 0
    systemctl.answer("--user", "Failed to connect to bus: No medium found")
    result = invoke(uninstall_service)
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith(f"Error: uninstalling {installed_unit()}: ")
    assert "`systemctl --user disable --now snapshotter.service` failed: Failed to connect" in line
    assert "`systemctl --user daemon-reload` failed" in line
    assert line.endswith(
        "run by hand: systemctl --user stop snapshotter.service; systemctl --user daemon-reload"
    )
    assert not installed_unit().exists()


def test_uninstall_without_systemctl_removes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert invoke(install_service, "--no-enable").exit_code == 0
    result = invoke(uninstall_service)
    assert result.exit_code == 0, result.output
    assert not installed_unit().exists()


def test_the_commands_have_help() -> None:
    for command, name in (
        (install_service, "install-service"),
        (uninstall_service, "uninstall-service"),
    ):
        assert command.name == name and command.help
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
    assert "--no-enable" in invoke(install_service, "--help").output
