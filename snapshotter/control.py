"""Files through which the agent and the other commands talk: status, pause, lock.

All live in the state directory (``~/.local/state/redgreen``), except the
lock, which guards a data directory:

- ``status.json``: written by the running agent (atomically, a few times a
  minute) and read by ``snapshotter status``;
- ``pause.json``: written by ``snapshotter pause``, removed by ``resume``;
  the agent reads it at every tick, so a pause takes effect within one tick;
- ``DATA_DIR/spool/agent.lock``: an ``flock`` held for the agent's lifetime,
  so a second agent on the same data directory refuses to start.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from snapshotter.errors import ConfigError, RedgreenError
from snapshotter.paths import PRIVATE_FILE_MODE, default_state_dir, ensure_private_dir

STATUS_FILE = "status.json"
PAUSE_FILE = "pause.json"
LOCK_FILE = "agent.lock"


def state_dir() -> Path:
    return default_state_dir()


def write_json_atomically(path: Path, payload: dict[str, Any], *, padded: bool = False) -> None:
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w") as f:
            text = json.dumps(payload, indent=1, sort_keys=True, default=str)
            f.write(_pad(text) if padded else text)
        os.replace(tmp, path)
    except OSError:
        # a half-written temporary on a full disk would only take more of it
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_status(path: Path, payload: dict[str, Any]) -> None:
    """``status.json``: atomically, or in place when the disk is too full for a new file.

    A full disk is exactly when ``snapshotter status`` must still tell the
    truth.  The file is padded to whole blocks with spaces (valid JSON), so
    rewriting it in place reuses blocks it already owns; a reader that races
    the rewrite retries (see :func:`read_json`).
    """
    try:
        write_json_atomically(path, payload, padded=True)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        text = json.dumps(payload, indent=1, sort_keys=True, default=str).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if len(text) > size:
                raise
            os.pwrite(fd, text + b" " * (size - len(text)), 0)
        finally:
            os.close(fd)


# status.json rewritten in place must fit in the blocks it owns: keep this much spare
_STATUS_BLOCK = 4096


def _pad(text: str) -> str:
    size = (len(text.encode()) // _STATUS_BLOCK + 2) * _STATUS_BLOCK
    return text + " " * (size - len(text.encode()) - 1) + "\n"


def read_json(path: Path) -> dict[str, Any] | None:
    for attempt in range(3):
        try:
            data = json.loads(path.read_text())
        except OSError:
            return None
        except ValueError:
            # caught mid-way through an in-place rewrite (see write_status): read again
            if attempt < 2:
                time.sleep(0.05)
            continue
        return data if isinstance(data, dict) else None
    return None


# pause ----------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90``, ``30s``, ``15m``, ``1h``, ``2d``, ``1w``."""
    match = _DURATION.match(text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"not a duration: {text!r} (try 30m, 1h or 2d)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


@dataclass(frozen=True)
class Pause:
    since: datetime
    until: datetime | None  # None: until resumed

    def active(self, now: datetime | None = None) -> bool:
        return self.until is None or (now or datetime.now(UTC)) < self.until


def pause(duration: timedelta | None) -> Pause:
    now = datetime.now(UTC)
    state = Pause(since=now, until=now + duration if duration else None)
    write_json_atomically(
        state_dir() / PAUSE_FILE,
        {"since": now.isoformat(), "until": state.until.isoformat() if state.until else None},
    )
    return state


def resume() -> bool:
    """Remove the pause; False when there was none."""
    try:
        (state_dir() / PAUSE_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


def current_pause() -> Pause | None:
    """The pause in force now, if any (an expired one counts as none)."""
    data = read_json(state_dir() / PAUSE_FILE)
    if data is None:
        return None
    try:
        since = datetime.fromisoformat(data["since"])
        until = datetime.fromisoformat(data["until"]) if data.get("until") else None
    except (KeyError, TypeError, ValueError):
        return Pause(since=datetime.now(UTC), until=None)  # unreadable: stay private
    state = Pause(since=since, until=until)
    return state if state.active() else None


# lock -----------------------------------------------------------------------


class AgentLock:
    """An exclusive ``flock`` on ``DATA_DIR/spool/agent.lock``, released by the kernel on death."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "spool" / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RedgreenError(
                f"another snapshotter agent (pid {holder}) is already running on "
                f"{self.path.parent.parent}; stop it first or use another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def holder(data_dir: Path) -> int | None:
        """The pid of the agent holding the lock, or None when no agent runs."""
        path = data_dir / "spool" / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 32, 0).decode(errors="replace").strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
