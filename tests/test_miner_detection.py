"""Episode detection in SQL agrees with a plain reference loop on random streams."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from miner.dataset import Dataset
from miner.episodes import Candidate, detect
from schemas.v1 import SNAPSHOTS

T0 = datetime(2024, 5, 1, tzinfo=UTC)
KINDS = ["green", "red", "unknown", "stale", "timeout", "mismatch", "none", "base"]

# one snapshot: (stream, kind, seconds after T0); few seconds, so timestamps tie
snapshot = st.tuples(st.integers(0, 2), st.sampled_from(KINDS), st.integers(0, 30))


def to_row(index: int, stream: int, kind: str, seconds: int) -> dict[str, Any]:
    state = f"state-{index}"
    build = None
    if kind not in ("none", "base"):
        status = {"mismatch": "green"}.get(kind, kind)
        build = {"status": status, "state_id": "other" if kind == "mismatch" else state}
    if kind == "base":  # a base row carrying a build of its own state: never usable
        build = {"status": "green", "state_id": state}
    return {
        "snapshot_id": f"{index:04d}",
        "schema_version": 1,
        "ts": T0 + timedelta(seconds=seconds),
        "host": "h0",
        "workspace": f"/w{stream}",
        "state_id": state,
        "build": build,
        "reason": "base" if kind == "base" else "state",
    }


def reference(rows: list[dict[str, Any]]) -> list[Candidate]:
    """The definition, as a loop: green G0, red+ without green, then the first green G1."""
    found = []
    streams: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        build = row["build"]
        usable = (
            build is not None
            and build["state_id"] == row["state_id"]
            and build["status"] in ("green", "red")
            and row["reason"] != "base"
        )
        if usable:
            streams.setdefault((row["host"], row["workspace"]), []).append(row)
    for (host, workspace), usable_rows in streams.items():
        usable_rows.sort(key=lambda r: (r["ts"], r["snapshot_id"]))
        green: dict[str, Any] | None = None
        reds: list[dict[str, Any]] = []
        for row in usable_rows:
            if row["build"]["status"] == "red":
                if green is not None:
                    reds.append(row)
                continue
            if green is not None and reds:
                found.append(
                    Candidate(
                        host,
                        workspace,
                        green["snapshot_id"],
                        reds[0]["snapshot_id"],
                        reds[-1]["snapshot_id"],
                        row["snapshot_id"],
                        reds[0]["ts"],
                        row["ts"],
                        len(reds),
                    )
                )
            green, reds = row, []
    return sorted(found, key=lambda c: (c.host, c.workspace, c.red_ended_at, c.green_id))


@settings(max_examples=60, deadline=None)
@given(st.lists(snapshot, max_size=60))
def test_sql_detection_matches_the_definition(snapshots: list[tuple[int, str, int]]) -> None:
    rows = [to_row(i, *s) for i, s in enumerate(snapshots)]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        if rows:
            partition = data / "snapshots" / "date=2024-05-01" / "host=h0"
            partition.mkdir(parents=True)
            pq.write_table(pa.Table.from_pylist(rows, schema=SNAPSHOTS), partition / "a.parquet")
        with Dataset(data) as dataset:
            found = detect(dataset.con)
    assert found == reference(rows)
