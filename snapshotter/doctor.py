"""``snapshotter doctor``: check that this machine can run the agent, and say how to fix it.

Each check is a :class:`Check`: a name, whether it passed, what was found,
and for a failure the command or edit that fixes it.  The checks only look:
they create nothing, run no build and read no repository content beyond
directory listings (to count the inotify watches a workspace needs).

    tools          Mercurial importable, git on PATH
    config         the config file loads; at least one workspace
    workspace      each exists, is readable and is a working copy's root
    build          each build command's program is found
    inotify        max_user_watches against the directories to watch
    data dir       exists or can be created, writable, private (0700)
    disk           free space where the data goes

The machine's facts that tests need to vary (the inotify limit, the free-space
threshold) are parameters of :func:`run_checks`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import os
import re
import shlex
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from snapshotter.config import Config, WorkspaceConfig, display, format_size, load_config
from snapshotter.errors import ConfigError, WorkspaceError
from snapshotter.vcs.base import find_root

GIB = 1024**3
INOTIFY_LIMIT_FILE = Path("/proc/sys/fs/inotify/max_user_watches")
# Counting stops here: past it the answer ("more than this") is already clear.
DIRECTORY_CAP = 500_000
# Directories the agent does not watch: VCS metadata and the usual big ignored trees.
UNWATCHED_DIRS = frozenset(
    {
        ".hg",
        ".git",
        "node_modules",
        "_build",
        "target",
        "__pycache__",
        ".venv",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)
# Words that start a shell command without naming a program on PATH.
_SHELL_WORDS = frozenset(
    {"!", ".", ":", "[", "[[", "{", "(", "builtin", "case", "cd", "command", "eval", "exec"}
    | {"export", "for", "if", "set", "source", "test", "time", "true", "false", "until", "while"}
)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


def run_checks(
    config_path: Path | None = None,
    *,
    data_dir: Path | None = None,
    max_user_watches: int | None = None,
    min_free_bytes: int = GIB,
    directory_cap: int = DIRECTORY_CAP,
) -> list[Check]:
    """Every check, in the order a person fixes them.

    ``data_dir`` overrides the config's; ``max_user_watches`` the kernel's limit
    (default: read from ``/proc``).
    """
    config_check, config = _check_config(config_path)
    workspace_checks: list[Check] = []
    roots: list[tuple[WorkspaceConfig, str | None]] = []
    if config is not None:
        if not config.workspaces:
            workspace_checks.append(
                Check(
                    "workspaces",
                    False,
                    "no [[workspace]] in the config: the agent has nothing to watch",
                    "snapshotter init PATH",
                )
            )
        for number, workspace in enumerate(config.workspaces, start=1):
            check, vcs = _check_workspace(workspace, number, config)
            roots.append((workspace, vcs))
            workspace_checks += [check, _check_build(workspace, number, config)]
    vcs_used = {vcs for _ws, vcs in roots}
    target = data_dir or (config.data_dir if config is not None else None)
    checks = [
        _check_mercurial("hg" in vcs_used),
        _check_git("git" in vcs_used),
        config_check,
        *workspace_checks,
    ]
    if roots:
        checks.append(
            _check_inotify(
                [ws.path for ws, vcs in roots if vcs is not None],
                _read_limit() if max_user_watches is None else max_user_watches,
                directory_cap,
            )
        )
    if target is not None:
        checks += [_check_data_dir(target), _check_disk(target, min_free_bytes, config)]
    return checks


# -- tools ------------------------------------------------------------------


def _check_mercurial(needed: bool) -> Check:
    try:
        importlib.import_module("mercurial")
        version = importlib.metadata.version("mercurial")
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return Check(
            "mercurial",
            not needed,
            "cannot import mercurial" + ("" if needed else " (no hg workspace configured)"),
            "reinstall redgreen (it depends on mercurial): uv sync, or pip install mercurial",
        )
    return Check("mercurial", True, f"mercurial {version} importable")


def _check_git(needed: bool) -> Check:
    found = shutil.which("git")
    if found is None:
        return Check(
            "git",
            not needed,
            "git not found on PATH" + ("" if needed else " (no git workspace configured)"),
            "install git (e.g. sudo apt install git)",
        )
    return Check("git", True, f"git found at {found}")


# -- config and workspaces ----------------------------------------------------


def _check_config(path: Path | None) -> tuple[Check, Config | None]:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return Check("config", False, str(exc), "edit the config file as the message says"), None
    if config.source is None:
        detail = "no config file: defaults, no workspace"
    else:
        detail = f"{display(config.source)} loads, {len(config.workspaces)} workspace(s)"
    return Check("config", True, detail), config


def _check_workspace(
    workspace: WorkspaceConfig, number: int, config: Config
) -> tuple[Check, str | None]:
    name = f"workspace {display(workspace.path)}"
    where = display(config.source) if config.source else "the config"
    remove = f"or remove workspace[{number}] from {where}"
    path = workspace.path
    if not path.exists():
        return Check(name, False, "does not exist", f"clone or mount it there, {remove}"), None
    if not path.is_dir():
        return Check(
            name, False, "is not a directory", f"point path at a directory, {remove}"
        ), None
    if not os.access(path, os.R_OK | os.X_OK):
        return Check(name, False, "cannot be read", f"chmod u+rx {shlex.quote(str(path))}"), None
    try:
        root, vcs = find_root(path)
    except WorkspaceError:
        return (
            Check(
                name,
                False,
                "is not inside a Mercurial or Git working copy",
                f"run hg init or git init there, {remove}",
            ),
            None,
        )
    if root != path.resolve():
        return (
            Check(
                name,
                False,
                f"is inside the {vcs} working copy {display(root)}, not its root",
                f"set workspace[{number}].path = {display(root)!r} in {where}",
            ),
            vcs,
        )
    return Check(name, True, f"{vcs} working copy"), vcs


def _check_build(workspace: WorkspaceConfig, number: int, config: Config) -> Check:
    name = f"build {display(workspace.path)}"
    where = display(config.source) if config.source else "the config"
    change = f"install it, or change workspace[{number}].build in {where}"
    if workspace.build is None:
        return Check(name, True, "no build command: states are recorded without build results")
    program = build_program(workspace.build)
    if program is None:
        return Check(
            name,
            False,
            f"cannot find the program in {workspace.build!r}",
            f"fix workspace[{number}].build in {where}",
        )
    if program in _SHELL_WORDS:
        return Check(name, True, f"{program!r} is shell syntax; the programs after it not checked")
    if "/" in program:
        full = Path(os.path.expanduser(program))
        full = full if full.is_absolute() else workspace.path / full
        if full.is_file() and os.access(full, os.X_OK):
            return Check(name, True, f"{program} is executable")
        return Check(name, False, f"{program} is not an executable file", change)
    found = shutil.which(program)
    if found is None:
        return Check(name, False, f"{program} not found on PATH", change)
    detail = f"{program} found at {display(Path(found))}"
    if display(Path(found)).startswith("~"):
        detail += " (in your home: the agent's service needs it on its PATH too)"
    return Check(name, True, detail)


def build_program(command: str) -> str | None:
    """The program a build command runs: its first word after environment assignments."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    for word in words:
        if not _ASSIGNMENT.match(word):
            return word
    return None


# -- inotify ------------------------------------------------------------------


def _read_limit() -> int | None:
    try:
        return int(INOTIFY_LIMIT_FILE.read_text().strip())
    except (OSError, ValueError):
        return None


def count_directories(root: Path, cap: int = DIRECTORY_CAP) -> int:
    """Directories under ``root`` (itself included) the agent watches, up to ``cap``."""
    count = 0
    stack = [root]
    while stack and count < cap:
        directory = stack.pop()
        count += 1
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name in UNWATCHED_DIRS:
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                    except OSError:
                        continue
        except OSError:
            continue
    return min(count, cap)


def _check_inotify(roots: Iterable[Path], limit: int | None, cap: int) -> Check:
    name = "inotify watches"
    if limit is None:
        return Check(name, True, f"no {INOTIFY_LIMIT_FILE}: not Linux, no inotify limit to check")
    counts = [(root, count_directories(root, cap)) for root in roots]
    total = sum(count for _root, count in counts)
    capped = any(count >= cap for _root, count in counts)
    parts = ", ".join(
        f"{display(root)}: {'more than ' if count >= cap else ''}{count}" for root, count in counts
    )
    detail = f"{'more than ' if capped else ''}{total} directories to watch ({parts or 'none'})"
    # One watch per directory, and editors watching the same trees need as many
    # again.  A capped count is only a lower bound.
    need = (total + (1 if capped else 0)) * 2
    if need <= limit:
        return Check(name, True, f"{detail}; max_user_watches {limit}")
    wanted = max(524_288, 2 ** math.ceil(math.log2(need)))
    return Check(
        name,
        False,
        f"{detail}; max_user_watches {limit} leaves no room for editors watching them too",
        f"echo fs.inotify.max_user_watches={wanted} | sudo tee /etc/sysctl.d/60-redgreen.conf"
        " && sudo sysctl --system",
    )


# -- data directory and disk --------------------------------------------------


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def _check_data_dir(path: Path) -> Check:
    name = "data directory"
    quoted = shlex.quote(str(path))
    if path.exists() and not path.is_dir():
        return Check(name, False, f"{display(path)} is not a directory", f"move {quoted} away")
    if not path.exists():
        parent = _existing_ancestor(path)
        if os.access(parent, os.W_OK | os.X_OK):
            return Check(name, True, f"{display(path)} will be created (0700) on first use")
        return Check(
            name,
            False,
            f"{display(path)} does not exist and {display(parent)} is not writable",
            f"mkdir -p -m 700 {quoted} (as a user who can), or set agent.data_dir",
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if not os.access(path, os.W_OK | os.X_OK):
        return Check(name, False, f"{display(path)} is not writable", f"chmod u+rwx {quoted}")
    if mode & 0o077:
        return Check(
            name,
            False,
            f"{display(path)} is readable by group or others (mode {mode:04o})",
            f"chmod 700 {quoted}",
        )
    return Check(name, True, f"{display(path)} is private ({mode:04o}) and writable")


def _check_disk(path: Path, min_free: int, config: Config | None) -> Check:
    name = "disk space"
    where = _existing_ancestor(path)
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        return Check(name, False, f"cannot read free space of {display(where)}: {exc}")
    detail = f"{format_size(free)} free on the file system of {display(where)}"
    if free >= min_free:
        return Check(name, True, detail)
    budget = (
        f" (retention.max_bytes is {format_size(config.retention.max_bytes)})" if config else ""
    )
    return Check(
        name,
        False,
        f"{detail}, under {format_size(min_free)}{budget}",
        "free some space, or set agent.data_dir to a bigger disk, or lower retention.max_bytes",
    )
