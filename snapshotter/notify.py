"""The sd_notify protocol in plain Python: how the agent talks to systemd.

systemd gives a ``Type=notify`` service the address of a datagram socket in
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace); the
service sends it newline-separated ``KEY=value`` assignments: ``READY=1`` once
up, ``STATUS=`` a one-line summary, ``WATCHDOG=1`` while healthy, ``STOPPING=1``
and ``RELOADING=1`` around shutdown and reload.  ``$WATCHDOG_USEC`` says how
often the watchdog expects a ping (it is meant for ``$WATCHDOG_PID`` only).

Without ``$NOTIFY_SOCKET`` (run by hand, in tests) every call is a no-op.  A
send that fails is logged once and never raised: the agent must outlive its
manager, and a send waits at most ``SEND_TIMEOUT``.  One socket is kept open
(from the first send to ``close()``); a lock makes calls from the scheduler's
threads safe.  See sd_notify(3).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from types import TracebackType

log = logging.getLogger(__name__)

# A manager too busy to drain its queue must not stall a tick for long.
SEND_TIMEOUT = 2.0


class Notifier:
    """Sends sd_notify messages to ``address``, or does nothing when it is None."""

    def __init__(
        self,
        address: str | None = None,
        *,
        watchdog_usec: str | None = None,
        watchdog_pid: str | None = None,
    ) -> None:
        self._address = _socket_address(address) if address else None
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_environment(cls) -> Notifier:
        """The notifier systemd asked for through the environment; a no-op one when unset."""
        return cls(
            os.environ.get("NOTIFY_SOCKET") or None,
            watchdog_usec=os.environ.get("WATCHDOG_USEC"),
            watchdog_pid=os.environ.get("WATCHDOG_PID"),
        )

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self, status: str | None = None) -> None:
        self._send("READY=1", status)

    def status(self, text: str) -> None:
        self._send(None, text)

    def watchdog(self) -> None:
        self._send("WATCHDOG=1", None)

    def stopping(self, status: str | None = None) -> None:
        self._send("STOPPING=1", status)

    def reloading(self) -> None:
        # CLOCK_MONOTONIC, which time.monotonic_ns reads on Linux, is the clock systemd expects.
        self._send(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}", None)

    def watchdog_interval(self) -> float | None:
        """Seconds within which systemd expects ``WATCHDOG=1``, or None when no watchdog is set.

        Ping at half this interval.  None too when the watchdog is meant for another process
        (``$WATCHDOG_PID`` names a different pid, e.g. in a forked child).
        """
        if not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != os.getpid():
                    return None
            except ValueError:
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 1_000_000 if usec > 0 else None

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, assignment: str | None, status: str | None) -> None:
        if self._address is None:
            return
        lines = [assignment] if assignment else []
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        if not lines:
            return
        message = "\n".join(lines).encode()
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._socket.settimeout(SEND_TIMEOUT)
                # sendto, not connect: a manager that re-creates its socket is still reached.
                self._socket.sendto(message, self._address)
            except OSError as exc:
                if not self._failing:
                    log.warning("cannot notify systemd at %s: %s", self._display(), exc)
                self._failing = True
            else:
                if self._failing:
                    log.info("notifying systemd at %s again", self._display())
                self._failing = False

    def _display(self) -> str:
        address = self._address or b""
        return "@" + os.fsdecode(address[1:]) if address[:1] == b"\0" else os.fsdecode(address)


def _socket_address(address: str) -> bytes:
    """``$NOTIFY_SOCKET`` as a socket address: ``@name`` is abstract (a leading NUL)."""
    if address.startswith("@"):
        return b"\0" + os.fsencode(address[1:])
    return os.fsencode(address)


def _one_line(text: str) -> str:
    """A newline would end the assignment early: fold the lines into one."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
