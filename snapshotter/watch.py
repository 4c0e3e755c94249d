"""Which paths of a workspace may have changed since the last tick: a file monitor.

One watchdog observer per workspace (inotify on Linux) feeds a set of
changed paths, relative to the root, which the tick drains.  Kept cheap:

- events inside ``.hg/`` and ``.git/`` are dropped, except the few files that
  reveal a base change (a commit, an update, a checkout, a bookmark move);
  those only raise a flag;
- directory-modified events are dropped (every file change sends one for
  its parent, and the file's own event is what matters); open and
  close-without-write events are never subscribed to;
- paths under a directory the VCS ignores (``_build/``, ``node_modules/``,
  ``target/``) are dropped by a prefix check against a cache the tick fills;
- past ``MAX_PENDING`` paths (a branch switch, a big generated tree) the set
  is dropped and the next tick does one full rescan instead;
- a root that went away (deleted, unmounted) makes every later tick a full
  rescan, which reports it missing.

The kernel's inotify queue can overflow; watchdog logs it and rebuilds its
watches, and the warning is caught here to force a rescan, because events
were lost.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

log = logging.getLogger(__name__)

MAX_PENDING = 10_000

# files whose change may mean a new base revision (or a new branch/bookmark)
BASE_FILES: dict[str, tuple[bytes, ...]] = {
    "hg": (b".hg/dirstate", b".hg/bookmarks", b".hg/bookmarks.current", b".hg/branch"),
    "git": (b".git/HEAD", b".git/index", b".git/packed-refs", b".git/MERGE_HEAD"),
}
BASE_DIRS: dict[str, tuple[bytes, ...]] = {"hg": (), "git": (b".git/refs/heads/",)}
VCS_DIRS = (b".hg", b".git")

WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


@dataclass
class Pending:
    """What the monitor saw since the last drain."""

    paths: set[bytes] = field(default_factory=set)
    base_changed: bool = False
    overflow: bool = False

    @property
    def empty(self) -> bool:
        return not (self.paths or self.base_changed or self.overflow)


class _OverflowSpy(logging.Handler):
    """watchdog reports a kernel queue overflow only in its log: listen there."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.watchers: set[WorkspaceWatcher] = set()
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            with self.guard:
                watchers = list(self.watchers)
            for watcher in watchers:
                watcher.mark_overflow()


_SPY = _OverflowSpy()
for _name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
    logging.getLogger(_name).addHandler(_SPY)


class WorkspaceWatcher(FileSystemEventHandler):
    def __init__(self, root: Path, vcs: str) -> None:
        self.root = root
        self._root_bytes = os.fsencode(str(root)).rstrip(b"/") + b"/"
        self._base_files = BASE_FILES.get(vcs, ())
        self._base_dirs = BASE_DIRS.get(vcs, ())
        self._lock = threading.Lock()
        self._pending = Pending()
        self._root_gone = False
        # prefixes ("dir/") of directories the VCS ignores; filled by the tick thread
        self._ignored_dirs: frozenset[bytes] = frozenset()
        self._observer: Observer | None = None  # type: ignore[valid-type]

    # life cycle -------------------------------------------------------------

    def start(self) -> None:
        observer = Observer()
        observer.schedule(self, str(self.root), recursive=True, event_filter=WATCHED_EVENTS)
        observer.daemon = True
        observer.start()
        self._observer = observer
        with _SPY.guard:
            _SPY.watchers.add(self)

    def stop(self) -> None:
        with _SPY.guard:
            _SPY.watchers.discard(self)
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    # the tick's side -------------------------------------------------------

    def drain(self) -> Pending:
        with self._lock:
            pending, self._pending = self._pending, Pending()
        # A deleted or unmounted root sends no event we can rely on (and its
        # inotify watch dies with it): one stat per tick notices.  From then on
        # every tick rescans in full, so capture reports the missing root each
        # time, and a root that comes back is still read, without events.
        if not self._root_gone and not os.path.isdir(self.root):
            self._root_gone = True
        if self._root_gone:
            pending.paths.clear()
            pending.overflow = True
        return pending

    def mark_overflow(self) -> None:
        with self._lock:
            self._pending.paths.clear()
            self._pending.overflow = True

    def set_ignored_dirs(self, dirs: frozenset[bytes]) -> None:
        self._ignored_dirs = frozenset(d.rstrip(b"/") + b"/" for d in dirs)

    # the observer's side ---------------------------------------------------

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type == "modified" and event.is_directory:
            return
        # a directory is noted with a trailing slash: only a directory that
        # went away makes capture ask the VCS what was tracked below it
        self._note(event.src_path, event.is_directory)
        dest = getattr(event, "dest_path", "")
        if dest:
            self._note(dest, event.is_directory)

    def _note(self, path: str | bytes, is_directory: bool = False) -> None:
        raw = os.fsencode(path)
        if not raw.startswith(self._root_bytes):
            return
        rel = raw[len(self._root_bytes) :]
        top = rel.split(b"/", 1)[0]
        if top in VCS_DIRS:
            if rel in self._base_files or rel.startswith(self._base_dirs):
                with self._lock:
                    self._pending.base_changed = True
            return
        ignored = self._ignored_dirs
        if ignored and _under_any(rel, ignored):
            return
        with self._lock:
            pending = self._pending
            if pending.overflow:
                return
            pending.paths.add(rel + b"/" if is_directory else rel)
            if len(pending.paths) > MAX_PENDING:
                pending.paths.clear()
                pending.overflow = True


def _under_any(rel: bytes, prefixes: frozenset[bytes]) -> bool:
    cut = rel.find(b"/")
    while cut != -1:
        if rel[: cut + 1] in prefixes:
            return True
        cut = rel.find(b"/", cut + 1)
    return False
