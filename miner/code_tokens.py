"""Source code as a stream of tokens, for comparisons that ignore layout.

One rough lexer serves every language the miner meets: a token is a string
literal (``"..."``, ``'...'``, ```...```, on one line, escapes honoured), a
number, a word, or any other single non-space character.  Whitespace separates
tokens and is dropped, so two texts that differ only in spacing, indentation or
line breaks give the same tokens.  It is not a parser and need not be: the two
users compare a text with another text of the same language.

- :func:`layout_free` is what the ``formatting`` filter compares: the tokens
  with quote style made uniform (``'a'`` and ``"a"`` are one token) and trailing
  commas before a closing bracket dropped, the changes black, prettier,
  rustfmt or gofmt make without changing the program.
- :func:`masked` is what near-duplicate grouping compares
  (:mod:`miner.hygiene`): identifiers become ``<id>``, string literals
  ``<str>`` and numbers ``<n>``, while the keywords of common languages stay,
  so ``return total + 1`` and ``return count + 2`` read the same but
  ``return x`` and ``yield x`` do not.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r""""(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\\n])*`"""
    r"|\.?\d[\w.]*|[^\W\d]\w*|\S"
)
_CLOSING = frozenset({")", "]", "}"})

# Keywords of Python, C/C++, Rust, Go, Java/Kotlin, JS/TS and OCaml: the shape of
# a line is in them, so masking them would make unrelated fixes look alike.
_KEYWORDS_TEXT = """
and as assert async await break case catch class const continue def default del
do elif else enum except export extends false final finally fn for from func function
fun go goto if impl import in include interface is lambda let loop match mod module
mut namespace new nil none not null of open or override package pass private protected
pub public raise return self static struct super switch template then this throw
throws trait true try type typedef typeof union unsafe use var val virtual void
when where while with yield begin end rec sig functor mutable int char bool float
double long short unsigned signed auto None True False
"""
KEYWORDS = frozenset(_KEYWORDS_TEXT.split())


def tokens(text: str) -> list[str]:
    """The tokens of ``text``, whitespace dropped."""
    return _TOKEN.findall(text)


def _same_quotes(token: str) -> str:
    if token[0] not in "'\"" or len(token) < 2:
        return token
    # 'it\'s' and "it's" are one string; the lone quote of a triple-quote edge too
    body = token[1:-1].replace("\\'", "'").replace('\\"', '"')
    return '"' + body + '"'


def layout_free(text: str) -> list[str]:
    """The tokens of ``text`` with quote style and trailing commas made irrelevant."""
    result: list[str] = []
    for token in tokens(text):
        if token in _CLOSING and result and result[-1] == ",":
            result.pop()
        result.append('"' if token == "'" else _same_quotes(token))
    return result


def masked(text: str) -> list[str]:
    """The tokens of ``text`` with identifiers and literals replaced by placeholders."""
    result = []
    for token in tokens(text):
        first = token[0]
        if first in "'\"`" and len(token) > 1:
            result.append("<str>")
        elif first.isdigit() or (first == "." and len(token) > 1):
            result.append("<n>")
        elif first.isalpha() or first == "_":
            result.append(token if token in KEYWORDS else "<id>")
        else:
            result.append(token)
    return result
