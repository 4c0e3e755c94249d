"""Warm workers: each keeps one scratch copy of a base revision, built once, and
moves it from state to state by laying files and putting them back.

An evaluation service that re-created a copy per attempt would pay a cold build
each time (minutes on a real dune or cargo project).  A :class:`WorkerPool` keeps
``jobs`` workers instead.  A worker exports the base revision's tree once into
its own directory and builds it (the warm-up, whatever its result).  For each
item it lays the red state over the tree (:class:`~miner.verify.scratch.ScratchTree`
remembers the originals), hands the laid copy to a job that applies diffs and
builds, then reverts: only the laid and patched sources change, build products
stay, and every build is incremental.  An item on another base revision moves the
worker there by rewriting only the files that differ between the two trees.
Items go first to a worker already on their base.

``fresh=True`` is the baseline the benchmark compares against: a new copy per
item (export, cold build), removed afterwards.

Every build runs under :class:`~snapshotter.build.BuildLimits` in its own
process group; all scratch copies live in one temporary directory (outside any
workspace or repository), removed by :meth:`WorkerPool.close`, also after an
error or an interrupt (which first kills the builds in flight).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from miner.fingerprint import error_fingerprint
from miner.verify.revision import ExportError, export_revision
from miner.verify.scratch import ScratchTree, UnsafePathError
from miner.verify.states import RedState
from snapshotter.build import BuildLimits, run_build
from snapshotter.diagnostics import parse_diagnostics
from snapshotter.redact import redact_text

T = TypeVar("T")
R = TypeVar("R")
BaseKey = tuple[str, Path, str]  # vcs, repository, base revision


@dataclass(frozen=True)
class Attempt:
    applied: bool  # the diff applied cleanly (True when diff is None)
    status: str  # green, red, timeout, error; "" when not applied or no repo
    output: str  # build output (tail), or the patch tool's message
    fingerprint: str | None  # error fingerprint of the output (None when green)


class Laid:
    """A worker's scratch copy with one red state laid over it, for one job."""

    def __init__(
        self, tree: ScratchTree, state: RedState, limits: BuildLimits, cancel: threading.Event
    ) -> None:
        self._tree = tree
        self.state = state
        self._limits = limits
        self._cancel = cancel

    @property
    def path(self) -> Path:
        return self._tree.root

    def apply(self, diff: str) -> str | None:
        """Apply ``diff`` with ``patch``: None when it applied, else the tool's message."""
        return self._tree.apply(diff)

    def build(self) -> Attempt:
        """Run the recorded build command here, under the pool's limits."""
        return build_attempt(self.state.command, self.path, self._limits, self._cancel)


def build_attempt(
    command: str, cwd: Path, limits: BuildLimits, cancel: threading.Event | None = None
) -> Attempt:
    outcome = run_build(command, cwd, limits, cancel=cancel)
    # as the snapshotter records a build: redacted before anything parses it
    output = redact_text(outcome.output)
    fingerprint = None
    if outcome.status != "green":
        diagnostics = parse_diagnostics(output, cwd, failed=outcome.status == "red")
        fingerprint = error_fingerprint(output, diagnostics)
    # the scratch copy's own path says nothing and differs per worker and run:
    # paths in the kept output read as the workspace's, relative to its root
    shown = output.replace(f"{cwd}{os.sep}", "")
    return Attempt(True, outcome.status, shown, fingerprint)


class _Worker:
    """One scratch copy: where it lives, which base it holds, which files are the base's."""

    def __init__(self, home: Path, limits: BuildLimits, cancel: threading.Event) -> None:
        self.home = home
        self.limits = limits
        self.cancel = cancel
        self.key: BaseKey | None = None
        self.tree = ScratchTree(home / "tree")
        self.tracked: set[str] = set()
        self.warmups = 0

    def run(self, state: RedState, item: T, job: Callable[[Laid, T], R]) -> R:
        self._position(state)
        try:
            self.tree.lay(state.files)
            return job(Laid(self.tree, state, self.limits, self.cancel), item)
        finally:
            try:
                self.tree.revert()
            except OSError:
                self.forget()  # the copy is in an unknown state: the next item re-exports it
                raise

    def forget(self) -> None:
        self.key = None
        self.tracked = set()
        self.tree = ScratchTree(self.home / "tree")
        shutil.rmtree(self.home / "tree", ignore_errors=True)

    def _position(self, state: RedState) -> None:
        assert state.repo is not None
        key = (state.vcs, state.repo, state.base_rev)
        if key == self.key:
            return
        incoming = self.home / "incoming"
        shutil.rmtree(incoming, ignore_errors=True)
        export_revision(state.vcs, state.repo, state.base_rev, incoming)
        try:
            if self.key is None:
                shutil.rmtree(self.tree.root, ignore_errors=True)
                incoming.rename(self.tree.root)
                self.tracked = _walk(self.tree.root)
            else:
                self.tracked = _sync(incoming, self.tree.root, self.tracked)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        self.key = key
        build_attempt(state.command, self.tree.root, self.limits, self.cancel)  # warm-up
        self.warmups += 1


def _walk(root: Path) -> set[str]:
    """Every file and symlink under ``root``, relative."""
    found = set()
    for directory, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            found.add(os.path.relpath(os.path.join(directory, name), root))
    return found


def _same(a: Path, b: Path) -> bool:
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except FileNotFoundError:
        return False
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        return False
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) == os.readlink(b)
    return (
        sa.st_size == sb.st_size
        and stat.S_IMODE(sa.st_mode) == stat.S_IMODE(sb.st_mode)
        and a.read_bytes() == b.read_bytes()
    )


def _sync(source: Path, target: Path, tracked: set[str]) -> set[str]:
    """Make ``target``'s base files those of ``source``, touching only what differs."""
    wanted = _walk(source)
    for path in tracked - wanted:
        (target / path).unlink(missing_ok=True)
    for path in wanted:
        new, old = source / path, target / path
        if _same(new, old):
            continue
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink(missing_ok=True)
        old.parent.mkdir(parents=True, exist_ok=True)
        os.replace(new, old)  # a fresh mtime for make, the right bits and link
    return wanted


def _inside(path: Path, directory: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(directory)
    return real == top or real.startswith(top + os.sep)


class WorkerPool:
    """``jobs`` warm workers over scratch copies in one temporary directory."""

    def __init__(
        self,
        jobs: int,
        limits: BuildLimits,
        scratch_root: Path | None = None,
        *,
        fresh: bool = False,
    ) -> None:
        self.jobs = max(1, jobs)
        self.limits = limits
        self.fresh = fresh
        self.root = Path(tempfile.mkdtemp(prefix="redgreen-verify-", dir=scratch_root))
        self._workers: list[_Worker] = []
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._fresh_count = 0

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._cancel.set()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def warmups(self) -> int:
        """Warm-up builds so far (one per worker and base revision it moved to)."""
        return sum(w.warmups for w in self._workers)

    def attempt(self, items: Sequence[tuple[RedState, str | None]]) -> list[Attempt]:
        """For each item, in input order: in a warm worker lay the red state, apply the diff
        (None: nothing) with a real patch tool, build with the recorded command under the
        limits, then revert. `jobs` items run at a time."""

        def job(laid: Laid, diff: str | None) -> Attempt:
            if diff is not None:
                problem = laid.apply(diff)
                if problem is not None:
                    return Attempt(False, "", problem, None)
            return laid.build()

        return self.run(items, job, lambda _state, why: Attempt(False, "", why, None))

    def run(
        self,
        items: Sequence[tuple[RedState, T]],
        job: Callable[[Laid, T], R],
        unavailable: Callable[[RedState, str], R],
    ) -> list[R]:
        """``job(laid, item)`` for each item in a warm worker, results in input order.

        ``unavailable(state, why)`` stands in for an item that cannot be laid: no
        repository, a revision that cannot be exported, a path leaving the tree.
        """
        results: dict[int, R] = {}
        pending: list[int] = []
        for index, (state, _item) in enumerate(items):
            if state.repo is None:
                results[index] = unavailable(state, _no_repo(state))
            else:
                pending.append(index)
        if pending:
            slots = [self._worker(n) for n in range(min(self.jobs, len(pending)))]
            lock = threading.Lock()

            def take(worker: _Worker) -> int | None:
                with lock:
                    if not pending or self._cancel.is_set():
                        return None
                    keys = [_key(items[i][0]) for i in pending]
                    if worker.key in keys:
                        return pending.pop(keys.index(worker.key))
                    elsewhere = {w.key for w in slots if w is not worker}
                    free = [n for n, key in enumerate(keys) if key not in elsewhere]
                    return pending.pop(free[0] if free else 0)

            def loop(worker: _Worker) -> None:
                while (index := take(worker)) is not None:
                    state, item = items[index]
                    results[index] = self._one(worker, state, item, job, unavailable)

            with ThreadPoolExecutor(len(slots), thread_name_prefix="verify") as executor:
                futures = [executor.submit(loop, worker) for worker in slots]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    self._cancel.set()  # kills the builds in flight; the threads end soon
                    raise
        return [results[index] for index in range(len(items))]

    def _one(
        self,
        worker: _Worker,
        state: RedState,
        item: T,
        job: Callable[[Laid, T], R],
        unavailable: Callable[[RedState, str], R],
    ) -> R:
        assert state.repo is not None
        if _inside(self.root, state.repo):
            return unavailable(state, f"scratch directory {self.root} is inside {state.repo}")
        if self.fresh:
            worker.forget()
        try:
            return worker.run(state, item, job)
        except (ExportError, UnsafePathError) as exc:
            worker.forget()
            return unavailable(state, str(exc))
        finally:
            if self.fresh:
                worker.forget()

    def _worker(self, number: int) -> _Worker:
        with self._lock:
            while len(self._workers) <= number:
                home = self.root / f"worker-{len(self._workers)}"
                home.mkdir()
                self._workers.append(_Worker(home, self.limits, self._cancel))
            return self._workers[number]


def _key(state: RedState) -> BaseKey | None:
    return None if state.repo is None else (state.vcs, state.repo, state.base_rev)


def _no_repo(state: RedState) -> str:
    return f"no repository on this machine holds {state.vcs} revision {state.base_rev[:12]}"


__all__ = ["Attempt", "Laid", "WorkerPool", "build_attempt"]
