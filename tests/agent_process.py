"""A real ``snapshotter run`` process for tests: start, wait for rows, stop or kill."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb

SNAPSHOTTER = str(Path(sys.executable).parent / "snapshotter")


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


class AgentProcess:
    def __init__(
        self,
        args: Sequence[str],
        log: Path,
        env: dict[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        """``wrapper`` runs the agent through a command (``unshare --user ...``) that execs it."""
        self.log = log
        self._log_file = log.open("ab")
        self.proc = subprocess.Popen(
            [*wrapper, SNAPSHOTTER, "run", *args],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._log_file.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def flush(data_dir: Path) -> None:
    subprocess.run(
        [SNAPSHOTTER, "flush", "--data-dir", str(data_dir)], check=True, capture_output=True
    )


def recorded(data_dir: Path, where: str = "true") -> list[dict[str, Any]]:
    if not list((data_dir / "snapshots").glob("*/*/*.parquet")):
        return []
    rel = duckdb.connect().sql(
        f"""select * from read_parquet('{data_dir}/snapshots/*/*/*.parquet',
               union_by_name=true, hive_partitioning=true)
            where {where} order by ts, snapshot_id"""
    )
    return [dict(zip(rel.columns, values, strict=True)) for values in rel.fetchall()]


def spooled(data_dir: Path) -> list[dict[str, Any]]:
    """The rows waiting in the spool, read through a read-only connection.

    What a killed agent acknowledged: an append that returned is in here (or,
    once rolled, in Parquet), whatever instant the kill came at.
    """
    path = data_dir / "spool" / "spool.sqlite3"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    try:
        rows = conn.execute("SELECT data FROM rows ORDER BY seq").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # caught between the file's creation and the spool's first schema step
        raise
    finally:
        conn.close()
    return [json.loads(data) for (data,) in rows]


def parquet_snapshot_ids(data_dir: Path) -> list[str]:
    """Every snapshot_id in the rolled Parquet files, read file by file with DuckDB."""
    ids: list[str] = []
    connection = duckdb.connect()
    try:
        for path in sorted((data_dir / "snapshots").glob("*/*/*.parquet")):
            rel = connection.sql(f"select snapshot_id from read_parquet('{path}')")
            ids += [row[0] for row in rel.fetchall()]
    finally:
        connection.close()
    return ids
