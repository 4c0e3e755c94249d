"""Near-duplicate episodes: grouped across hosts, the earliest kept, the rest flagged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from miner import pipeline
from miner.code_tokens import layout_free, masked
from miner.hygiene import dup_group, mark_duplicates, normalised_fix
from miner.output import TRAIN_FILE
from miner.record import Episode
from miner.synthetic import SyntheticDataset, Workspace

REPORT = b"def report(items):\n    total = sum(items)\n    return total\n"
REPORT_TYPO = b"def report(items):\n    total = sum(items)\n    return totl\n"
MEAN = b"def mean(xs):\n    count = len(xs)\n    return count / 2\n"
MEAN_TYPO = b"def mean(xs):\n    count = len(xs)\n    return cnt / 2\n"
# the same repair, other names, other number: a near-duplicate of REPORT's
STATS = b"def spread(values):\n    width = max(values)\n    return width\n"
STATS_TYPO = b"def spread(values):\n    width = max(values)\n    return widht\n"


def name_error(name: str) -> str:
    return f"NameError: name '{name}' is not defined\n"


def repair(w: Workspace, path: str, good: bytes, broken: bytes, error: str) -> None:
    """green -> red (``broken``) -> green (``good``) in ``w``: a repair, not a revert."""
    w.start({path: b"pass\n"})
    w.snapshot("green")
    w.write(path, broken)
    w.snapshot("red", error)
    w.write(path, good)
    w.snapshot("green")


def mine(tmp_path: Path, ds: SyntheticDataset, out: str = "out") -> list[dict[str, Any]]:
    ds.write(tmp_path / "data")
    pipeline.run(tmp_path / "data", tmp_path / out)
    cursor = duckdb.connect().execute(
        "SELECT * FROM read_parquet(?) ORDER BY red_ended_at",
        [str(tmp_path / out / "episodes.parquet")],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def three_hosts() -> SyntheticDataset:
    """The same typo repair on a laptop, then on a desktop; another repair between."""
    ds = SyntheticDataset()
    laptop = ds.workspace("/home/ann/app", "laptop", user="ann")
    desktop = ds.workspace("/home/bob/lib", "desktop", user="bob")
    repair(laptop, "report.py", REPORT, REPORT_TYPO, name_error("totl"))
    repair(desktop, "mean.py", MEAN, MEAN_TYPO, name_error("cnt"))
    repair(desktop, "stats.py", STATS, STATS_TYPO, name_error("widht"))
    return ds


def test_the_same_repair_on_two_hosts_is_one_group_and_the_earliest_is_kept(
    tmp_path: Path,
) -> None:
    report, mean, stats = mine(tmp_path, three_hosts())
    assert (report["host"], mean["host"], stats["host"]) == ("laptop", "desktop", "desktop")
    assert report["error_fingerprint"] == stats["error_fingerprint"]
    assert report["dup_group"] == stats["dup_group"] is not None
    # "return <id> / <n>" is another fix: its own group
    assert mean["dup_group"] not in (None, report["dup_group"])
    assert report["filters"] == [] and report["kept"] and report["split"] == "train"
    assert stats["filters"] == ["duplicate"] and not stats["kept"] and stats["split"] is None
    assert mean["kept"]
    train = (tmp_path / "out" / TRAIN_FILE).read_text().splitlines()
    assert len(train) == 2  # the duplicate is not a training line


def test_an_episode_another_filter_rejects_never_represents_its_group(tmp_path: Path) -> None:
    ds = three_hosts()
    first_red = next(r for r in ds.rows if r["build"] and r["build"]["status"] == "red")
    first_red["build"]["exit_code"] = 137  # killed: not about the code, not kept
    report, _, stats = mine(tmp_path, ds)
    assert report["dup_group"] == stats["dup_group"]
    assert report["filters"] == ["duplicate", "not_code_error"] and not report["kept"]
    assert stats["filters"] == [] and stats["kept"]


def test_a_group_without_a_kept_member_has_no_duplicates(tmp_path: Path) -> None:
    ds = three_hosts()
    for row in ds.rows:
        if row["build"] and row["build"]["status"] == "red":
            row["build"]["exit_code"] = 137
    episodes = mine(tmp_path, ds)
    assert [e["filters"] for e in episodes] == [["not_code_error"]] * 3
    assert all(e["dup_group"] is not None for e in episodes)


def test_an_empty_fix_has_no_group(tmp_path: Path) -> None:
    ds = SyntheticDataset()
    w = ds.workspace()
    w.start({"a.py": REPORT})
    w.snapshot("green")
    w.write("a.py", REPORT_TYPO)
    w.snapshot("red", name_error("totl"))
    w.snapshot("green")  # the same state: flaky, nothing fixed
    [episode] = mine(tmp_path, ds)
    assert episode["fix_diff"] == "" and episode["dup_group"] is None


def test_rerun_gives_identical_files_and_order_does_not_matter(tmp_path: Path) -> None:
    ds = three_hosts()
    mine(tmp_path, ds, "one")
    pipeline.run(tmp_path / "data", tmp_path / "two")
    for name in ("episodes.parquet", TRAIN_FILE):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    cursor = duckdb.connect().execute(
        "SELECT * FROM read_parquet(?)", [str(tmp_path / "one" / "episodes.parquet")]
    )
    names = [d[0] for d in cursor.description]
    episodes = [Episode.from_row(dict(zip(names, r, strict=True))) for r in cursor.fetchall()]
    forward = mark_duplicates(episodes)
    backward = mark_duplicates(list(reversed(episodes)))
    assert {e.episode_id: e.filters for e in forward} == {e.episode_id: e.filters for e in backward}
    # marking again changes nothing
    assert mark_duplicates(forward) == forward


DIFF_A = """\
diff --git a/src/report.py b/src/report.py
--- a/src/report.py
+++ b/src/report.py
@@ -1,3 +1,3 @@
 def report(items):
     total = sum(items)
-    return totl
+    return total
diff --git a/notes.sql b/notes.sql
--- a/notes.sql
+++ b/notes.sql
@@ -1 +1 @@
--- old comment
+-- better comment
"""
# other names, other spacing, other context, files in the other order
DIFF_B = """\
diff --git a/db/a.sql b/db/a.sql
--- a/db/a.sql
+++ b/db/a.sql
@@ -4 +4 @@
--- stale remark
+--   fresh remark
diff --git a/lib/mean.py b/lib/mean.py
--- a/lib/mean.py
+++ b/lib/mean.py
@@ -7,3 +7,4 @@
 def mean(xs):
-    return  cnt
+
+    return count
"""


def test_the_normalised_fix_ignores_names_spacing_context_and_file_order() -> None:
    assert normalised_fix(DIFF_A) == normalised_fix(DIFF_B)
    assert normalised_fix(DIFF_A) == (
        ".py\n-return <id>\n+return <id>\n\n.sql\n-- - <id> <id>\n+- - <id> <id>"
    )
    assert dup_group("f" * 16, DIFF_A) == dup_group("f" * 16, DIFF_B)
    assert dup_group("e" * 16, DIFF_A) != dup_group("f" * 16, DIFF_A)
    assert dup_group("f" * 16, "") is None


def test_keywords_literals_signs_and_extensions_count() -> None:
    def one_line(path: str, old: str, new: str) -> str:
        header = f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
        return f"{header}@@ -1 +1 @@\n-{old}\n+{new}\n"

    base = normalised_fix(one_line("a.py", "return x", "return y"))
    assert normalised_fix(one_line("b.py", "return a", "return b")) == base
    assert normalised_fix(one_line("a.py", "return x", "yield y")) != base
    assert normalised_fix(one_line("a.rs", "return x", "return y")) != base
    assert normalised_fix(one_line("a.py", "return y", "return (x)")) != base
    literals = normalised_fix(one_line("a.py", "f('a', 1)", 'f("b", 2.5)'))
    assert literals == normalised_fix(one_line("a.py", 'g("c", 3)', "g('d', 0x1)"))
    assert masked("if total_2 >= 'x':") == ["if", "<id>", ">", "=", "<str>", ":"]


def test_layout_free_tokens_ignore_spacing_quotes_and_trailing_commas() -> None:
    assert layout_free("f('a',)\n") == layout_free('f( "a" )')
    assert layout_free("x = [\n    1,\n    2,\n]\n") == layout_free("x = [1, 2]")
    assert layout_free("'it\\'s'") == layout_free('"it\'s"')
    assert layout_free("f(a, b)") != layout_free("f(b, a)")
    assert layout_free("x = 'a'") != layout_free("x = 'b'")
