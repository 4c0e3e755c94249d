"""``miner sql``: run SQL against the dataset's views and render the result.

The views are those of :mod:`schemas.views`; a file whose data turns out
corrupt while the query runs is set aside and the query run again.  A
query's result is printed as a plain text table a person can read in a
terminal: one line per row, long cells cut, newlines shown as ``\\n``,
binary shown by its size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb

from miner.dataset import Dataset, first_line, may_be_corrupt_data
from miner.errors import MinerError
from schemas.files import Skipped

MAX_CELL = 80


class QueryError(MinerError):
    pass


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def run_query(
    dataset: Dataset, sql: str, on_skipped: Callable[[Skipped], None] | None = None
) -> QueryResult | None:
    """Run ``sql`` (one or more statements); the last one's result, if it has one.

    When a file's data cannot be decoded, the file is set aside (given to
    ``on_skipped``) and the query runs again over the rest.
    """
    while True:
        try:
            cursor = dataset.con.execute(sql)
            if cursor.description is None:
                return None
            columns = tuple(str(d[0]) for d in cursor.description)
            return QueryResult(columns, cursor.fetchall())
        except duckdb.Error as exc:
            if not may_be_corrupt_data(exc):
                raise QueryError(first_line(exc)) from exc
            set_aside = dataset.set_aside_unreadable()
            if not set_aside:
                raise QueryError(first_line(exc)) from exc
            for skipped in set_aside:
                if on_skipped is not None:
                    on_skipped(skipped)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    # one line per row: control characters shown escaped (lists and structs
    # print their strings as reprs, already escaped)
    text = str(value).replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if len(text) > MAX_CELL:
        text = text[: MAX_CELL - 1] + "…"
    return text


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def format_table(result: QueryResult) -> str:
    """``result`` as an aligned text table, with a row count under it."""
    cells: list[Sequence[str]] = [[_cell(v) for v in row] for row in result.rows]
    widths = [len(name) for name in result.columns]
    for row_cells in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row_cells, strict=True)]
    lines = [
        " | ".join(name.ljust(w) for name, w in zip(result.columns, widths, strict=True)).rstrip(),
        "-+-".join("-" * w for w in widths),
    ]
    for raw, row_cells in zip(result.rows, cells, strict=True):
        parts = [
            c.rjust(w) if _numeric(v) else c.ljust(w)
            for v, c, w in zip(raw, row_cells, widths, strict=True)
        ]
        lines.append(" | ".join(parts).rstrip())
    count = len(result.rows)
    lines.append(f"({count} row{'' if count == 1 else 's'})")
    return "\n".join(lines) + "\n"
