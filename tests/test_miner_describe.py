"""The offline describer, the describer registry and the error fingerprint."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from miner.describe import (
    DESCRIBERS,
    Describer,
    Description,
    OfflineDescriber,
    error_kind,
    get_describer,
)
from miner.errors import MinerError
from miner.fingerprint import error_fingerprint, error_line, normalise_error
from miner.record import Episode, episode_id

T = datetime(2024, 5, 1, tzinfo=UTC)


def make_episode(error: str = "", *paths: str, diagnostics: Any = (), **kw: Any) -> Episode:
    base = Episode(
        episode_id=episode_id("r", "g"),
        host="h",
        user="u",
        workspace="/w",
        vcs="git",
        green_before_id="g0",
        first_red_id="r",
        red_id="r",
        green_id="g",
        red_started_at=T,
        red_ended_at=T,
        red_seconds=0.0,
        red_snapshots=1,
        error=error,
        diagnostics=tuple(diagnostics),
        error_fingerprint=None,
        fix_diff="",
        fix_lines=3,
        fix_files=len(paths),
        break_diff="",
        context=(),
        filters=(),
        kept=True,
        fix_paths=paths,
    )
    return replace(base, **kw)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('  File "calc.py", line 3\n    def f(:\nSyntaxError: invalid syntax', "syntax error"),
        ("src/parse.c:12:5: error: expected ';' before '}' token", "syntax error"),
        ("IndentationError: unexpected indent", "syntax error"),
        ("ModuleNotFoundError: No module named 'requests'", "import error"),
        ("main.c:1:10: fatal error: foo.h: No such file or directory", "import error"),
        ("NameError: name 'totl' is not defined", "undefined name"),
        ("a.c:3:3: error: use of undeclared identifier 'x'", "undefined name"),
        ("a.c:3:3: error: 'x' undeclared (first use in this function)", "undefined name"),
        ('File "a.ml", line 2: Error: Unbound value lenght', "undefined name"),
        (
            'a.py:3: error: Argument 1 to "f" has incompatible type "str"; expected "int"',
            "type error",
        ),
        (
            "Error: This expression has type int but an expression was expected of type string",
            "type error",
        ),
        ("error[E0308]: mismatched types", "type error"),
        ("TypeError: unsupported operand type(s) for +: 'int' and 'str'", "type error"),
        ("main.o: undefined reference to `helper'", "link error"),
        ("FAILED tests/test_calc.py::test_add - AssertionError", "failing test"),
        (
            "Error (warning 8 [partial-match]): this pattern-matching is not exhaustive.",
            "non-exhaustive match",
        ),
        (
            "This function has type int -> int\n It is applied to too many arguments",
            "wrong number of arguments",
        ),
        (
            "src/main.ts(5,30): error TS2554: Expected 1 arguments, but got 2.",
            "wrong number of arguments",
        ),
        ("make: *** [all] Error 2", "build error"),
    ],
)
def test_error_kinds(text: str, kind: str) -> None:
    assert error_kind(text) == kind


def test_first_reported_kind_wins() -> None:
    text = "a.py:1: SyntaxError: invalid syntax\nlater: TypeError: boom"
    assert error_kind(text) == "syntax error"


def test_prompt_names_the_file_the_fix_touches() -> None:
    described = OfflineDescriber().describe(make_episode("SyntaxError: invalid syntax", "calc.py"))
    assert described.prompt == "Fix the syntax error in calc.py"
    assert described.description.startswith("The build failed with a syntax error:")
    assert "calc.py" in described.description


def test_prompt_puts_the_diagnosed_file_first() -> None:
    diagnostic = {
        "file": "/home/dev/proj/src/parse.c",
        "line": 12,
        "col": 5,
        "severity": "error",
        "code": None,
        "message": "use of undeclared identifier 'tok'",
    }
    episode = make_episode("...", "src/lex.c", "src/parse.c", diagnostics=[diagnostic])
    described = OfflineDescriber().describe(episode)
    assert described.prompt == "Fix the undefined name in src/parse.c and src/lex.c"
    assert "at /home/dev/proj/src/parse.c:12" in described.description
    assert "use of undeclared identifier 'tok'" in described.description


def test_prompt_with_many_files_and_with_none() -> None:
    many = make_episode("make: *** [all] Error 2", "a.c", "b.c", "c.c")
    prompt = OfflineDescriber().describe(many).prompt
    assert prompt == "Fix the build error in a.c and 2 other files"
    assert OfflineDescriber().describe(make_episode("")).prompt == "Fix the build error"


def test_diagnostic_code_counts_for_the_kind() -> None:
    diagnostic = {
        "file": "m.rs",
        "line": 1,
        "col": 1,
        "severity": "error",
        "code": "E0308",
        "message": "mismatched types",
    }
    episode = make_episode("", "m.rs", diagnostics=[diagnostic])
    assert OfflineDescriber().describe(episode).prompt == "Fix the type error in m.rs"


def test_registry_and_protocol() -> None:
    describer: Describer = get_describer("offline")
    assert describer.name == "offline"
    assert isinstance(describer.describe(make_episode("x", "a.py")), Description)
    assert DESCRIBERS["offline"] is OfflineDescriber
    with pytest.raises(MinerError, match="unknown describer 'gpt'"):
        get_describer("gpt")


def test_fingerprint_ignores_numbers_paths_and_quoted_names() -> None:
    one = 'src/a.py:10: error: Name "totl" is not defined  [name-defined]'
    two = 'lib/b.py:99: error: Name "count" is not defined  [name-defined]'
    assert error_fingerprint(one) == error_fingerprint(two)
    other = "src/a.py:10: error: Incompatible types in assignment  [assignment]"
    assert error_fingerprint(one) != error_fingerprint(other)
    assert normalise_error(one) == "<path>:<n>: error: Name <str> is not defined [name-defined]"


def test_fingerprint_prefers_the_first_error_diagnostic() -> None:
    diagnostics = [
        {"severity": "warning", "message": "unused variable", "code": None},
        {"severity": "error", "message": "expected ';'", "code": "C2143"},
    ]
    assert error_line("anything error here", diagnostics) == "C2143: expected ';'"
    assert error_line("one\nan Error: here\nthree") == "an Error: here"
    assert error_line("no match\nlast line\n\n") == "last line"
    assert error_fingerprint("") is None and error_fingerprint(None) is None
    fingerprint = error_fingerprint("x", diagnostics)
    assert fingerprint is not None and len(fingerprint) == 16
    assert fingerprint == error_fingerprint("something else", diagnostics)


def test_file_names_are_masked() -> None:
    assert normalise_error("cannot import calc.py (line 3)") == "cannot import <file> (line <n>)"
