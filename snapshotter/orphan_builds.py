"""Builds a killed agent left running, found and ended by the agent that replaces it.

A build runs in a process group of its own (``build.py``), so when the agent
dies of SIGKILL nothing ends it: it runs on, unsupervised, with no timeout,
and races the next agent's build of the same tree.  The agent therefore marks
its environment with ``REDGREEN_AGENT=<pid>:<data dir>``, which every build
(and everything the build starts) inherits.  The next agent on that data
directory holds its lock, so any process still carrying a mark for it that is
not its own belongs to a dead agent: it gets SIGTERM (its whole group when it
leads one), then SIGKILL after a short grace.

A build that scrubs its environment (``env -i``) escapes the mark; the group
kill still catches it when its group leader, the build's shell, is marked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

MARK_ENV = "REDGREEN_AGENT"
GRACE_S = 1.0


def mark_environment(data_dir: Path) -> None:
    """Mark this agent's children as builds of ``data_dir``'s agent."""
    os.environ[MARK_ENV] = f"{os.getpid()}:{data_dir.resolve()}"


def end_orphans(data_dir: Path) -> int:
    """End the processes a dead agent of ``data_dir`` left behind; returns how many."""
    orphans = _orphans(data_dir)
    if not orphans:
        return 0
    _signal_all(orphans, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(_alive(pid) for pid in orphans):
        time.sleep(0.05)
    _signal_all([pid for pid in orphans if _alive(pid)], signal.SIGKILL)
    return len(orphans)


def _orphans(data_dir: Path) -> list[int]:
    own = os.getpid()
    wanted = str(data_dir.resolve()).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone, or another user's
        for variable in environ.split(b"\0"):
            if variable.startswith(MARK_ENV.encode() + b"="):
                agent, _, marked = variable.split(b"=", 1)[1].partition(b":")
                if marked == wanted and agent != str(own).encode():
                    found.append(int(entry.name))
                break
    return found


def _signal_all(pids: list[int], signum: signal.Signals) -> None:
    ours = os.getpgrp()
    for pid in pids:
        with contextlib.suppress(OSError):
            group = os.getpgid(pid)
            if group == pid and group != ours:
                os.killpg(group, signum)
            else:
                os.kill(pid, signum)


def _alive(pid: int) -> bool:
    """Running, i.e. neither gone nor a zombie waiting for its new parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
