"""The diff in a model's reply: every shape models answer in, and replies with none."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from miner.eval.diffs import extract_diff

DIFF = """diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
-def add(a, b)
+def add(a, b):
     return a + b
"""

PLAIN = """--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
-def add(a, b)
+def add(a, b):
     return a + b
"""

OTHER = """diff --git a/main.py b/main.py
--- a/main.py
+++ b/main.py
@@ -1 +1 @@
-print(totl)
+print(total)
"""


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (DIFF, DIFF),
        (f"```diff\n{DIFF}```", DIFF),
        (f"The colon is missing.\n\n```diff\n{DIFF}```\n\nThis makes it parse.", DIFF),
        (f"Here:\n```patch\n{DIFF}```\n", DIFF),
        (f"Here:\n```\n{DIFF}```\n", DIFF),
        (f"~~~diff\n{DIFF}~~~\n", DIFF),
        # the language tag lies: the content decides
        (f"```python\n{DIFF}```\n", DIFF),
        # bare diffs with prose around them, with and without the diff --git line
        (f"Sure! Apply this:\n{DIFF}\nThat is all.\n", DIFF),
        (f"Apply this:\n\n{PLAIN}\n\nIt adds the colon.", PLAIN),
        # an unclosed fence runs to the end of the reply
        (f"```diff\n{DIFF}", DIFF),
        # no newline at the end of the reply
        (DIFF.rstrip("\n"), DIFF),
        # one block a file: joined in order
        (f"First:\n```diff\n{DIFF}```\nThen:\n```diff\n{OTHER}```\n", DIFF + OTHER),
        # a block of code that is not a diff is passed over
        (f"```python\ndef add(a, b):\n    pass\n```\n```diff\n{DIFF}```", DIFF),
    ],
)
def test_the_diff_is_found(reply: str, expected: str) -> None:
    assert extract_diff(reply) == expected


def test_a_longer_fence_holds_a_diff_with_a_fence_inside() -> None:
    readme = (
        "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n"
        "@@ -1,3 +1,3 @@\n ```\n-make\n+make -j2\n ```\n"
    )
    assert extract_diff(f"Here:\n````diff\n{readme}````\nDone.") == readme


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "I cannot help with that.",
        "```python\ndef add(a, b):\n    return a + b\n```",
        # a list of changes that looks a little like diff lines, without any header
        "- removed the bug\n+ added a colon\n",
        # headers without a hunk
        "--- a/calc.py\n+++ b/calc.py\nno hunk here\n",
        "random tokens ``` @@ -- ++ diff",
    ],
)
def test_a_reply_without_a_diff_gives_none(reply: str) -> None:
    assert extract_diff(reply) is None


def test_an_extracted_diff_applies_with_patch(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text("def add(a, b)\n    return a + b\n")
    diff = extract_diff(f"The fix:\n\n```diff\n{DIFF}```\n\nIt adds the colon.")
    assert diff is not None
    done = subprocess.run(
        ["patch", "-p1", "--batch"], cwd=tmp_path, input=diff.encode(), capture_output=True
    )
    assert done.returncode == 0, done.stdout
    assert (tmp_path / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
