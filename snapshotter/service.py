"""Install and remove the agent's systemd user unit.

The unit is a versioned file, ``systemd/snapshotter.service``; a wheel carries
it as ``snapshotter/systemd/snapshotter.service``.  Installing copies it to
``$XDG_CONFIG_HOME/systemd/user/`` with ``ExecStart=`` pointing at the
snapshotter actually running this code, then asks the user's systemd manager
(``systemctl --user``) to load, enable and start it.  The file is always
written first, so when the manager cannot be reached (no user session, no
systemd) the error says where it is and what to run by hand.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from snapshotter.errors import RedgreenError

UNIT_NAME = "snapshotter.service"
UNIT_MODE = 0o644
# `enable --now` waits for READY=1, which the unit allows 3 minutes.
SYSTEMCTL_TIMEOUT = 240.0
LINGER_HINT = (
    "To keep the agent running while you are logged out (and start it at boot), "
    "run: loginctl enable-linger $USER"
)
# `disable --now` of a unit that is not there: nothing to undo, not a failure.
_NOT_THERE = re.compile(r"not loaded|does not exist|No such file", re.IGNORECASE)
_EXEC_START = re.compile(r"^ExecStart=(\S+)(.*)$", re.MULTILINE)


class ServiceError(RedgreenError):
    """The unit could not be installed or removed, or systemd refused it."""


@dataclass(frozen=True)
class ServiceReport:
    """What ``install_service`` or ``uninstall_service`` did, in lines a person reads."""

    unit_path: Path
    executable: Path | None
    commands: tuple[tuple[str, ...], ...]
    lines: tuple[str, ...]


def user_unit_dir() -> Path:
    """Where the user's systemd manager looks for units the user wrote."""
    config = os.environ.get("XDG_CONFIG_HOME")
    return (Path(config) if config else Path.home() / ".config") / "systemd" / "user"


def unit_template() -> Path:
    """The unit as shipped: inside the installed package, else in the repository."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "systemd" / UNIT_NAME, package.parent / "systemd" / UNIT_NAME):
        if candidate.is_file():
            return candidate
    raise ServiceError(f"the unit file {UNIT_NAME} is missing from this installation")


def find_executable() -> Path:
    """The ``snapshotter`` program running now, by a path systemd can execute.

    Symlinks are kept (``~/.local/bin/snapshotter`` survives an upgrade that
    replaces what it points to).
    """
    candidates: list[Path] = []
    if sys.argv and Path(sys.argv[0]).name == "snapshotter":
        candidates.append(Path(sys.argv[0]).absolute())
    candidates.append(Path(sys.executable).parent / "snapshotter")
    found = shutil.which("snapshotter")
    if found:
        candidates.append(Path(found).absolute())
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceError(
        "cannot find the snapshotter executable (not next to "
        f"{sys.executable} nor on PATH); install redgreen so `snapshotter` is a program"
    )


def render_unit(template: str, executable: Path) -> str:
    """The unit text with ``ExecStart=`` running ``executable``, its arguments kept."""
    matches = _EXEC_START.findall(template)
    if len(matches) != 1:
        raise ServiceError(f"the unit file {UNIT_NAME} must have exactly one ExecStart= line")
    return _EXEC_START.sub(
        lambda m: f"ExecStart={_unit_executable(str(executable))}{m.group(2)}", template
    )


def install_service(enable: bool) -> ServiceReport:
    """Write the user unit; with ``enable``, load it, enable it and start it now."""
    executable = find_executable()
    unit_path = user_unit_dir() / UNIT_NAME
    _write_unit(unit_path, render_unit(unit_template().read_text(), executable))
    lines = [f"Wrote {unit_path} (ExecStart={executable} run)."]
    steps = [("daemon-reload",), ("enable", "--now", UNIT_NAME)]
    commands: list[tuple[str, ...]] = []
    if enable:
        systemctl = shutil.which("systemctl")
        if systemctl is None:
            raise ServiceError(
                f"the unit was written to {unit_path}, but systemctl was not found "
                f"(no systemd here?); to start it, run: {_by_hand(steps)}"
            )
        for args in steps:
            done = _run_systemctl(systemctl, args)
            commands.append(done.args_run)
            if done.failure:
                raise ServiceError(
                    f"the unit was written to {unit_path}, but {done.describe()}; "
                    f"once your user manager runs, run: {_by_hand(steps)}"
                )
        lines.append(f"Enabled and started {UNIT_NAME}.")
        lines.append(f"Follow its log with: journalctl --user -u {UNIT_NAME} -f")
    else:
        lines.append(f"To enable and start it, run: {_by_hand(steps)}")
    lines.append(LINGER_HINT)
    return ServiceReport(unit_path, executable, tuple(commands), tuple(lines))


def uninstall_service() -> ServiceReport:
    """Stop and disable the agent, remove its unit file and let the manager forget it.

    Every step runs even when an earlier one failed; the failures are then
    raised together in one line.  Without systemctl there is no manager that
    could be running the agent, so only the file is removed.
    """
    unit_path = user_unit_dir() / UNIT_NAME
    steps = [("disable", "--now", UNIT_NAME), ("daemon-reload",)]
    systemctl = shutil.which("systemctl")
    failures: list[str] = []
    commands: list[tuple[str, ...]] = []
    lines: list[str] = []
    if systemctl is not None:
        done = _run_systemctl(systemctl, steps[0])
        commands.append(done.args_run)
        if done.failure and not _NOT_THERE.search(done.failure):
            failures.append(done.describe())
    existed = unit_path.exists() or unit_path.is_symlink()
    # What `disable` removes, should the manager not have been reachable to do it.
    wants = unit_path.parent / "default.target.wants" / UNIT_NAME
    try:
        unit_path.unlink(missing_ok=True)
        if wants.is_symlink():
            wants.unlink()
    except OSError as exc:
        failures.append(f"cannot remove {exc.filename}: {exc.strerror}")
    else:
        lines.append(f"Removed {unit_path}." if existed else f"{unit_path} was not installed.")
    if systemctl is not None:
        done = _run_systemctl(systemctl, steps[1])
        commands.append(done.args_run)
        if done.failure:
            failures.append(done.describe())
    if failures:
        # The file and its enable link are gone by now: stopping is all that is left to do.
        by_hand = f"systemctl --user stop {UNIT_NAME}; systemctl --user daemon-reload"
        raise ServiceError(
            f"uninstalling {unit_path}: {'; '.join(failures)}; run by hand: {by_hand}"
        )
    return ServiceReport(unit_path, None, tuple(commands), tuple(lines))


@dataclass(frozen=True)
class _Done:
    args_run: tuple[str, ...]
    failure: str | None

    def describe(self) -> str:
        return f"`systemctl {' '.join(self.args_run)}` failed: {self.failure}"


def _run_systemctl(systemctl: str, args: tuple[str, ...]) -> _Done:
    argv = ("--user", *args)
    try:
        result = subprocess.run(
            [systemctl, *argv],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=SYSTEMCTL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return _Done(argv, f"no answer within {SYSTEMCTL_TIMEOUT:.0f} s")
    except OSError as exc:
        return _Done(argv, exc.strerror or str(exc))
    if result.returncode == 0:
        return _Done(argv, None)
    return _Done(argv, _first_line(result.stderr) or f"exit status {result.returncode}")


def _write_unit(path: Path, text: str) -> None:
    """Write ``path`` whole (a temporary name, then rename) with mode 0644."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text)
        temporary.chmod(UNIT_MODE)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise ServiceError(f"cannot write the unit {path}: {exc.strerror}") from exc


def _by_hand(steps: list[tuple[str, ...]]) -> str:
    return " && ".join(f"systemctl --user {' '.join(args)}" for args in steps)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _unit_executable(path: str) -> str:
    """``path`` as the program of a unit's command line.

    Specifiers (``%``) are expanded there, variables (``$``) are not; quotes
    keep spaces in.  systemd refuses outright a program whose name holds a
    quote, a backslash or a control character, quoted or not.
    """
    if re.search(r"[\"'\\\x00-\x1f\x7f]", path):
        raise ServiceError(
            f"systemd cannot run {path!r}: its path holds a quote, backslash or control "
            "character; install redgreen under a plainer path"
        )
    escaped = path.replace("%", "%%")
    return f'"{escaped}"' if re.search(r"\s", escaped) else escaped
