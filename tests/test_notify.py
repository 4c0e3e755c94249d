"""sd_notify against a real AF_UNIX datagram socket standing where systemd's would."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapshotter.notify import Notifier

SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes, NUL included


class Manager:
    """The receiving end of ``$NOTIFY_SOCKET``, as systemd holds it."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.sock.settimeout(5)

    def receive(self) -> bytes:
        return self.sock.recv(65536)

    def pending(self) -> list[bytes]:
        got = []
        self.sock.setblocking(False)
        try:
            while True:
                got.append(self.sock.recv(65536))
        except BlockingIOError:
            return got
        finally:
            self.sock.settimeout(5)

    def close(self) -> None:
        self.sock.close()


def _path_socket(tmp_path: Path) -> str:
    path = str(tmp_path / "notify")
    assert len(path.encode()) <= SUN_PATH_MAX, f"tmp_path too long for a socket: {path}"
    return path


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Manager]:
    listening = Manager(_path_socket(tmp_path))
    monkeypatch.setenv("NOTIFY_SOCKET", listening.address)
    yield listening
    listening.close()


@pytest.fixture
def notifier(manager: Manager) -> Iterator[Notifier]:
    with Notifier.from_environment() as made:
        yield made


def test_ready_status_watchdog_stopping_arrive_as_sent(
    manager: Manager, notifier: Notifier
) -> None:
    assert notifier.enabled
    notifier.ready()
    notifier.ready("watching 2 workspaces")
    notifier.status("tick 3: 1 snapshot")
    notifier.watchdog()
    notifier.stopping()
    notifier.stopping("rolling the spool")
    assert [manager.receive() for _ in range(6)] == [
        b"READY=1",
        b"READY=1\nSTATUS=watching 2 workspaces",
        b"STATUS=tick 3: 1 snapshot",
        b"WATCHDOG=1",
        b"STOPPING=1",
        b"STOPPING=1\nSTATUS=rolling the spool",
    ]
    assert manager.pending() == []


def test_status_is_flattened_to_one_line(manager: Manager, notifier: Notifier) -> None:
    notifier.status("ws1: green\n  ws2: red\r\nREADY=1\n")
    # A newline would have let the text forge a READY=1 of its own.
    assert manager.receive() == b"STATUS=ws1: green ws2: red READY=1"


def test_reloading_carries_the_monotonic_time(manager: Manager, notifier: Notifier) -> None:
    before = time.monotonic_ns() // 1000
    notifier.reloading()
    after = time.monotonic_ns() // 1000
    first, second = manager.receive().decode().split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC" and before <= int(value) <= after


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    listening = Manager(f"@redgreen-test-{uuid.uuid4().hex}")
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", listening.address)
        with Notifier.from_environment() as notifier:
            notifier.ready("up")
            notifier.watchdog()
        assert listening.receive() == b"READY=1\nSTATUS=up"
        assert listening.receive() == b"WATCHDOG=1"
    finally:
        listening.close()


def test_a_vanished_manager_is_logged_once_and_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    listening = Manager(_path_socket(tmp_path))
    monkeypatch.setenv("NOTIFY_SOCKET", listening.address)
    with Notifier.from_environment() as notifier:
        notifier.ready()
        assert listening.receive() == b"READY=1"
        listening.close()
        os.unlink(listening.address)
        with caplog.at_level(logging.INFO, logger="snapshotter.notify"):
            for _ in range(5):
                notifier.watchdog()
            notifier.stopping("bye")
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and listening.address in warnings[0].getMessage()

        # A restarted manager binds the same path again: the same notifier reaches it.
        again = Manager(listening.address)
        try:
            notifier.watchdog()
            assert again.receive() == b"WATCHDOG=1"
        finally:
            again.close()


def test_a_manager_that_never_existed_does_not_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    with Notifier.from_environment() as notifier:
        assert notifier.enabled
        notifier.ready("up")
        notifier.watchdog()


def test_without_notify_socket_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier.from_environment()
    assert not notifier.enabled
    notifier.ready("up")
    notifier.status("x")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()
    notifier.close()
    notifier.close()


def test_many_threads_share_one_notifier(manager: Manager, notifier: Notifier) -> None:
    threads, each = 8, 25

    def ping() -> None:
        for _ in range(each):
            notifier.watchdog()

    workers = [threading.Thread(target=ping) for _ in range(threads)]
    for worker in workers:
        worker.start()
    # The kernel queues only a few datagrams; read while the threads send.
    received = [manager.receive() for _ in range(threads * each)]
    for worker in workers:
        worker.join()
    assert received == [b"WATCHDOG=1"] * (threads * each)
    assert manager.pending() == []


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("120000000", None, 120.0),
        ("120000000", "self", 120.0),
        ("500000", "self", 0.5),
        ("120000000", "other", None),
        ("120000000", "not-a-pid", None),
        ("0", None, None),
        ("soon", None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            own = os.getpid()
            value = {"self": str(own), "other": str(own + 1)}.get(value, value)
            monkeypatch.setenv(name, value)
    assert Notifier.from_environment().watchdog_interval() == expected
