"""Prompt filters: every reason on a crafted prompt, with a near miss that must pass."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miner.prompt_filters import (
    CODE_BLOCK,
    DESCRIPTIVE,
    DIFF_FRAGMENT,
    DUPLICATE,
    EMPTY,
    LAZY,
    LEAKS_SOLUTION,
    PROMISE,
    REASONS,
    REFUSAL,
    TOO_LONG,
    TOO_SHORT,
    WRONG_LANGUAGE,
    Candidate,
    Checked,
    PromptLimits,
    RedState,
    check_candidates,
    choose_prompt,
    solution_tokens,
)

# An OCaml episode: parse returned a list where a string was expected; the fix
# joins the pieces with String.concat, a name nowhere in the red state.
PARSE_ML = """\
(* split a header line into its fields *)
let parse s = String.split_on_char ',' s

let describe x = "fields: " ^ parse x
"""
ERROR = """\
File "parse.ml", line 120, characters 30-37:
120 | let describe x = "fields: " ^ parse x
                                  ^^^^^^^
Error: This expression has type string list
       but an expression was expected of type string
"""
FIX = """\
diff --git a/parse.ml b/parse.ml
--- a/parse.ml
+++ b/parse.ml
@@ -1,4 +1,6 @@
 (* split a header line into its fields *)
-let parse s = String.split_on_char ',' s
+let parse s = String.concat "; " (String.split_on_char ',' s) (* join with the separator *)
+let max_fields = 4096
+let check n = if n > max_fields then failwith "header overflow"

 let describe x = "fields: " ^ parse x
"""
RED = RedState(error=ERROR, files={"parse.ml": PARSE_ML}, fix_diff=FIX)


def reasons(text: str, style: str = LAZY, red: RedState = RED, **limits: Any) -> set[str]:
    """The reasons ``text`` fails, alone, against ``red`` (the parse.ml episode by default)."""
    [checked] = check_candidates([Candidate(text, style)], red, PromptLimits(**limits))
    return set(checked.reasons)


def test_reason_names_are_the_documented_strings() -> None:
    assert REASONS == (
        "empty",
        "too_short",
        "too_long",
        "code_block",
        "diff_fragment",
        "leaks_solution",
        "refusal",
        "promise",
        "wrong_language",
        "duplicate",
    )


# ---------------------------------------------------------------------------
# Prompts people type survive

HUMAN_LAZY = [
    "fix the type error in parse.ml",
    "make describe return a string again",
    "parse.ml doesn't compile anymore",
    "why is the build red",
    "fix build",
    "describe should return a string, not a list",
    "type error on line 120, pls fix",
    "parse returns a list now?? fix it",
    "I can't get parse.ml to compile",
    "fix describe() so it builds",
    "the split in parse gives a string list, make it a string",
    "-Werror breaks the build now",
    "make sure describe returns a string",
    "undo whatever broke parse",
]
HUMAN_DESCRIPTIVE = [
    "The build fails in parse.ml because parse returns a string list where describe"
    " expects a string. Make parse return a single string again.",
    "After my change to parse, describe no longer type checks; fix parse so the build passes.",
    "Fix the type error at parse.ml line 120: describe concatenates the result of parse,"
    " which is a list.",
]


@pytest.mark.parametrize("text", HUMAN_LAZY)
def test_realistic_lazy_prompts_survive(text: str) -> None:
    assert reasons(text) == set()


@pytest.mark.parametrize("text", HUMAN_DESCRIPTIVE)
def test_realistic_descriptive_prompts_survive(text: str) -> None:
    assert reasons(text, DESCRIPTIVE) == set()


# ---------------------------------------------------------------------------
# Length


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_no_words_is_empty_and_only_empty(text: str) -> None:
    assert reasons(text) == {EMPTY}


def test_lazy_word_limits() -> None:
    assert reasons("fix") == {TOO_SHORT}
    assert reasons("fix parse.ml") == set()
    fifteen = "please fix the type error in parse.ml so that describe gets a string back again"
    assert len(fifteen.split()) == 15
    assert reasons(fifteen) == set()
    assert reasons(fifteen + " now") == {TOO_LONG}


def test_descriptive_word_limits() -> None:
    assert reasons("fix the type error", DESCRIPTIVE) == {TOO_SHORT}
    assert reasons("fix the type error please", DESCRIPTIVE) == set()
    sixty = " ".join(["the build fails in parse.ml again"] * 10)
    assert len(sixty.split()) == 60
    assert TOO_LONG not in reasons(sixty, DESCRIPTIVE)
    assert TOO_LONG in reasons(sixty + " now", DESCRIPTIVE)


def test_word_limits_are_configurable() -> None:
    assert reasons("fix the build", lazy_min_words=4) == {TOO_SHORT}
    assert reasons("fix the type error in parse.ml", lazy_max_words=5) == {TOO_LONG}
    assert reasons("fix", lazy_min_words=1) == set()


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="min <= max"):
        PromptLimits(lazy_min_words=5, lazy_max_words=4)
    with pytest.raises(ValueError, match="unsupported prompt language"):
        PromptLimits(language="ja")
    with pytest.raises(ValueError, match="style"):
        Candidate("fix it", "terse")


# ---------------------------------------------------------------------------
# Code and diffs


@pytest.mark.parametrize(
    "text",
    [
        "fix it:\n```\nlet parse s = s\n```",
        "change parse to this:\n    let parse s =\n      String.concat s",
        "let parse s = String.trim s",
        "def parse(s): return s",
        "use return s.strip();",
        "wrap it in if (ok) {",
        "map it with (a, b) => a + b",
        "use fun x -> x ^ s instead",
        "add a case:\n| [] -> empty",
        "const limit = 10 fixes it",
    ],
)
def test_code_is_a_code_block(text: str) -> None:
    assert CODE_BLOCK in reasons(text, DESCRIPTIVE, lazy_max_words=60)


@pytest.mark.parametrize(
    "text",
    [
        "fix describe() in parse.ml",
        "change parse from string list -> string",
        "why does parse() fail; fix it",
        "let me see why describe fails",  # a promise, but not code
        "the `parse` call in describe is broken",
    ],
)
def test_prose_mentioning_code_is_not_a_code_block(text: str) -> None:
    assert CODE_BLOCK not in reasons(text)


@pytest.mark.parametrize(
    "text",
    [
        "apply this: diff --git a/parse.ml b/parse.ml",
        "diff --git a/parse.ml b/parse.ml\nfix it",
        "fix it\n--- a/parse.ml\n+++ b/parse.ml",
        "do this\n@@ -1,2 +1,2 @@",
        "change it\n-old parse\n+new parse",
        "fix it:\n+    String.concat s",
    ],
)
def test_diff_lines_are_a_diff_fragment(text: str) -> None:
    assert DIFF_FRAGMENT in reasons(text, DESCRIPTIVE)


@pytest.mark.parametrize(
    "text",
    [
        "-Werror breaks the build now",
        "+1, fix the type error in parse.ml",
        "two things:\n- fix parse\n- fix describe",
        "the build broke -- fix parse.ml",
    ],
)
def test_flags_bullets_and_dashes_are_not_diff_fragments(text: str) -> None:
    assert DIFF_FRAGMENT not in reasons(text, DESCRIPTIVE)


# ---------------------------------------------------------------------------
# Leaking the solution


@pytest.mark.parametrize(
    "text",
    [
        "use String.concat in parse",
        "join the fields with concat",
        "add max_fields to parse.ml",
        "cap the fields at 4096",
        'fail with "header overflow" on long lines',
    ],
)
def test_naming_what_only_the_fix_holds_leaks(text: str) -> None:
    assert LEAKS_SOLUTION in reasons(text)


@pytest.mark.parametrize(
    "text",
    [
        "fix the type error in parse.ml",  # the file being fixed
        "parse should not return a string list",  # names from the error
        "stop using String.split_on_char in parse",  # a name from the removed line
        "fix the error on line 120",  # a number from the error
        "join with the separator",  # the fix's comment is prose, not a name
        "make parse return a string",  # common words and keywords
        "use concatenation in parse",  # not the identifier concat as a whole word
        "fail when the header overflows",  # not the fix's message as a whole
    ],
)
def test_naming_what_the_red_state_shows_does_not_leak(text: str) -> None:
    assert LEAKS_SOLUTION not in reasons(text)


def test_solution_tokens_are_what_only_the_fix_adds() -> None:
    assert solution_tokens(RED) == {
        "String.concat",
        "concat",
        "max_fields",
        "4096",
        "header overflow",
    }


def test_a_new_file_path_in_the_headers_is_visible_but_its_names_are_not() -> None:
    red = RedState(
        error="ModuleNotFoundError: No module named 'helpers'\n",
        files={"main.py": "import helpers\nprint(helpers.greet())\n"},
        fix_diff=(
            "diff --git a/helpers.py b/helpers.py\n"
            "new file mode 100644\n"
            "--- /dev/null\n"
            "+++ b/helpers.py\n"
            "@@ -0,0 +1,2 @@\n"
            "+def greet():\n"
            "+    return salutation_text()\n"
        ),
    )
    assert reasons("add the missing helpers.py", red=red) == set()
    assert reasons("make greet call salutation_text", red=red) == {LEAKS_SOLUTION}


def test_an_added_line_starting_with_plus_plus_is_code_not_a_header() -> None:
    red = RedState(
        error="main.c:3: error: 'count' undeclared\n",
        files={"main.c": "int main() {\n  count;\n}\n"},
        fix_diff=(
            "--- a/main.c\n+++ b/main.c\n@@ -1,3 +1,4 @@\n int main() {\n"
            "+  int count = 0;\n"
            "++++counter_total;\n"
            "   count;\n }\n"
        ),
    )
    assert reasons("declare count in main.c", red=red) == set()
    assert reasons("bump counter_total in main.c", red=red) == {LEAKS_SOLUTION}


def test_identifiers_leak_case_sensitively_and_as_whole_words() -> None:
    assert LEAKS_SOLUTION in reasons("set max_fields in parse")
    assert LEAKS_SOLUTION not in reasons("set max_fields_x in parse")


# ---------------------------------------------------------------------------
# Refusals and promises


@pytest.mark.parametrize(
    "text",
    [
        "Sorry, I can't help with that.",
        "As an AI language model I cannot write code",
        "I apologize for the confusion, fix parse",
        "Here is a prompt: fix parse.ml",
        "Sure, fix the type error in parse.ml",
        "fix parse.ml and let me know",
        "I’m unable to help with this request",
    ],
)
def test_assistant_voice_is_a_refusal(text: str) -> None:
    assert REFUSAL in reasons(text)


@pytest.mark.parametrize(
    "text",
    [
        "I can't get parse.ml to compile",
        "make sure describe returns a string",
        "here the type of parse is wrong",
        "I cannot see why parse fails",
    ],
)
def test_ordinary_requests_are_not_refusals(text: str) -> None:
    assert REFUSAL not in reasons(text)


@pytest.mark.parametrize(
    "text",
    [
        "I'll fix it tomorrow",
        "I’ll do the parse.ml fix",
        "will do the type error later",
        "let me fix parse.ml",
        "we will handle describe next week",
        "I'm going to fix parse",
    ],
)
def test_putting_it_off_is_a_promise(text: str) -> None:
    assert PROMISE in reasons(text)


@pytest.mark.parametrize(
    "text",
    [
        "needs OCaml 4.14 or later",
        "sort it later in the list",
        "describe will return a string",
        "fix the type error in parse.ml",
    ],
)
def test_ordinary_requests_are_not_promises(text: str) -> None:
    assert PROMISE not in reasons(text)


def test_a_candidate_keeps_every_reason_it_fails() -> None:
    assert reasons("Sorry, I'll do it tomorrow") == {REFUSAL, PROMISE}


# ---------------------------------------------------------------------------
# Language


@pytest.mark.parametrize(
    "text",
    [
        "corrige l'erreur de type dans parse.ml",
        "behebe den Fehler in parse.ml",
        "arregla el error de tipo en parse.ml",
        "correggi l'errore in parse.ml",
        "corrige o erro de tipo no parse.ml",
        "repareer de fout in parse.ml",
        "исправь ошибку типа в parse.ml",
        "修复 parse.ml 中的类型错误",
        "Übergabe prüfen für describe",
    ],
)
def test_other_languages_are_wrong(text: str) -> None:
    assert WRONG_LANGUAGE in reasons(text)


@pytest.mark.parametrize(
    "text",
    [
        "fix lireFichier in parse.ml",  # a French identifier in English
        "rename la_fonction to run",
        "fix the die() call in main.c",
        "de-duplicate the fields in parse",
        "parse.ml",  # no words at all: no evidence
        "fix the café menu",
    ],
)
def test_english_full_of_foreign_looking_names_is_not_wrong(text: str) -> None:
    assert WRONG_LANGUAGE not in reasons(text)


def test_the_expected_language_is_configurable() -> None:
    assert WRONG_LANGUAGE not in reasons("behebe den Fehler in parse.ml", language="de")
    assert WRONG_LANGUAGE in reasons("fix the type error in parse.ml", language="de")


# ---------------------------------------------------------------------------
# Duplicates


def test_duplicates_are_later_candidates_with_the_same_normalised_text() -> None:
    texts = [
        ("Fix the build", LAZY),
        ("fix   the build!", LAZY),
        ("fix the build in parse.ml", LAZY),
        ("FIX THE BUILD.", DESCRIPTIVE),
    ]
    checked = check_candidates([Candidate(t, s) for t, s in texts], RED)
    assert [DUPLICATE in c.reasons for c in checked] == [False, True, False, True]


def test_empty_candidates_are_not_duplicates_of_each_other() -> None:
    checked = check_candidates([Candidate("", LAZY), Candidate(" ", LAZY)], RED)
    assert [c.reasons for c in checked] == [(EMPTY,), (EMPTY,)]


# ---------------------------------------------------------------------------
# Choosing the prompt


def texts_of(checked: list[Checked]) -> list[str]:
    return [c.candidate.text for c in checked]


def test_check_candidates_keeps_order_and_count() -> None:
    candidates = [Candidate(t, LAZY) for t in ["fix", "fix the build", "", "fix the build"]]
    checked = check_candidates(candidates, RED)
    assert [c.candidate for c in checked] == candidates
    assert [c.ok for c in checked] == [False, True, False, False]
    assert check_candidates([], RED) == []


def choose(*candidates: tuple[str, str]) -> str | None:
    chosen = choose_prompt(check_candidates([Candidate(t, s) for t, s in candidates], RED))
    return chosen.candidate.text if chosen else None


def test_a_surviving_lazy_candidate_beats_a_descriptive_one() -> None:
    descriptive = "The build fails because parse returns a list; make it return a string."
    assert choose((descriptive, DESCRIPTIVE), ("fix the build", LAZY)) == "fix the build"


def test_a_natural_length_beats_an_odd_one() -> None:
    assert choose(("fix it", LAZY), ("fix the build again", LAZY)) == "fix the build again"


def test_naming_what_the_error_names_beats_not_naming_it() -> None:
    assert choose(("fix the build again", LAZY), ("fix the build in parse.ml", LAZY)) == (
        "fix the build in parse.ml"
    )


def test_the_models_order_breaks_ties() -> None:
    assert choose(("fix the build again", LAZY), ("repair the build now", LAZY)) == (
        "fix the build again"
    )


def test_failed_candidates_are_never_chosen() -> None:
    assert choose(("I'll fix parse.ml tomorrow", LAZY), ("fix the build", LAZY)) == (
        "fix the build"
    )


def test_the_best_descriptive_one_is_chosen_when_no_lazy_one_survives() -> None:
    descriptive = "Make parse in parse.ml return a string again so describe type checks."
    assert choose(("use String.concat", LAZY), (descriptive, DESCRIPTIVE)) == descriptive


def test_nothing_is_chosen_when_every_candidate_fails() -> None:
    assert choose(("Sorry, I can't help", LAZY), ("use String.concat", DESCRIPTIVE)) is None
    assert choose_prompt([]) is None


# ---------------------------------------------------------------------------
# Robustness


@given(
    st.lists(st.tuples(st.text(max_size=300), st.sampled_from([LAZY, DESCRIPTIVE])), max_size=8),
    st.text(max_size=300),
    st.text(max_size=300),
)
def test_any_text_gets_one_checked_per_candidate_in_order(
    texts: list[tuple[str, str]], error: str, diff: str
) -> None:
    candidates = [Candidate(text, style) for text, style in texts]
    red = RedState(error=error, files={"a.py": error + diff}, fix_diff=diff)
    checked = check_candidates(candidates, red)
    assert [c.candidate for c in checked] == candidates
    assert all(set(c.reasons) <= set(REASONS) for c in checked)
    chosen = choose_prompt(checked)
    assert chosen is None or chosen.ok
