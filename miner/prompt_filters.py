"""Prompt filters: keep only the requests a developer would plausibly have typed.

An LLM writes several candidate prompts for each episode, ``lazy`` (a few words:
``fix the type error in parse.ml``) and ``descriptive`` (a sentence or two).
:func:`check_candidates` runs every check on every candidate and records the
name of each that fails, so a rejected candidate keeps its reasons beside it in
the episodes table; :func:`choose_prompt` picks the one the episode is trained on.

    reason          the candidate ...
    empty           has no words
    too_short       has fewer words than its style's minimum (:class:`PromptLimits`)
    too_long        has more words than its style's maximum
    code_block      holds code: a fence, an indented block, or a line shaped like code
    diff_fragment   holds diff lines: headers, hunk headers, or +/- lines of code
    leaks_solution  names an identifier, number or string literal that only the fix holds
    refusal         speaks as an assistant: refuses, apologises, "here is", "as an AI"
    promise         puts the work off: "I'll", "tomorrow", "later", "let me fix"
    wrong_language  is not in the expected language (a word-list guess, see below)
    duplicate       normalises (case, punctuation, spaces) to an earlier candidate's text

Each check is a predicate in :data:`_CHECKS`, in the order of :data:`REASONS`;
``duplicate`` is the only one that looks at the other candidates.

**What a prompt may mention.** Everything the developer could see at the red
state: the error, the files (paths and contents), the fix's removed and context
lines, and the diff headers (the developer knows which files they edit).  The
fix's *added* lines introduce tokens (identifiers, dotted ones whole and in
parts; numbers; string literals whole; comments are prose and skipped); those
absent from all of the above are the solution (:func:`solution_tokens`, which
the describer also masks in what it shows the prompt writer).  A prompt naming
one, as a whole word and case-sensitively, leaks it.  Tokens under 3
characters, common English words and the keywords and built-in names of common
languages ("return", "string", "None") never count.

**Language guess.** Prompts are short and full of identifiers, which throws
general detectors off, so the guess is deliberately small: drop code-shaped
tokens (``_``, ``.``, ``/``, digits, camelCase, calls, backticked spans); if
letters of a non-Latin script outnumber Latin ones the prompt is wrong (every
supported language is written in Latin script); otherwise each supported
language scores one point per remaining word in its short list of very common
words, and the prompt is wrong when another language scores more than the
expected one.  For English, a word with a non-English accent (é, ü, ñ, ...)
also counts against it.  Ties and prompts with no listed word pass: it rejects
only on evidence.  Limits: a Latin-script language without a list (Swedish,
Polish, ...) passes unless accents give it away, and a mixed prompt goes to the
majority.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

LAZY = "lazy"
DESCRIPTIVE = "descriptive"
STYLES = (LAZY, DESCRIPTIVE)

EMPTY = "empty"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
CODE_BLOCK = "code_block"
DIFF_FRAGMENT = "diff_fragment"
LEAKS_SOLUTION = "leaks_solution"
REFUSAL = "refusal"
PROMISE = "promise"
WRONG_LANGUAGE = "wrong_language"
DUPLICATE = "duplicate"
REASONS = (
    EMPTY,
    TOO_SHORT,
    TOO_LONG,
    CODE_BLOCK,
    DIFF_FRAGMENT,
    LEAKS_SOLUTION,
    REFUSAL,
    PROMISE,
    WRONG_LANGUAGE,
    DUPLICATE,
)

# Word counts a person typically types, per style; choose_prompt prefers them.
_NATURAL_WORDS = {LAZY: (3, 10), DESCRIPTIVE: (8, 40)}
# Tokens shorter than this are too common to give a solution away.
_MIN_TOKEN_CHARS = 3


# ---------------------------------------------------------------------------
# Word lists.  Lower case; English words also match with a plural or past
# tense ending (see _in_list).


def _words(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``: a long list reads best as prose."""
    return frozenset(text.split())


_ENGLISH = _words(
    """
    a about above accept add added adds after again against all also always an and another
    any anymore anything are aren't arg args around as at away back bad be because been
    before being below better between both break breaks broke broken bug bugs build builds
    but by call called caller callers calls can can't cannot case change check ci class
    clean cleanup code compilation compile compiler compiles convert correct could crash
    crashes currently dead default delete did didn't do does doesn't doing don't done down
    each else empty error errors even every everything everywhere exception expect fail
    failed failing fails field fields file files first fix fixed fixes fixing for format
    from function functions get gets give go going got green handle has hasn't have having
    help here how i i'm if import imports in inside instead into is isn't issue it it's its
    join just keep last let like line lines lint list make makes many mark may me merge
    method methods mismatch missing module modules more most move must my name names need
    needs never new no not nothing now number of off old on once one only or other our out
    output over param params pass passes passing path per please pls plz print problem put
    raise read really red refactor remove rename replace rest restore return returned
    returns revert right run runs same see set should shouldn't show simplify since so some
    something sort split still stop string strings such support sure take test tests than
    that the their them then there these they thing this those through to too try two type
    types typo undefined under undo unused up update use used uses using value values
    variable variables via was wasn't way we were what when where which while whole why will
    with without won't work working works would write wrong yet you your
    """
)

# Keywords and built-in names of the languages developers here write most.
_KEYWORDS = _words(
    """
    and as assert async await break class continue def del elif else except finally
    for from global if import in is lambda nonlocal not or pass raise return try while
    with yield self cls none true false print len str int float bool dict list set
    tuple bytes object let rec fun function match type module struct sig end begin
    open then val mutable ref unit option some array string char failwith exception
    of when const var new this extends export default typeof instanceof null
    undefined void interface enum fn pub mut impl trait mod crate use loop where move
    unsafe dyn box vec result ok err i32 u32 i64 u64 usize isize f32 f64 func package
    map chan defer select switch range nil long short unsigned signed static union
    typedef sizeof include define public private protected final implements throws
    throw catch boolean
    """
)

# Words compilers and build tools write: naming them says nothing about the fix.
_COMPILER_WORDS = _words(
    """
    expected unexpected undeclared unbound defined traceback recent character
    characters column expression statement token syntax invalid indentation indent
    unindent attribute argument arguments positional keyword required given takes
    found expecting mismatched incompatible implicit declaration conversion warning
    note fatal failure exit status scope identifier reference referenced resolve
    unresolved symbol symbols instance operand operator constructor record label
    immutable borrow borrowed moved lifetime bound satisfied implemented pattern
    exhaustive signature named here error
    """
)

_COMMON = _ENGLISH | _KEYWORDS | _COMPILER_WORDS

# Very common words of other languages, developer verbs and nouns among them.
# A word may sit in several lists (English "in" is German, Italian and Dutch too).
_FOREIGN_WORDS: dict[str, frozenset[str]] = {
    "de": _words(
        """
        der die das den dem des ein eine einen einem und ist nicht mit für von zu auf
        bitte behebe beheben korrigiere repariere füge hinzu entferne lösche fehler
        funktion datei wieder warum wird werden kann soll noch aber oder auch ich du wir
        mach mache machen gib zurück jetzt schon im vom zum zur sich nach über bei wenn
        dass als wie hier dieser diese dieses baut kompiliert rückgabe gibt nur alle
        neue neuen in es
        """
    ),
    "fr": _words(
        """
        le la les un une des du de et est dans pour pas ne que qui avec sur ce cette ces
        il elle je tu nous vous corrige corriger répare réparer ajoute ajouter supprime
        supprimer enlève erreur fonction fichier encore pourquoi fait faire fais au aux
        plus mais ou où renvoie renvoyer retourne retourner chaîne compile compilation
        l d qu j s'il plaît merci à en y
        """
    ),
    "es": _words(
        """
        el la los las un una unos y es en de del al por para con que se lo su corrige
        corregir arregla arreglar añade agrega agregar elimina quita error función funcion
        archivo otra vez porque qué hace haz devuelve devolver cadena compila ahora este
        esta esto pero cuando como donde mal
        """
    ),
    "it": _words(
        """
        il lo la gli le un una uno e è di del della dei in nel nella per con che non si
        correggi correggere sistema aggiungi rimuovi elimina errore funzione ancora
        perché fai fa restituisce ritorna stringa compila adesso ora questo questa ma
        quando dove
        """
    ),
    "pt": _words(
        """
        o os as um uma e é de do da dos das em na nos nas por para com que não se corrige
        corrigir conserta consertar arruma adiciona adicionar remover erro função funcao
        arquivo ficheiro novamente porque faz fazer retorna retornar devolve compila
        agora este esta isso isto mas quando como onde
        """
    ),
    "nl": _words(
        """
        de het een en is van in op te met voor niet dat die dit deze er maar om ook als
        bij naar zijn wordt worden kan moet repareer herstel voeg toe verwijder fout
        functie bestand weer opnieuw waarom maak geeft terug tekenreeks compileert nu
        """
    ),
}
SUPPORTED_LANGUAGES = frozenset({"en", *_FOREIGN_WORDS})
# compilers' words are English too, and people quote them
_LANGUAGE_WORDS: dict[str, frozenset[str]] = {"en": _ENGLISH | _COMPILER_WORDS, **_FOREIGN_WORDS}
# Letters English only has in borrowed words (café, naïve): evidence of another language.
_ACCENTED = frozenset("àâäáãåçéèêëíìîïñóòôöõúùûüßœæø")


def _is_english(word: str) -> bool:
    return _in_list(word, _LANGUAGE_WORDS["en"])


def _is_common(word: str) -> bool:
    """A common English word, a compiler's word, or a keyword: never a giveaway."""
    return _in_list(word, _COMMON)


def _in_list(word: str, words: frozenset[str]) -> bool:
    lower = word.casefold()
    if lower in words:
        return True
    for ending in ("s", "es", "ed", "d", "ing"):
        if lower.endswith(ending) and len(lower) > len(ending) + 2:
            stem = lower[: -len(ending)]
            if stem in words or stem + "e" in words:
                return True
    return False


# ---------------------------------------------------------------------------
# Value objects


@dataclass(frozen=True)
class PromptLimits:
    """Word limits per style (inclusive) and the expected language of the prompts."""

    lazy_min_words: int = 2
    lazy_max_words: int = 15
    descriptive_min_words: int = 5
    descriptive_max_words: int = 60
    language: str = "en"  # expected language of the prompts

    def __post_init__(self) -> None:
        for low, high in (
            (self.lazy_min_words, self.lazy_max_words),
            (self.descriptive_min_words, self.descriptive_max_words),
        ):
            if not 0 <= low <= high:
                raise ValueError(f"word limits must satisfy 0 <= min <= max, got {low}..{high}")
        if self.language not in SUPPORTED_LANGUAGES:
            supported = ", ".join(sorted(SUPPORTED_LANGUAGES))
            raise ValueError(f"unsupported prompt language {self.language!r} ({supported})")

    def word_range(self, style: str) -> tuple[int, int]:
        if style == LAZY:
            return self.lazy_min_words, self.lazy_max_words
        return self.descriptive_min_words, self.descriptive_max_words


@dataclass(frozen=True)
class Candidate:
    text: str
    style: str  # LAZY or DESCRIPTIVE

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"prompt style must be one of {STYLES}, got {self.style!r}")


@dataclass(frozen=True)
class Checked:
    candidate: Candidate
    reasons: tuple[str, ...]  # empty = survives
    # names a file or identifier the red build's error names: choose_prompt prefers it
    mentions_error: bool = False

    @property
    def ok(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class RedState:
    """What the developer could see at the red state: all a prompt may mention."""

    error: str  # build output (the error)
    files: Mapping[str, str]  # path -> content of the files at the red state (context)
    fix_diff: str  # the diff red -> green (git unified diff, possibly several files)


# ---------------------------------------------------------------------------
# Tokens

# identifiers, dotted (String.concat, os.path.join, parse.ml) or not
_IDENTIFIER = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*")
_NUMBER = re.compile(r"(?<![\w.])(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d+)*)(?!\w|\.\d)")
# a quote glued to a letter is an apostrophe (don't), or an OCaml type variable ('a)
_STRING_LITERAL = re.compile(r""""((?:[^"\\\n]|\\.)*)"|(?<!\w)'((?:[^'\\\n]|\\.)*)'(?!\w)""")
# a comment runs to the end of the line; "#" and "--" only with a space, so that
# #include, #[derive] and x-- stay code
_LINE_COMMENT = re.compile(
    r"(?:^|(?<=\s))(?://|#(?:\s|$)|--\s|\(\*(?:\s|$)|/\*).*$|^\s*\*(?:\s|/|$).*$"
)


def _identifiers(text: str) -> set[str]:
    """Every identifier in ``text``, dotted names whole and in parts."""
    names: set[str] = set()
    for dotted in _IDENTIFIER.findall(text):
        names.add(dotted)
        if "." in dotted:
            names.update(dotted.split("."))
    return names


def _numbers(text: str) -> set[str]:
    return set(_NUMBER.findall(text))


def _split_fix(fix_diff: str) -> tuple[list[str], list[str]]:
    """The fix's added lines, and the lines the developer saw (removed, context, headers).

    Inside a hunk its header's line counts decide what a line is, so an added
    ``++i;`` is not taken for a ``+++`` header; outside one (or in a diff
    without hunk headers) a line starting with ``+`` but not ``+++`` is added.
    """
    added: list[str] = []
    seen: list[str] = []
    old_left = new_left = 0
    for line in fix_diff.splitlines():
        if old_left > 0 or new_left > 0:
            tag, body = line[:1], line[1:]
            if tag == "+":
                added.append(body)
                new_left -= 1
                continue
            if tag == "-":
                seen.append(body)
                old_left -= 1
                continue
            if tag in (" ", ""):
                seen.append(body)
                old_left -= 1
                new_left -= 1
                continue
            if tag == "\\":  # \ No newline at end of file
                continue
            old_left = new_left = 0  # the counts were wrong: read on as headers
        hunk = _HUNK_HEADER.match(line)
        if hunk:
            old_left = int(hunk["old"]) if hunk["old"] is not None else 1
            new_left = int(hunk["new"]) if hunk["new"] is not None else 1
            seen.append(hunk["context"])
        elif line.startswith("+") and not line.startswith("+++"):
            added.append(line[1:])
        else:
            seen.append(line)
    return added, seen


_HUNK_HEADER = re.compile(r"@@ -\d+(?:,(?P<old>\d+))? \+\d+(?:,(?P<new>\d+))? @@(?P<context>.*)")


@dataclass(frozen=True)
class _FixTokens:
    identifiers: frozenset[str]
    numbers: frozenset[str]
    literals: frozenset[str]  # string literals' contents, whole


def _added_tokens(added_lines: Iterable[str]) -> _FixTokens:
    """The identifiers, numbers and string literals of the fix's added code.

    Comments are natural language about the fix, not names from it, so they are
    dropped; so are the words inside string literals (a message's words), while
    the literal itself counts as a whole.
    """
    identifiers: set[str] = set()
    numbers: set[str] = set()
    literals: set[str] = set()
    for line in added_lines:
        for match in _STRING_LITERAL.finditer(line):
            literals.add((match[1] if match[1] is not None else match[2]).strip())
        code = _LINE_COMMENT.sub("", _STRING_LITERAL.sub(" ", line))
        identifiers |= _identifiers(code)
        numbers |= _numbers(code)
    return _FixTokens(frozenset(identifiers), frozenset(numbers), frozenset(literals))


def _is_giveaway_word(token: str) -> bool:
    return len(token) >= _MIN_TOKEN_CHARS and not _is_common(token)


def _is_giveaway_literal(literal: str) -> bool:
    words = _IDENTIFIER.findall(literal) + _NUMBER.findall(literal)
    return len(literal) >= _MIN_TOKEN_CHARS and any(_is_giveaway_word(word) for word in words)


def _fix_only_tokens(red: RedState) -> _FixTokens:
    """The tokens the fix adds that the red state nowhere shows, giveaways only."""
    added, seen_in_diff = _split_fix(red.fix_diff)
    fix = _added_tokens(added)
    seen_texts = [red.error, *red.files.keys(), *red.files.values(), *seen_in_diff]
    seen_identifiers: set[str] = set()
    seen_numbers: set[str] = set()
    for text in seen_texts:
        seen_identifiers |= _identifiers(text)
        seen_numbers |= _numbers(text)
    return _FixTokens(
        identifiers=frozenset(
            name for name in fix.identifiers - seen_identifiers if _is_giveaway_word(name)
        ),
        numbers=frozenset(
            number for number in fix.numbers - seen_numbers if len(number) >= _MIN_TOKEN_CHARS
        ),
        literals=frozenset(
            literal
            for literal in fix.literals
            if _is_giveaway_literal(literal) and not any(literal in text for text in seen_texts)
        ),
    )


def solution_tokens(red: RedState) -> frozenset[str]:
    """Every token only the fix reveals: identifiers (dotted ones whole and in parts),
    numbers and string literals' contents.  A prompt naming one fails ``leaks_solution``;
    a text shown to the prompt writer can mask them.
    """
    fix_only = _fix_only_tokens(red)
    return fix_only.identifiers | fix_only.numbers | fix_only.literals


def _literal_pattern(literal: str) -> re.Pattern[str]:
    """Matches ``literal`` exactly, as a whole word where it starts or ends with one."""
    before = r"(?<!\w)" if re.match(r"\w", literal) else ""
    after = r"(?!\w)" if re.search(r"\w$", literal) else ""
    return re.compile(before + re.escape(literal) + after)


@dataclass(frozen=True)
class _EpisodeFacts:
    """What the checks compare a candidate with, computed once per episode."""

    fix_only_identifiers: frozenset[str]
    fix_only_numbers: frozenset[str]
    fix_only_literals: tuple[re.Pattern[str], ...]
    error_subjects: frozenset[str]  # casefolded names from the error

    @classmethod
    def of(cls, red: RedState) -> _EpisodeFacts:
        fix_only = _fix_only_tokens(red)
        return cls(
            fix_only_identifiers=fix_only.identifiers,
            fix_only_numbers=fix_only.numbers,
            fix_only_literals=tuple(_literal_pattern(lit) for lit in sorted(fix_only.literals)),
            error_subjects=frozenset(
                name.casefold() for name in _identifiers(red.error) if _is_giveaway_word(name)
            ),
        )


# ---------------------------------------------------------------------------
# Checks, one per reason

_FENCE = re.compile(r"```|~~~")
# a line of code after the first: indented by four spaces or a tab
_INDENTED_LINE = re.compile(r"\n(?: {4,}|\t)\S")
_CODE_LINE = re.compile(
    r"[;{]\s*$"  # a statement or a block opener ends the line
    r"|\bdef\s+\w+\s*\("  # Python definition
    r"|^\s*(?:pub\s+)?(?:async\s+)?(?:fn|func|function)\s+\w+\s*[(<]"
    r"|^\s*class\s+\w+\s*(?:\([^()\n]*\))?\s*:\s*$"
    r"|\blet\s+(?:rec\s+|mut\s+)?[a-z_][\w']*(?:\s+[\w'()]+){0,6}\s*(?::[^=\n]*)?=(?![=>])"
    r"|\b(?:const|var)\s+[A-Za-z_$][\w$]*\s*(?::[^=\n]*)?=(?![=>])"
    # an arrow after parameters: (x: int) -> str, (a, b) => a + b; a bare "int -> string" is prose
    r"|\((?=[^()\n]*\w)[^()\n]*\)\s*(?:=>|->)"
    r"|=>\s*\{"
    r"|\bfun\s+[\w'\s(),:]*->"
    r"|^\s*\|\s*[\w'(\[][^|\n]*->"  # OCaml match arm
    r"|^\s*#\s*(?:include|define)\b"
    r"|^\s*from\s+[\w.]+\s+import\s+\w",
    re.MULTILINE,
)
_DIFF_HEADER = re.compile(
    r"\bdiff --git \S|^(?:diff -r |index [0-9a-f]{7,}\.\.[0-9a-f]{7,}|(?:---|\+\+\+) \S|@@ )",
    re.MULTILINE,
)
# a line starting with a single + or -: "--" and "++" are prose or operators
_CHANGE_LINE = re.compile(r"^([+-])(?![+-])(.*)$", re.MULTILINE)
# a changed line of indented code: "+    return x", where a bullet has one space
_INDENTED_BODY = re.compile(r"(?: {2,}|\t)\S")
_REFUSAL = re.compile(
    r"\bas an ai\b|\blanguage model\b"
    r"|\bi(?: cannot| can ?not| can't|'m unable to| am unable to|'m not able to| am not able to)"
    r" (?:help|assist|comply|provide|fulfil|fulfill|complete|do that|do this|answer|write"
    r"|generate|create)\b"
    r"|\bsorry\b|\bapologi[sz]e|\bapolog(?:y|ies)\b"
    r"|^\s*(?:sure|certainly|of course|absolutely)\s*[,!.:]"
    r"|^\s*here(?:'s| is| are)\b"
    r"|\blet me know\b|\bhope (?:this|that|it) helps\b|\bhappy to help\b|\bi'd be happy\b"
)
_PROMISE = re.compile(
    r"\b(?:i|we)(?:'ll| will| shall)\b|\b(?:i'm|i am|we're|we are) going to\b"
    r"|\btomorrow\b|\btonight\b|\bnext (?:week|time|sprint|month)\b"
    # "3.11 or later", "later than", "later in the list", "later versions" are not put off
    r"|(?<!\bor )\blater\b(?! than\b| in\b| versions?\b| releases?\b)"
    r"|\bin a (?:bit|minute|moment|sec|second|while)\b|\bwhen i get (?:a chance|time|back)\b"
    r"|^\s*will do\b|\blet me (?:fix|look|check|handle|try|take|get|do|see|think|work|sort)\b"
)
# apostrophes and quotes as typed on phones and by word processors
_TYPOGRAPHIC = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'})
_EDGE_PUNCTUATION = ".,;:!?\"'«»¿¡"
_CODE_CHARACTERS = re.compile(r"[_./\\=<>{}\[\]#@$%^&*|~`+\d]|[a-z][A-Z]|\w\(")
# a hyphenated word is one word: "de-duplicate" is not Dutch
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
_BACKTICKED = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    return text.translate(_TYPOGRAPHIC).casefold()


def _is_empty(candidate: Candidate, facts: _EpisodeFacts, limits: PromptLimits) -> bool:
    return not candidate.text.split()


def _is_too_short(candidate: Candidate, facts: _EpisodeFacts, limits: PromptLimits) -> bool:
    words = len(candidate.text.split())
    return 0 < words < limits.word_range(candidate.style)[0]


def _is_too_long(candidate: Candidate, facts: _EpisodeFacts, limits: PromptLimits) -> bool:
    return len(candidate.text.split()) > limits.word_range(candidate.style)[1]


def _has_code_block(candidate: Candidate, facts: _EpisodeFacts, limits: PromptLimits) -> bool:
    text = candidate.text
    return bool(_FENCE.search(text) or _INDENTED_LINE.search(text) or _CODE_LINE.search(text))


def _has_diff_fragment(candidate: Candidate, facts: _EpisodeFacts, limits: PromptLimits) -> bool:
    """Diff headers, or +/- lines that cannot be a bullet or a flag (``-Werror``).

    Change lines count when both signs occur, or when a line's body is indented
    or shaped like code, as a diff of code is.
    """
    text = candidate.text
    if _DIFF_HEADER.search(text):
        return True
    changes = _CHANGE_LINE.findall(text)
    signs = {sign for sign, _ in changes}
    return signs == {"+", "-"} or any(
        _INDENTED_BODY.match(body) or _CODE_LINE.search(body) for _, body in changes
    )


def _leaks_solution(candidate: Candidate, facts: _EpisodeFacts, limits: PromptLimits) -> bool:
    text = candidate.text
    return bool(
        _identifiers(text) & facts.fix_only_identifiers
        or _numbers(text) & facts.fix_only_numbers
        or any(literal.search(text) for literal in facts.fix_only_literals)
    )


def _is_refusal(candidate: Candidate, facts: _EpisodeFacts, limits: PromptLimits) -> bool:
    return bool(_REFUSAL.search(_prose(candidate.text)))


def _is_promise(candidate: Candidate, facts: _EpisodeFacts, limits: PromptLimits) -> bool:
    return bool(_PROMISE.search(_prose(candidate.text)))


def _prose_words(text: str) -> list[str]:
    """The words of ``text`` once code-shaped tokens are gone, lower-cased."""
    words: list[str] = []
    for token in _BACKTICKED.sub(" ", text.translate(_TYPOGRAPHIC)).split():
        token = token.strip(_EDGE_PUNCTUATION)
        if _CODE_CHARACTERS.search(token):
            continue
        # lower(), not casefold(): ß must stay ß to count as a foreign letter
        words.extend(_WORD.findall(token.strip("()").lower()))
    return words


def _is_latin(letter: str) -> bool:
    return unicodedata.name(letter, "").startswith("LATIN")


def _listed(word: str, language: str) -> bool:
    if language == "en":
        return _is_english(word)  # with its plural and past-tense forms
    return word in _LANGUAGE_WORDS[language]


def _is_wrong_language(candidate: Candidate, facts: _EpisodeFacts, limits: PromptLimits) -> bool:
    words = _prose_words(candidate.text)
    letters = [letter for word in words for letter in word if letter.isalpha()]
    latin = sum(1 for letter in letters if _is_latin(letter))
    if len(letters) - latin > latin:
        return True
    scores = dict.fromkeys(_LANGUAGE_WORDS, 0)
    for word in words:
        # an elided article counts by its parts (l'erreur, dell'errore), a listed word whole
        whole = any(word in listed for listed in _LANGUAGE_WORDS.values())
        for part in [word] if whole else word.split("'"):
            for language in scores:
                scores[language] += _listed(part, language)
    expected = scores.pop(limits.language)
    other = max(scores.values())
    if limits.language == "en":
        other += sum(1 for word in words if _ACCENTED.intersection(word))
    return other > expected


_Check = Callable[[Candidate, _EpisodeFacts, PromptLimits], bool]
# every reason but duplicate, in the order of REASONS
_CHECKS: tuple[tuple[str, _Check], ...] = (
    (EMPTY, _is_empty),
    (TOO_SHORT, _is_too_short),
    (TOO_LONG, _is_too_long),
    (CODE_BLOCK, _has_code_block),
    (DIFF_FRAGMENT, _has_diff_fragment),
    (LEAKS_SOLUTION, _leaks_solution),
    (REFUSAL, _is_refusal),
    (PROMISE, _is_promise),
    (WRONG_LANGUAGE, _is_wrong_language),
)


def normalised(text: str) -> str:
    """``text`` as duplicates compare it: case, punctuation and spacing ignored."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]|_", " ", folded).split())


def _mentions_error(text: str, facts: _EpisodeFacts) -> bool:
    return any(name.casefold() in facts.error_subjects for name in _identifiers(text))


# ---------------------------------------------------------------------------
# Public entry points


def check_candidates(
    candidates: Sequence[Candidate], red: RedState, limits: PromptLimits = PromptLimits()
) -> list[Checked]:
    """One :class:`Checked` per candidate, in order, each with every reason it fails."""
    facts = _EpisodeFacts.of(red)
    seen: set[str] = set()
    checked: list[Checked] = []
    for candidate in candidates:
        reasons = [reason for reason, fails in _CHECKS if fails(candidate, facts, limits)]
        key = normalised(candidate.text)
        # an empty key is already rejected as empty or meaningless: not a copy of anything
        if key and key in seen:
            reasons.append(DUPLICATE)
        seen.add(key)
        checked.append(Checked(candidate, tuple(reasons), _mentions_error(candidate.text, facts)))
    return checked


def choose_prompt(checked: Sequence[Checked]) -> Checked | None:
    """The surviving candidate to train on, or ``None`` when every candidate failed.

    Ranking, each rule breaking the ties of the one before:

    1. a ``lazy`` candidate before a ``descriptive`` one (people type few words);
    2. a natural length (lazy 3-10 words, descriptive 8-40) before any other;
    3. one that names something the error names (a file, an identifier) before
       one that does not (:attr:`Checked.mentions_error`);
    4. the model's order.
    """
    survivors = [(index, item) for index, item in enumerate(checked) if item.ok]
    if not survivors:
        return None

    def rank(entry: tuple[int, Checked]) -> tuple[int, int, int, int]:
        index, item = entry
        low, high = _NATURAL_WORDS[item.candidate.style]
        words = len(item.candidate.text.split())
        return (
            STYLES.index(item.candidate.style),
            0 if low <= words <= high else 1,
            0 if item.mentions_error else 1,
            index,
        )

    return min(survivors, key=rank)[1]
