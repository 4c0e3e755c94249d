"""A real ``snapshotter run`` process for tests: start, wait for rows, stop or kill."""

from __future__ import annotations

import os
import signal
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
    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._log_file = log.open("ab")
        self.proc = subprocess.Popen(
            [SNAPSHOTTER, "run", *args],
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
