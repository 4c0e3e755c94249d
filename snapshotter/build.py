"""Run the user's build command once and report how it ended.

    run_build(command, cwd, limits) -> BuildOutcome(status, exit_code, output, ...)

The command runs through the user's shell (``$SHELL -c COMMAND``, else ``/bin/sh``) in
the workspace root, in a process group of its own, with stdin from ``/dev/null`` and
stdout and stderr merged into one pipe.  One loop reads that pipe in chunks into a
bounded tail buffer (memory stays O(output_cap) whatever the build prints; the
buffer holds a margin beyond the cap so the tail is redacted *before* it is cut,
see ``_Tail``) while it
watches two clocks: the build's timeout, and a short drain grace that starts when the
shell exits (a daemon the build forked may hold the pipe open forever).  When either
runs out the whole process group gets SIGTERM, then SIGKILL after ``kill_grace_s``.
The shell is only reaped after the group has been signalled, so its pid (which is the
group id) cannot be reused while we still signal it.

Status is ``green`` for exit 0 and ``red`` for any other exit, including death by a
signal; ``timeout`` when the limit ran out; ``error`` when the command could not run
at all: the shell or ``cwd`` is missing, or the shell said 126 (not executable) or
127 (command not found).  Failures are reported in the outcome, never raised.

Death by a signal is kept two ways, as the shell reports it: when the build's own
process (the shell, or the command it exec'd) dies of signal N, ``exit_code`` is -N
and the output ends with ``[redgreen: build ended by signal SIGSEGV (11)]``; when a
child dies and the shell exits on its own, the shell's ``128 + N`` is the exit code.
"""

from __future__ import annotations

import collections
import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from snapshotter.redact import REDACTED_TEMPLATE, Finding, find_secrets, redact_bytes

__all__ = ["BuildLimits", "BuildOutcome", "run_build"]

# How long to keep reading after the shell exited, before the group is killed.
DRAIN_GRACE_S = 1.0
# How long to wait for EOF after SIGKILL (a process outside the group may hold the pipe).
FINAL_DRAIN_S = 0.5
# How often the loop checks whether the shell has exited while the pipe is quiet.
POLL_S = 0.05
READ_CHUNK = 64 * 1024
# At most this many bytes are dropped after a cut so the kept tail starts on a line.
LINE_ALIGN_MAX = 4096
# Bytes kept beyond the cap so that redaction sees whole any secret the cut would
# split: the largest private key block (8192-bit RSA is ~6.5 KB, redaction follows
# a block for 64 KiB), and the longest line alignment after it.
KEY_BLOCK_MARGIN = 64 * 1024
REDACT_MARGIN = KEY_BLOCK_MARGIN + LINE_ALIGN_MAX

# Exit codes with which POSIX shells report that the command itself could not run.
SHELL_CANNOT_RUN = {126: "not executable", 127: "command not found"}


@dataclass(frozen=True)
class BuildLimits:
    timeout_s: float = 600.0
    output_cap: int = 64 * 1024  # bytes of output kept (the tail)
    kill_grace_s: float = 2.0  # SIGTERM -> SIGKILL grace for the process group


@dataclass(frozen=True)
class BuildOutcome:
    status: str  # green, red, timeout, error
    command: str
    # None when it never ran or was killed on timeout; negative signal number when the
    # shell itself died of a signal (a child killed by a signal shows as 128 + N).
    exit_code: int | None
    started_at: datetime
    finished_at: datetime
    output: str


def _now() -> datetime:
    return datetime.now(UTC)


# the agent's own systemd plumbing: a build must not talk to the service manager
_AGENT_ONLY = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


def _build_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _AGENT_ONLY}


def _shell() -> str:
    shell = os.environ.get("SHELL", "")
    if shell and os.path.isabs(shell) and os.path.isfile(shell) and os.access(shell, os.X_OK):
        return shell
    return "/bin/sh"


class _Tail:
    """The last ``cap`` bytes of a stream, redacted, in memory bounded by ``cap`` + a margin.

    Redaction must see a secret whole: a cut that falls inside a private key would
    keep its body without the BEGIN line that makes it a key.  So the buffer keeps
    ``cap + REDACT_MARGIN`` bytes (a key block is at most ``KEY_BLOCK_MARGIN``),
    the secrets are found in all of it, and only then is it cut to ``cap``: the
    cut moves forward past any secret it would split, then to a line start, so
    what is kept holds no part of a secret found in the wider window.
    """

    def __init__(self, cap: int) -> None:
        self.cap = max(0, cap)
        self.keep = self.cap + REDACT_MARGIN
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.cut = 0
        self.last_cut_byte = b"\n"

    def add(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.size += len(chunk)
        while self.chunks and self.size - len(self.chunks[0]) >= self.keep:
            dropped = self.chunks.popleft()
            self.size -= len(dropped)
            self.cut += len(dropped)
            if dropped:
                self.last_cut_byte = dropped[-1:]

    def text(self) -> str:
        window = b"".join(self.chunks)
        if len(window) > self.keep:
            start = len(window) - self.keep
            self.last_cut_byte = window[start - 1 : start]
            window = window[start:]
            self.cut += start
        findings = find_secrets(window)
        start = _cut_point(window, findings, self.cap, self.cut > 0, self.last_cut_byte)
        kept = _redacted(window, findings, start)
        cut = self.cut + start
        if len(kept) > self.cap:
            # markers are longer than short secrets: cut again, now among markers only
            extra = len(kept) - self.cap
            newline = kept.find(b"\n", extra - 1, extra - 1 + LINE_ALIGN_MAX)
            drop = newline + 1 if newline >= 0 else extra
            kept = kept[drop:]
            cut += drop  # approximate: counted in redacted bytes
        body = kept.decode("utf-8", errors="replace")
        if cut:
            return f"[redgreen: {cut} bytes of output cut]\n{body}"
        return body


def _cut_point(
    window: bytes, findings: Sequence[Finding], cap: int, cut_before: bool, last_cut_byte: bytes
) -> int:
    """Where the kept tail of ``window`` starts: within the last ``cap`` bytes, on a
    line start when one is near, and never inside one of ``findings``."""
    start = max(0, len(window) - cap)
    while True:
        moved = start
        for f in findings:
            if f.start < moved < f.end:
                moved = f.end  # drop the rest of a secret whose start is dropped
        previous = window[moved - 1 : moved] if moved else (last_cut_byte if cut_before else b"\n")
        if previous != b"\n" and moved < len(window):
            # start on a whole line, so a parser never sees half a path
            newline = window.find(b"\n", moved, moved + LINE_ALIGN_MAX)
            if newline >= 0:
                moved = newline + 1
        if moved == start:
            return start
        start = moved


def _redacted(window: bytes, findings: Sequence[Finding], start: int) -> bytes:
    """``window[start:]`` with the secrets found in the whole window replaced.

    They were found with the context before ``start`` (a keyword, a BEGIN line),
    so they are applied here rather than found again in the tail alone; a last
    ``redact_bytes`` pass over the tail is the backstop.
    """
    out: list[bytes] = []
    pos = start
    for f in findings:
        if f.end <= start:
            continue
        out.append(window[pos : f.start])
        marker = REDACTED_TEMPLATE.format(kind=f.kind).encode()
        breaks = window.count(b"\n", f.start, f.end)
        # a span of several lines keeps its line breaks, as redact_bytes does
        out.append(marker + b"\n" * breaks + marker if breaks else marker)
        pos = f.end
    out.append(window[pos:])
    return redact_bytes(b"".join(out))


def _note(output: str, message: str) -> str:
    """The output with one ``[redgreen: ...]`` line of ours at its end."""
    if output and not output.endswith("\n"):
        output += "\n"
    return output + f"[redgreen: {message}]\n"


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return f"{number}"


def _error(command: str, started_at: datetime, message: str) -> BuildOutcome:
    return BuildOutcome("error", command, None, started_at, _now(), message + "\n")


def _set_niceness(target: int) -> Callable[[], None]:
    # Runs in the child between fork and exec: one syscall, no imports, no allocation
    # worth mentioning, and never raises (a failure would abort the build).
    def preexec() -> None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, target)

    return preexec


def _preexec_for(nice: int) -> Callable[[], None] | None:
    if nice <= 0:
        return None
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
    except OSError:
        return None
    # Niceness only goes up without privileges: never ask to lower it.
    if current >= nice:
        return None
    return _set_niceness(nice)


def run_build(
    command: str,
    cwd: Path,
    limits: BuildLimits = BuildLimits(),
    *,
    nice: int = 0,
    on_output: Callable[[bytes], None] | None = None,
    cancel: threading.Event | None = None,
) -> BuildOutcome:
    """Run ``command`` through the user's shell in ``cwd``; never raises for a bad build.

    ``nice`` > 0 runs the build at that niceness (or the current one, if higher).
    ``on_output`` sees every chunk of output as it comes (``snapshotter build``
    passes it through to the terminal).  Setting ``cancel`` kills the build's
    process group; its status is then ``stale``: the agent cancels a build
    when a newer state supersedes the one being built.
    """
    started_at = _now()
    if not os.path.isdir(cwd):
        return _error(command, started_at, f"[redgreen: build directory does not exist: {cwd}]")
    shell = _shell()
    try:
        proc = subprocess.Popen(
            [shell, "-c", command],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_preexec_for(nice),
            env=_build_environment(),
        )
    except (OSError, subprocess.SubprocessError) as e:
        return _error(command, started_at, f"[redgreen: cannot start {shell}: {e}]")
    with proc:
        return _Run(proc, command, limits, started_at, on_output, cancel).run()


class _Run:
    """One running build: its pipe, its tail buffer and its clocks."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        command: str,
        limits: BuildLimits,
        started_at: datetime,
        on_output: Callable[[bytes], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        assert proc.stdout is not None
        self.on_output = on_output
        self.cancel = cancel
        self.cancelled = False
        self.proc = proc
        self.pipe = proc.stdout
        self.fd = proc.stdout.fileno()
        self.command = command
        self.limits = limits
        self.started_at = started_at
        self.tail = _Tail(limits.output_cap)
        self.eof = False
        self.exited = False
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)

    def run(self) -> BuildOutcome:
        try:
            start = time.monotonic()
            timed_out = not self._pump(
                until=start + self.limits.timeout_s, after_exit=DRAIN_GRACE_S
            )
            if timed_out or not self.eof:
                # Timeout, or the shell exited but something in its group holds the pipe.
                self._kill_group()
        finally:
            if not self.exited:  # only on an unexpected error: never leave a build behind
                self._signal_group(signal.SIGKILL)
            self.selector.close()
            self.pipe.close()
            returncode = self.proc.wait()
        output = self.tail.text()
        if self.cancelled:
            if output and not output.endswith("\n"):
                output += "\n"
            output += "[redgreen: build cancelled: a newer state superseded it]\n"
            return BuildOutcome("stale", self.command, None, self.started_at, _now(), output)
        if timed_out:
            if output and not output.endswith("\n"):
                output += "\n"
            output += f"[redgreen: build timed out after {self.limits.timeout_s:g} s]\n"
            return BuildOutcome("timeout", self.command, None, self.started_at, _now(), output)
        if returncode < 0:
            output = _note(output, f"build ended by signal {_signal_name(-returncode)}")
        if returncode == 0:
            status = "green"
        elif returncode in SHELL_CANNOT_RUN:
            status = "error"
        else:
            status = "red"
        return BuildOutcome(status, self.command, returncode, self.started_at, _now(), output)

    def _pump(self, until: float, after_exit: float) -> bool:
        """Read output until EOF and shell exit; False if ``until`` passed first.

        Once the shell has exited, reading stops ``after_exit`` seconds later even
        without EOF (returns True with ``self.eof`` still False).
        """
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            cancel = self.cancel
            if cancel is not None and cancel.is_set() and not (self.exited or self.cancelled):
                self.cancelled = True
                return False
            if not self.exited and self._shell_exited():
                self.exited = True
                drain_until = now + after_exit
            if self.exited and self.eof:
                return True
            if drain_until is not None:
                if now >= drain_until:
                    return True
                deadline = drain_until
            else:
                if now >= until:
                    return False
                deadline = until
            wait = max(0.0, min(POLL_S, deadline - now))
            if self.eof:
                time.sleep(wait)
            elif self.selector.select(wait):
                self._read()

    def _read(self) -> None:
        try:
            chunk = os.read(self.fd, READ_CHUNK)
        except InterruptedError:
            return
        except OSError:
            chunk = b""
        if chunk:
            self.tail.add(chunk)
            if self.on_output is not None:
                self.on_output(chunk)
        else:
            self.eof = True
            self.selector.unregister(self.fd)

    def _shell_exited(self) -> bool:
        # WNOWAIT leaves the shell a zombie: its pid stays reserved as the group id
        # until the final wait(), so killpg never hits an unrelated group.
        if not hasattr(os, "waitid"):  # pragma: no cover - platforms without waitid
            return self.proc.poll() is not None
        try:
            result = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return result is not None

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def _kill_group(self) -> None:
        self._signal_group(signal.SIGTERM)
        grace_end = time.monotonic() + self.limits.kill_grace_s
        # Keep draining so a build blocked on a full pipe can see its SIGTERM through.
        self._pump(until=grace_end, after_exit=max(0.0, grace_end - time.monotonic()))
        self._signal_group(signal.SIGKILL)
        if not self.eof:
            end = time.monotonic() + FINAL_DRAIN_S
            self._pump(until=end, after_exit=FINAL_DRAIN_S)
