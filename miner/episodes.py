"""Find green -> red -> green episodes in the snapshot streams, in DuckDB.

Detection is one SQL query (``episodes.sql`` beside this file) over the
``snapshots`` view.  One window sort per stream gives each usable row its
neighbours (``lag``/``lead``); only the edges of red runs survive (a red
after a green opens a run, a red before a green closes it), and a second,
small window pairs each closing red with its run's opening red.  No Python
loop touches snapshot rows, so detection scales with DuckDB, not with the
interpreter (see ``bench/bench_episodes.py``).  The rest of the miner works per episode, and
episodes are few.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import NamedTuple

import duckdb

EPISODES_SQL = Path(__file__).with_name("episodes.sql")


class Candidate(NamedTuple):
    """An episode as detection sees it: its four snapshots and its red span.

    A named tuple, not a dataclass: detection may return many, and building
    a tuple costs a fraction of a frozen dataclass.
    """

    host: str | None
    workspace: str | None
    green_before_id: str
    first_red_id: str
    red_id: str
    green_id: str
    red_started_at: datetime
    red_ended_at: datetime
    red_snapshots: int


@cache
def detection_sql() -> str:
    """The detection query, as the file holds it."""
    return EPISODES_SQL.read_text(encoding="utf-8")


# Timestamps leave DuckDB as naive UTC and get their zone in Python: turning
# a TIMESTAMPTZ into a datetime costs ten times more, and episodes are many.
_UTC_TIMES = (
    "SELECT * REPLACE (timezone('UTC', red_started_at) AS red_started_at,"
    " timezone('UTC', red_ended_at) AS red_ended_at) FROM ({sql})"
    " ORDER BY host, workspace, red_ended_at, green_id"
)


def detect(con: duckdb.DuckDBPyConnection) -> list[Candidate]:
    """Every episode in the ``snapshots`` view of ``con``, in stream and time order."""
    rows = con.execute(_UTC_TIMES.format(sql=detection_sql())).fetchall()
    return [
        Candidate(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6].replace(tzinfo=UTC),
            row[7].replace(tzinfo=UTC),
            row[8],
        )
        for row in rows
    ]
