"""Rebuilding states from hand-made snapshot rows (miner.states), no dataset needed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from miner.states import (
    ContentRef,
    FileEntry,
    StateRow,
    UnrebuildableError,
    blobs_needed,
    compare_states,
    diff_states,
    rows_between,
)

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def h(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def row(n: int, base_rev: str, *entries: FileEntry, reason: str = "state") -> StateRow:
    return StateRow(
        snapshot_id=f"s{n:03d}",
        ts=T0 + timedelta(seconds=20 * n),
        base_rev=base_rev,
        state_id=f"state-{n}",
        files={e.path: e for e in entries},
        reason=reason,
    )


def modified(path: str, old: bytes, new: bytes, omitted: str | None = None) -> FileEntry:
    return FileEntry(path, "M", h(new), h(old), omitted)


ORIGINAL = b"def f():\n    return 1\n"
BROKEN = b"def f()\n    return 1\n"
FIXED = b"def f():\n    return 2\n"
CONTENTS = {h(c): c for c in (ORIGINAL, BROKEN, FIXED)}


def test_same_base_diff_uses_working_and_base_blobs() -> None:
    red = row(1, "B1", modified("a.py", ORIGINAL, BROKEN))
    green = row(2, "B1", modified("a.py", ORIGINAL, FIXED))
    pairs = compare_states(red, green, [])
    assert pairs == {"a.py": (ContentRef(h(BROKEN)), ContentRef(h(FIXED)))}
    diff = diff_states(pairs, CONTENTS)
    assert diff.paths == ["a.py"]
    assert "-def f()\n" in diff.text and "+    return 2\n" in diff.text


def test_path_only_in_one_row_takes_the_shared_base_on_the_other_side() -> None:
    # red changed a.py; green reverted it to the base and changed b.py
    red = row(1, "B1", modified("a.py", ORIGINAL, BROKEN))
    green = row(2, "B1", FileEntry("b.py", "A", h(FIXED), None))
    pairs = compare_states(red, green, [])
    assert pairs == {
        "a.py": (ContentRef(h(BROKEN)), ContentRef(h(ORIGINAL))),
        "b.py": (ContentRef(None), ContentRef(h(FIXED))),
    }
    text = diff_states(pairs, CONTENTS).text
    assert "new file mode 100644\n--- /dev/null\n+++ b/b.py\n" in text


def test_commit_between_red_and_green() -> None:
    # red: base B1, a.py broken; then a commit B1 -> B2 whose a.py is the fixed text;
    # green: base B2, clean.  The fix is broken -> fixed, not base -> fixed.
    red = row(1, "B1", modified("a.py", ORIGINAL, BROKEN))
    base = row(2, "B2", modified("a.py", ORIGINAL, FIXED), reason="base")
    green = row(3, "B2")
    pairs = compare_states(red, green, [base])
    assert pairs == {"a.py": (ContentRef(h(BROKEN)), ContentRef(h(FIXED)))}
    diff = diff_states(pairs, CONTENTS)
    assert diff.text == (
        "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n"
        "-def f()\n-    return 1\n+def f():\n+    return 2\n"
    )


def test_commit_of_the_broken_text_then_a_fix_on_top() -> None:
    # red at B1 (a.py broken, uncommitted), commit of the broken text, green fixes it at B2
    red = row(1, "B1", modified("a.py", ORIGINAL, BROKEN))
    base = row(2, "B2", modified("a.py", ORIGINAL, BROKEN), reason="base")
    green = row(3, "B2", modified("a.py", BROKEN, FIXED))
    pairs = compare_states(red, green, [base])
    assert pairs == {"a.py": (ContentRef(h(BROKEN)), ContentRef(h(FIXED)))}


def test_path_touched_only_by_base_rows_uses_first_old_and_last_new() -> None:
    red = row(1, "B1")
    first = row(2, "B2", FileEntry("c.py", "A", h(ORIGINAL), None), reason="base")
    second = row(3, "B3", modified("c.py", ORIGINAL, FIXED), reason="base")
    green = row(4, "B3")
    pairs = compare_states(red, green, [first, second])
    assert pairs == {"c.py": (ContentRef(None), ContentRef(h(FIXED)))}


def test_base_change_that_returns_to_the_same_content_drops_the_path() -> None:
    red = row(1, "B1")
    there = row(2, "B2", modified("c.py", ORIGINAL, FIXED), reason="base")
    back = row(3, "B1", modified("c.py", FIXED, ORIGINAL), reason="base")
    green = row(4, "B1")
    assert compare_states(red, green, [there, back]) == {}


def test_removed_file_is_absent_and_diffs_as_deleted() -> None:
    red = row(1, "B1", FileEntry("a.py", "R", None, h(ORIGINAL)))
    green = row(2, "B1")
    pairs = compare_states(red, green, [])
    assert pairs == {"a.py": (ContentRef(None), ContentRef(h(ORIGINAL)))}
    text = diff_states(pairs, CONTENTS).text
    assert text.startswith("diff --git a/a.py b/a.py\nnew file mode 100644\n")


def test_omitted_content_diffs_as_binary_and_needs_no_blob() -> None:
    red = row(1, "B1", modified("big.bin", b"x" * 10, b"y" * 10, omitted="too_large"))
    green = row(2, "B1", modified("big.bin", b"x" * 10, b"z" * 10, omitted="too_large"))
    pairs = compare_states(red, green, [])
    assert blobs_needed(pairs) == set()
    diff = diff_states(pairs, {})
    assert diff.text == (
        "diff --git a/big.bin b/big.bin\nBinary files a/big.bin and b/big.bin differ\n"
    )
    assert diff.changes[0].opaque
    assert (diff.added, diff.removed) == (0, 0)


def test_excluded_file_on_both_sides_counts_as_unchanged() -> None:
    secret = FileEntry(".env", "M", None, None, "excluded")
    assert compare_states(row(1, "B1", secret), row(2, "B1", secret), []) == {}


def test_removed_omitted_file_is_absent_not_opaque() -> None:
    red = row(1, "B1", FileEntry("big.bin", "R", None, h(b"x"), "too_large"))
    green = row(2, "B1")
    (old, new) = compare_states(red, green, [])["big.bin"]
    assert old == ContentRef(None) and old.absent
    assert new == ContentRef(h(b"x"), "too_large") and not new.available


def test_different_bases_without_a_base_row_cannot_be_rebuilt() -> None:
    with pytest.raises(UnrebuildableError, match="no base change recorded"):
        compare_states(row(1, "B1"), row(2, "B2"), [])


def test_base_rows_must_end_at_the_later_rows_base() -> None:
    base = row(2, "B2", modified("a.py", ORIGINAL, FIXED), reason="base")
    with pytest.raises(UnrebuildableError, match="not the last recorded base change"):
        compare_states(row(1, "B1"), row(3, "B3"), [base])


def test_missing_blob_content_cannot_be_rebuilt() -> None:
    pairs = compare_states(
        row(1, "B1", modified("a.py", ORIGINAL, BROKEN)),
        row(2, "B1", modified("a.py", ORIGINAL, FIXED)),
        [],
    )
    with pytest.raises(UnrebuildableError, match="not in blobs"):
        diff_states(pairs, {h(BROKEN): BROKEN})


def test_diff_is_in_sorted_path_order() -> None:
    red = row(1, "B1", modified("z.py", ORIGINAL, BROKEN), modified("a.py", ORIGINAL, BROKEN))
    green = row(2, "B1")
    diff = diff_states(compare_states(red, green, []), CONTENTS)
    assert diff.paths == ["a.py", "z.py"]
    assert diff.text.index("a/a.py") < diff.text.index("a/z.py")


def test_rows_between_is_strict_and_ordered_by_time_then_id() -> None:
    a, b, c, d = row(1, "B1"), row(2, "B1"), row(3, "B1"), row(4, "B1")
    same_time = StateRow("s002b", b.ts, "B1", None, {})
    assert rows_between([d, c, same_time, b, a], a, d) == [b, same_time, c]
    assert rows_between([a, b], b, c) == []
