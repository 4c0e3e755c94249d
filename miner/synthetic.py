"""Hand-made schema-v1 datasets, for tests and demos of the miner.

:class:`SyntheticDataset` plays the snapshotter: a :class:`Workspace` holds a
base tree and a working tree, the test edits files the way a developer does,
and each :meth:`Workspace.snapshot` records a row by the data contract
(``files`` = every path whose working content differs from the base, blobs
stored once), :meth:`Workspace.commit` a ``base`` row (``files`` = the paths
that differ between the old base and the new).  :meth:`SyntheticDataset.write`
lays the rows out as the real dataset does,
``snapshots/date=YYYY-MM-DD/host=HOST/*.parquet`` and ``blobs/...``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.v1 import BLOBS, SCHEMA_VERSION, SNAPSHOTS
from snapshotter.textdiff import Side, file_diff

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
STEP = timedelta(seconds=20)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def state_id(base_rev: str | None, files: Iterable[Mapping[str, Any]]) -> str:
    """A hash of (base rev, sorted (path, content hash)), as the design defines it."""
    parts = [base_rev or "", *sorted(f"{f['path']}\0{f['blob'] or '-'}" for f in files)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass
class SyntheticDataset:
    """Rows and blobs of one dataset, written out by :meth:`write`."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    clock: datetime = START
    sequence: int = 0

    def blob(self, content: bytes) -> str:
        digest = sha256(content)
        self.blobs[digest] = content
        return digest

    def next_id(self, ts: datetime) -> str:
        # time-sortable like a ULID: milliseconds, then a sequence number
        self.sequence += 1
        return f"{int(ts.timestamp() * 1000):013d}{self.sequence:06d}"

    def tick(self, step: timedelta = STEP) -> datetime:
        self.clock += step
        return self.clock

    def workspace(self, path: str = "/home/dev/proj", host: str = "laptop", **kw: Any) -> Workspace:
        return Workspace(self, path, host, **kw)

    def write(self, data_dir: Path, blob_partition: tuple[str, str] | None = None) -> None:
        """Write hive-partitioned Parquet; all blobs in one partition (default: the first)."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for row in self.rows:
            groups[(row["ts"].date().isoformat(), row["host"])].append(row)
        for (day, host), rows in sorted(groups.items()):
            directory = data_dir / "snapshots" / f"date={day}" / f"host={host}"
            directory.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pylist(rows, schema=SNAPSHOTS)
            pq.write_table(table, directory / f"part-{len(list(directory.iterdir()))}.parquet")
        if not self.blobs:
            return
        day, host = blob_partition or min(groups)
        directory = data_dir / "blobs" / f"date={day}" / f"host={host}"
        directory.mkdir(parents=True, exist_ok=True)
        blob_rows = [
            {"blob": digest, "size": len(content), "content": content}
            for digest, content in sorted(self.blobs.items())
        ]
        pq.write_table(
            pa.Table.from_pylist(blob_rows, schema=BLOBS),
            directory / f"blobs-{len(list(directory.iterdir()))}.parquet",
        )


@dataclass
class Workspace:
    """One working copy: a base tree, a working tree, and the rows it records."""

    dataset: SyntheticDataset
    path: str
    host: str
    user: str = "dev"
    vcs: str = "git"
    base_rev: str = "b" * 40
    base: dict[str, bytes] = field(default_factory=dict)
    work: dict[str, bytes] = field(default_factory=dict)
    # path -> why its content is not kept (excluded, too_large, binary)
    omit: dict[str, str] = field(default_factory=dict)

    def start(self, files: Mapping[str, bytes], base_rev: str | None = None) -> None:
        """Begin with a clean checkout of ``files`` at ``base_rev``."""
        self.base = dict(files)
        self.work = dict(files)
        if base_rev is not None:
            self.base_rev = base_rev

    def write(self, path: str, content: bytes) -> None:
        self.work[path] = content

    def remove(self, path: str) -> None:
        self.work.pop(path, None)

    def _entry(self, path: str, old: bytes | None, new: bytes | None) -> dict[str, Any]:
        omitted = self.omit.get(path)
        status = "A" if old is None else "R" if new is None else "M"
        blob = base_blob = None
        if omitted != "excluded":
            blob = sha256(new) if new is not None else None
            base_blob = sha256(old) if old is not None else None
        if omitted is None:
            for content in (old, new):
                if content is not None:
                    self.dataset.blob(content)
        size = len(new) if new is not None else None
        return {
            "path": path,
            "status": status,
            "blob": blob,
            "base_blob": base_blob,
            "size": size,
            "omitted": omitted,
        }

    def _entries(self, old: Mapping[str, bytes], new: Mapping[str, bytes]) -> list[dict[str, Any]]:
        paths = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
        return [self._entry(p, old.get(p), new.get(p)) for p in paths]

    def _diff(self, old: Mapping[str, bytes], new: Mapping[str, bytes]) -> tuple[str, int, int]:
        text, added, removed = [], 0, 0
        for path in sorted(set(old) | set(new)):
            if old.get(path) == new.get(path):
                continue
            opaque = path in self.omit
            diff = file_diff(
                path,
                Side(old.get(path), opaque=opaque and path in old),
                Side(new.get(path), opaque=opaque and path in new),
            )
            text.append(diff.text)
            added, removed = added + diff.added, removed + diff.removed
        return "".join(text), added, removed

    def current_state_id(self) -> str:
        return state_id(self.base_rev, self._entries(self.base, self.work))

    def snapshot(
        self,
        status: str | None = "green",
        output: str = "",
        *,
        exit_code: int | None = None,
        diagnostics: Iterable[Mapping[str, Any]] = (),
        build_state_id: str | None = None,
        reason: str = "state",
        ts: datetime | None = None,
    ) -> str:
        """Record the current state with a build result of ``status`` (None: no build)."""
        files = self._entries(self.base, self.work)
        sid = state_id(self.base_rev, files)
        build = None
        if exit_code is None:
            exit_code = 0 if status == "green" else 1
        if status is not None:
            build = {
                "status": status,
                "state_id": build_state_id or sid,
                "command": "make",
                "exit_code": exit_code,
                "started_at": None,
                "finished_at": None,
                "output": output,
                "diagnostics": [dict(d) for d in diagnostics],
            }
        return self._record(files, self._diff(self.base, self.work), sid, build, reason, ts)

    def commit(self, rev: str, ts: datetime | None = None) -> str:
        """Commit the working tree: the base becomes it, recorded as a ``base`` row."""
        files = self._entries(self.base, self.work)
        diff = self._diff(self.base, self.work)
        self.base = dict(self.work)
        self.base_rev = rev
        return self._record(files, diff, state_id(rev, []), None, "base", ts)

    def _record(
        self,
        files: list[dict[str, Any]],
        diff: tuple[str, int, int],
        sid: str,
        build: dict[str, Any] | None,
        reason: str,
        ts: datetime | None,
    ) -> str:
        when = ts or self.dataset.tick()
        snapshot_id = self.dataset.next_id(when)
        self.dataset.rows.append(
            {
                "snapshot_id": snapshot_id,
                "schema_version": SCHEMA_VERSION,
                "ts": when,
                "host": self.host,
                "user": self.user,
                "workspace": self.path,
                "vcs": self.vcs,
                "base_rev": self.base_rev,
                "branch": None,
                "state_id": sid,
                "files": files,
                "diff": diff[0],
                "lines_added": diff[1],
                "lines_removed": diff[2],
                "build": build,
                "reason": reason,
            }
        )
        return snapshot_id
