"""A tiny headless-Chromium driver for tests, over the DevTools protocol on a pipe.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands from
its fd 3 and writes replies and events to its fd 4, each message a JSON object
ended by a NUL byte; no port, no websocket, no Python dependency.  The driver
opens one page target, attaches to it in flat mode (commands carry the
``sessionId``), and records what a test wants to assert on while it waits for
replies: console errors, uncaught exceptions, log errors, and every request
the page makes to something other than a local file.

Everything runs on the caller's thread (``select`` with deadlines, no reader
thread), and :meth:`Browser.close` always ends the browser: politely with
``Browser.close``, then by killing its process group.  The flags keep
Chromium's own background traffic (component updates, sync, QUIC probes) off:
on a closed network those connections are refused and would show up as noise.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = (
    "Debian's chromium is needed to render the report: `apt-get install chromium`"
    " (.ci/run installs it)"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
# Schemes that never leave the machine.
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


class BrowserError(RuntimeError):
    pass


def chromium_binary() -> str:
    """The Chromium to drive; BrowserError saying how to install it when there is none."""
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if found is None:
        raise BrowserError(f"chromium not found at {CHROMIUM}. {INSTALL_HINT}")
    return found


def default_artefact_dir() -> Path:
    """Where tests leave screenshots: $REDGREEN_TEST_ARTEFACTS or test-artefacts/ (gitignored)."""
    configured = os.environ.get("REDGREEN_TEST_ARTEFACTS")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent / "test-artefacts"


@dataclass
class Page:
    """What a loaded page did, for a test to assert on."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    # requests to anything but file:, data:, blob: and about: URLs
    network_requests: list[str] = field(default_factory=list)


def _high_fd(fd: int) -> int:
    # moved above 2..4 so the child's dup2 onto 3 and 4 cannot clobber its source
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, *, width: int = 1280, height: int = 900, timeout: float = 60.0) -> None:
        self.timeout = timeout
        binary = chromium_binary()
        self._profile = Path(tempfile.mkdtemp(prefix="redgreen-chromium-"))
        self.log_path = self._profile / "chromium.log"
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        child_in, child_out = _high_fd(to_child_read), _high_fd(from_child_write)
        self._send_fd = _high_fd(to_child_write)
        self._recv_fd = _high_fd(from_child_read)

        def wire_pipe() -> None:  # in the child: fd 3 reads commands, fd 4 writes replies
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    *FLAGS,
                    f"--user-data-dir={self._profile / 'profile'}",
                    f"--window-size={width},{height}",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                close_fds=False,  # fds 3 and 4 are set up in preexec_fn; ours are CLOEXEC
                preexec_fn=wire_pipe,
                start_new_session=True,
            )
        os.close(child_in)
        os.close(child_out)
        self._closed = False
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self._session: str | None = None
        self.page: Page | None = None
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
            attached = self.call(
                "Target.attachToTarget",
                {"targetId": target["targetId"], "flatten": True},
                session=False,
            )
            self._session = attached["sessionId"]
            for domain in ("Runtime", "Log", "Network", "Page"):
                self.call(f"{domain}.enable")
            self.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
        except BaseException:
            self.close()
            raise

    # -- the protocol ---------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            written = os.write(self._send_fd, data)
            data = data[written:]

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no reply from chromium in time; its log: {self.log_path}")
            ready, _, _ = select.select([self._recv_fd], [], [], left)
            if ready:
                chunk = os.read(self._recv_fd, 1 << 20)
                if not chunk:
                    raise BrowserError(f"chromium exited; its log: {self.log_path}")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def _record(self, event: dict[str, Any]) -> None:
        self._events.append(event)
        page = self.page
        if page is None:
            return
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            page.console_errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {}).get("description") or details.get("text")
            page.console_errors.append(f"exception: {exception}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            page.console_errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if not url.startswith(LOCAL_SCHEMES):
                page.network_requests.append(url)

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = True
    ) -> dict[str, Any]:
        """Send one command (to the page unless ``session`` is False) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self._session is not None:
            message["sessionId"] = self._session
        self._send(message)
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") != self._next_id:
                self._record(reply)
                continue
            if "error" in reply:
                raise BrowserError(f"{method}: {reply['error'].get('message')}")
            result: dict[str, Any] = reply.get("result", {})
            return result

    def _wait_event(self, method: str, deadline: float) -> None:
        seen = len(self._events)
        while True:
            for event in self._events[seen:]:
                if event.get("method") == method:
                    return
            seen = len(self._events)
            self._record(self._receive(deadline))

    # -- what tests use ---------------------------------------------------------------

    def load(self, path: Path) -> Page:
        """Open a local file and wait for its load event; the page records from here on."""
        url = path.resolve().as_uri()
        self.page = Page(url)
        deadline = time.monotonic() + self.timeout
        self._events.clear()
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self._wait_event("Page.loadEventFired", deadline)
        return self.page

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float | None = None) -> Any:
        """Poll ``expression`` until it is truthy; its last value either way."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() >= deadline:
                return value
            time.sleep(0.1)

    def screenshot(self, target: Path, *, max_height: int = 12000) -> Path:
        """Save a PNG of the whole page (up to ``max_height`` CSS pixels) to ``target``."""
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": size["width"],
            "height": min(size["height"], max_height),
            "scale": 1,
        }
        shot = self.call(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(shot["data"]))
        return target

    def _exited(self) -> bool:
        # WNOWAIT: the leader stays a zombie, so its pid (our process group's id)
        # cannot be reused before the group is killed and the leader reaped
        pid = self._process.pid
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def close(self) -> None:
        """End the browser, whatever state it is in, and remove its profile."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._send({"id": self._next_id + 1, "method": "Browser.close"})
        deadline = time.monotonic() + 5
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.05)
        # helpers (renderer, zygote, gpu) share its process group: none may outlive it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=10)
        for fd in (self._send_fd, self._recv_fd):
            os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
