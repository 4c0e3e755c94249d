"""Redaction of what the commands print and log: every log line, warning and error.

A log line is built from anything: a path from the working copy (``cannot read
keys/ghp_....txt``), an exception's text, a VCS's stderr.  So redaction is not
left to each call site; it sits where lines leave the process:

- ``RedactingFilter`` on every handler of the root logger (and on
  ``logging.lastResort``, which prints when no handler is configured): it
  formats the record's message with its arguments, redacts it, and stores the
  result as the message without arguments; exception and stack text are
  formatted and redacted too, so any formatter (plain or journald) only sees
  redacted text.  A filter, not a formatter, so replacing a handler's
  formatter (the journald one) cannot remove it.
- ``warnings`` go through logging (``logging.captureWarnings``), hence the filter.
- An uncaught exception's traceback (main thread or another) is redacted.
- ``RedactingGroup``, a ``click.Group`` whose commands' ``ClickException``
  messages (the one-line errors, which name files) are redacted before click
  prints them.

``install()`` sets all of this up; it is idempotent and called by the
``snapshotter`` and ``miner`` groups once logging is configured.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType
from typing import Any

import click

from snapshotter.redact import redact_text

__all__ = ["RedactingFilter", "RedactingGroup", "install", "redact_strings"]


class RedactingFilter(logging.Filter):
    """Redacts a record's message (arguments included), exception and stack text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log what there is, redacted
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = redact_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def _has_filter(handler: logging.Handler) -> bool:
    return any(isinstance(f, RedactingFilter) for f in handler.filters)


def install() -> None:
    """Put redaction on every way the process reports: log handlers, warnings, tracebacks."""
    handlers = list(logging.getLogger().handlers)
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if not _has_filter(handler):
            handler.addFilter(RedactingFilter())
    # off then on: "on" alone keeps nothing if someone replaced showwarning since
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    for handler in warnings_logger.handlers:
        if not _has_filter(handler):
            handler.addFilter(RedactingFilter())
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    text = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(redact_text(text))


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    name = args.thread.name if args.thread is not None else "?"
    sys.stderr.write(redact_text(f"Exception in thread {name}:\n{text}"))


def redact_strings(value: Any, *, keep: frozenset[str] = frozenset()) -> Any:
    """``value`` (JSON-like) with every string redacted, except values under ``keep`` keys."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: v if k in keep else redact_strings(v, keep=keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_strings(v, keep=keep) for v in value]
    return value


def _redact_click_error(exc: click.ClickException) -> None:
    # click declares ``message`` final, but it is the one text ``show()`` prints
    exc.message = redact_text(exc.message)  # type: ignore[misc]


class RedactingGroup(click.Group):
    """A command group whose one-line errors (``ClickException``) are printed redacted."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            _redact_click_error(exc)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            _redact_click_error(exc)
            raise
