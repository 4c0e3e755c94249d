"""Secret redaction: every secret span in a text is replaced by ``[REDACTED:kind]``.

It runs on whole changed files on the agent's tick, so it is built for speed::

    data ──lower()──> prefilter: nine passes ──> hits (keyword start, families)
                        (each pass is one regex that starts with a literal that is
                         rare in code, "k" "w" "z" "J" "x" "g" "A" "secret" "://",
                         which the engine skips to quickly; lookarounds then check
                         the rest: "k" finds token, api_key, sk_live_, PRIVATE KEY,
                         each only where what its family needs can follow)
    hits ──> an anchored family tries its pattern at each hit (one match call);
             the others search the lines around their hits
         ──> findings ──> drop those on an existing marker, unite overlapping ones
         ──> each span replaced by its marker (a span of several lines keeps its
             line breaks, so a diff keeps its shape and line numbers stay right)

``prefilter=False`` runs the same patterns over the whole input: the baseline of
``bench/bench_redact.py`` and a cross-check in the tests (same findings).

Time is linear: patterns start at a token boundary (a negative lookbehind), their
repetitions are possessive or bounded, a key's END line is found by one search
that moves forward, and keywords inside an over-long value are not tried again.

What is *not* taken for a secret (documented choices): empty values, ``None`` /
``null`` / booleans, references (``$VAR``, ``${VAR}``, ``{{ var }}``, ``%(x)s``,
``<placeholder>``, calls and variables in code such as ``getpass()`` or
``os.environ[...]``), and well-known placeholders (``changeme``, ``xxx``, ``***``,
``password``, ``your_token``, ...): they are public knowledge, and keeping them
keeps code intact.  An unquoted identifier after ``password =`` is a variable in
code, but a value in ``.env`` / shell / YAML style (``DB_PASSWORD=hunter2``,
``password: hunter2``), so which one applies is decided by the surrounding syntax.
A multi-line YAML block scalar after a secret key (``password: |``) is not
followed onto its next lines.

The functions never raise: an internal failure returns ``FAILED_MARKER`` in
place of the whole input (fail closed: nothing unscanned leaves the keyboard).
"""

from __future__ import annotations

import binascii
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

__all__ = [
    "FAILED_MARKER",
    "KINDS",
    "REDACTED_TEMPLATE",
    "Finding",
    "contains_secret",
    "find_secrets",
    "redact_bytes",
    "redact_text",
]

REDACTED_TEMPLATE = "[REDACTED:{kind}]"
FAILED_KIND = "unscanned"
FAILED_MARKER = REDACTED_TEMPLATE.format(kind=FAILED_KIND)

# kind -> priority: when spans overlap they become one, named after the most specific
KINDS: dict[str, int] = {
    "private-key": 100,
    "aws-access-key": 90,
    "aws-secret-key": 90,
    "gcp-service-account": 90,
    "azure-storage-key": 90,
    "age-secret-key": 90,
    "github-token": 80,
    "gitlab-token": 80,
    "slack-token": 80,
    "slack-webhook": 80,
    "stripe-key": 80,
    "google-api-key": 80,
    "openai-key": 80,
    "anthropic-key": 80,
    "jwt": 70,
    "authorization-header": 50,
    "url-password": 50,
    "password-assignment": 40,
    "secret-assignment": 40,
    "high-entropy": 30,
}

Region = tuple[int, int]

LINE_WINDOW_BEFORE = 1024  # on a very long line, the region around a hit
LINE_WINDOW_AFTER = 8192
KEY_BLOCK_MAX = 65536  # a private key block (8192-bit RSA is ~6.5 KB)


class Finding(NamedTuple):
    """One secret: ``data[start:end]`` is replaced by the marker of ``kind``."""

    start: int
    end: int
    kind: str


# scan(data, regions, anchored): anchored, a pattern is tried only at each region's start
Scanner = Callable[[bytes, Sequence[Region], bool], Iterator[Finding]]


def _matches(
    pattern: re.Pattern[bytes], data: bytes, regions: Sequence[Region], anchored: bool
) -> Iterator[re.Match[bytes]]:
    """The pattern's matches at each region's start (anchored), or anywhere in them."""
    for start, end in regions:
        if anchored:
            m = pattern.match(data, start, end)
            if m is not None:
                yield m
        else:
            yield from pattern.finditer(data, start, end)


# ---------------------------------------------------------------- value checks

_PLACEHOLDER_RE = re.compile(
    rb"(?i)(?:none|null|nil|undefined|true|false|changeme|change[_-]?me|changeit|"
    rb"x{3,}|\*+|\.+|-+|_+|#+|0+|#[0-9a-fA-F]{3,8}|"
    rb"password|passwd|passw0rd|pass|pwd|secret|token|apikey|api[_-]key|"
    rb"dummy|placeholder|redacted|example|sample|test|"
    rb"(?:your|example|fake|dummy|sample)[_. -]\S*|my[_-](?:password|secret|token|api[_-]?key)|"
    rb"<[^>]*>|\{\{.*\}\}|\{[A-Za-z0-9_.]*\}|%\(\w+\)[sdr]|%[sdr]|"
    rb"\[REDACTED:.*)"
)
_REFERENCE_RE = re.compile(rb"\$[A-Za-z_{(]|%[A-Za-z_]+%|\{\{|#\{")
_IDENTIFIER_RE = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER_RE = re.compile(rb"[-+]?[0-9][0-9_.]*")
_TYPE_NAMES = frozenset(
    b"str bytes int bool float string String number boolean any Any object dict list "
    b"Optional SecretStr SecretBytes Secret Password Token None".split()
)
# words and numbers between separators: get_api_token_value2, config.v2.key
_WORDLIKE_RE = re.compile(
    rb"[._/:~+=-]*+(?:(?:[A-Za-z]++|[0-9]++)[._/:~+=-]++)*+(?:[A-Za-z]++|[0-9]++)?+"
)
_HEX_RE = re.compile(rb"[0-9a-fA-F]+")


_FORMAT_ONLY_RE = re.compile(rb"(?:%[-+ #0-9.]*[sdrxf]|\{[A-Za-z0-9_.!:]*\}|[ :@/._-])+")
MIN_VALUE = 3  # shorter values are not taken for secrets


def _is_placeholder(value: bytes) -> bool:
    value = value.strip()
    return (
        len(value) < MIN_VALUE
        or _PLACEHOLDER_RE.fullmatch(value) is not None
        or _REFERENCE_RE.match(value) is not None
        or _FORMAT_ONLY_RE.fullmatch(value) is not None
    )


def _entropy(value: bytes) -> float:
    """Shannon entropy in bits per byte."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _is_wordlike(value: bytes) -> bool:
    """An identifier made of words (``get_api_token_value2``), not a random string."""
    return _WORDLIKE_RE.fullmatch(value) is not None


def _high_entropy(value: bytes) -> bool:
    """A random-looking token: long, letters and digits, above the entropy bar."""
    value = value.strip(b"=.")
    if len(value) < 20 or _is_wordlike(value):
        return False
    if not any(48 <= c <= 57 for c in value) or not any(c > 64 for c in value):
        return False
    threshold = 3.0 if _HEX_RE.fullmatch(value) else 3.5
    return _entropy(value) >= threshold


def _has_digit_upper_lower(value: bytes) -> bool:
    return (
        any(48 <= c <= 57 for c in value)
        and any(65 <= c <= 90 for c in value)
        and any(97 <= c <= 122 for c in value)
    )


_EOL_RE = re.compile(rb"[ \t\r]*+(?:(?:#|//|;)[^\n]{0,256}+)?(?:\n|\Z)")


def _at_eol(data: bytes, pos: int, limit: int) -> bool:
    """Only blanks or a (short) comment follow ``pos`` on its line."""
    return _EOL_RE.match(data, pos, limit) is not None


# ---------------------------------------------------------------- simple token families


def _regex_scanner(
    pattern: bytes,
    kind: str | Callable[[re.Match[bytes]], str | None],
    group: int | str = 0,
) -> Scanner:
    """Every match in the regions is a finding (``kind`` may be a check returning None)."""
    compiled = re.compile(pattern)

    def scan(data: bytes, regions: Sequence[Region], anchored: bool) -> Iterator[Finding]:
        for m in _matches(compiled, data, regions, anchored):
            if _inside_marker(data, m.start()):
                continue
            name = kind if isinstance(kind, str) else kind(m)
            if name is not None:
                s, e = m.span(group)
                yield Finding(s, e, name)

    return scan


def _openai_kind(m: re.Match[bytes]) -> str | None:
    if not _has_digit_upper_lower(m[0][3:]):
        return None
    return "anthropic-key" if m[0].startswith(b"sk-ant-") else "openai-key"


_GITLAB_PREFIXES = frozenset(
    b"glpat gldt glptt glrt glrtr glcbt glft glimt glagent gloas glsoat glffct glwt glcsat".split()
)


def _gitlab_kind(m: re.Match[bytes]) -> str | None:
    prefix = m["p"].rstrip(b"-")
    if prefix in _GITLAB_PREFIXES or prefix == b"GR1348941" or _has_digit_upper_lower(m["b"]):
        return "gitlab-token"
    return None


def _slack_kind(m: re.Match[bytes]) -> str | None:
    return "slack-token" if any(48 <= c <= 57 for c in m[0][5:]) else None


_AWS_ID = _regex_scanner(
    rb"(?<![A-Za-z0-9\]])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?![A-Za-z0-9]|\[REDACTED:)",
    "aws-access-key",
)
_AWS_SECRET = _regex_scanner(
    rb"(?i:aws)[A-Za-z0-9_.-]{0,32}?(?i:secret|key)[A-Za-z0-9_.-]{0,32}?[\"'`\]]{0,2}"
    rb"[ \t]*(?::=|=>|[:=,]|[ \t])[ \t]*[\"'`]?"
    rb"(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=]|\[REDACTED:)",
    "aws-secret-key",
    "v",
)
_GCP = _regex_scanner(
    rb"(?i:private_key_id)[\"'`]?[ \t]*[:=][ \t]*[\"'`]?"
    rb"(?P<v>[0-9a-fA-F]{40})(?![0-9a-fA-F]|\[REDACTED:)",
    "gcp-service-account",
    "v",
)
_AZURE = _regex_scanner(
    rb"(?i:accountkey)[ \t]*=[ \t]*(?P<v>[A-Za-z0-9+/]{40,}+={0,2})", "azure-storage-key", "v"
)
_AGE = _regex_scanner(
    rb"(?<![A-Za-z0-9\]])AGE-SECRET-KEY-1[0-9A-Z]{58}(?![A-Za-z0-9]|\[REDACTED:)", "age-secret-key"
)
_GITHUB = _regex_scanner(
    rb"(?<![A-Za-z0-9_\]])(?:gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{30,}+)",
    "github-token",
)
_GITLAB = _regex_scanner(
    rb"(?<![A-Za-z0-9_\]-])(?P<p>gl[a-z]{2,8}-|GR1348941)"
    rb"(?P<b>[A-Za-z0-9_-]{20,}+(?:\.[A-Za-z0-9_-]+)*+)",
    _gitlab_kind,
)
_SLACK = _regex_scanner(
    rb"(?<![A-Za-z0-9_\]-])(?:xoxe\.)?(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,}+", _slack_kind
)
_SLACK_WEBHOOK = _regex_scanner(
    rb"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{8,}+",
    "slack-webhook",
)
_STRIPE = _regex_scanner(
    rb"(?<![A-Za-z0-9_\]])(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}+|whsec_[A-Za-z0-9]{20,}+)",
    "stripe-key",
)
_GOOGLE = _regex_scanner(rb"(?<![A-Za-z0-9_\]-])AIza[0-9A-Za-z_-]{35,}+", "google-api-key")
_OPENAI = _regex_scanner(
    rb"(?<![A-Za-z0-9_\]-])sk-(?:ant-[a-z0-9]{2,12}-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}+",
    _openai_kind,
)
_JWT = _regex_scanner(
    rb"(?<![A-Za-z0-9_.\]-])eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]*+", "jwt"
)


# ---------------------------------------------------------------- private keys

_BEGIN_RE = re.compile(rb"-----BEGIN[ A-Z0-9_]{0,40}?PRIVATE KEY(?: BLOCK)?-----")
_END_RE = re.compile(rb"-----END[ A-Z0-9_]{0,40}?PRIVATE KEY(?: BLOCK)?-----")
# a body without its END line: header lines, then base64 lines (also as quoted or
# escaped strings and diff lines)
_BODY_RE = re.compile(rb"(?:\s*+[A-Za-z][A-Za-z0-9-]*: [^\r\n]*+)*+[A-Za-z0-9+/=\s\\\"'>]*+")
_BASE64_RUN_RE = re.compile(rb"[A-Za-z0-9+/]{20}")
_BODY_TRAILER = b" \t\r\n\"'\\>"


def _private_keys(data: bytes, regions: Sequence[Region], anchored: bool) -> Iterator[Finding]:
    """``-----BEGIN ... PRIVATE KEY-----`` to its END line, or to the end of its body.

    BEGIN lines are looked for in the regions; their END lines in the whole data,
    with one forward-moving search, so many BEGINs cost one pass in all.
    """
    begins = list(_matches(_BEGIN_RE, data, regions, anchored))
    next_end: re.Match[bytes] | None = None
    no_end_after = len(data) + 1  # no END line after this position
    for i, begin in enumerate(begins):
        limit = begins[i + 1].start() if i + 1 < len(begins) else len(data)
        limit = min(limit, begin.end() + KEY_BLOCK_MAX)
        if next_end is None or next_end.start() < begin.end():
            next_end = None
            if begin.end() < no_end_after:
                next_end = _END_RE.search(data, begin.end())
                if next_end is None:
                    no_end_after = begin.end()
        if next_end is not None and next_end.end() <= limit:  # BEGIN ... END
            if _BASE64_RUN_RE.search(data, begin.end(), next_end.start()):
                yield Finding(begin.start(), next_end.end(), "private-key")
            continue
        body = _BODY_RE.match(data, begin.end(), limit)
        stop = begin.end() if body is None else body.end()
        while stop > begin.end() and data[stop - 1] in _BODY_TRAILER:
            stop -= 1
        if _BASE64_RUN_RE.search(data, begin.end(), stop):
            yield Finding(begin.start(), stop, "private-key")


# ---------------------------------------------------------------- keyword assignments

_WORDS = (
    rb"password|passwd|pwd|secret(?:[_-]?key)?|token|api[_-]?key|access[_-]?key|"
    rb"private[_-]?key|auth[_-]?key|encryption[_-]?key|signing[_-]?key|master[_-]?key|"
    rb"account[_-]?key"
)
_PASSWORD_WORDS = frozenset((b"password", b"passwd", b"pwd"))
_LOOSE_WORDS = (b"password", b"passwd", b"secret")  # may end an identifier without a boundary

_ASSIGN_RE = re.compile(
    rb"(?P<word>(?i:" + _WORDS + rb"))(?P<tail>[0-9]{0,3})(?P<kq>[\"'`]?\]?)"
    rb"(?P<sep>[ \t]{0,8}(?::=|=>|=(?!=)|:(?![:/]))[ \t]{0,8}|[ \t]{1,4})"
    rb"(?:(?P<sp>[bBrRuUfF]{0,2})(?P<q>[\"'`])"
    rb"(?P<qv>(?:\\.|(?!(?P=q))[^\\\r\n]){0,4096}+)(?P=q)"
    rb"|(?P<uv>[^\s\"'`,;&(){}\[\]<>]{1,1024}+))"
)
_UV_MORE = re.compile(rb"[^\s\"'`,;&(){}\[\]<>]|\[REDACTED:")
VALUE_MAX = 1024
_ENTROPY_RE = re.compile(
    rb"(?P<word>(?i:" + _WORDS + rb"))[A-Za-z0-9_-]{0,20}?[\"'`\]]{0,2}"
    rb"(?:[ \t]*(?::=|=>|[=:,])[ \t]*|[ \t]{1,4})[bBrRuU]{0,2}[\"'`]?"
    rb"(?P<v>[A-Za-z0-9+/=_.~-]{20,1024}+)"
)
_V_MORE = re.compile(rb"[A-Za-z0-9+/=_.~-]|\[REDACTED:")
_WORD_RE = re.compile(rb"(?i:" + _WORDS + rb")")
_XML_RE = re.compile(rb"<(?P<tag>(?i:" + _WORDS + rb"))>(?P<v>[^<\s]{1,1024}+)</(?P=tag)>")
_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_KEY_CHARS = _ALNUM | {ord("_")}
_AWS_KEY_RE = re.compile(rb"(?i)aws|secret_?access")
_AWS_SECRET_VALUE_RE = re.compile(rb"[A-Za-z0-9/+]{40}")


def _key_start(data: bytes, word_start: int) -> int:
    i = word_start
    while i > 0 and data[i - 1] in _KEY_CHARS and word_start - i < 128:
        i -= 1
    return i


def _boundary_ok(data: bytes, word_start: int, word: bytes) -> bool:
    """The keyword starts a word of the key: ``db_password``, ``apiKey``, ``PGPASSWORD``."""
    if word_start == 0 or word.startswith(_LOOSE_WORDS):
        return True
    before = data[word_start - 1]
    if before not in _ALNUM:
        return True
    first = data[word_start]
    return 65 <= first <= 90 and (97 <= before <= 122 or 48 <= before <= 57)


def _assignment_kind(key: bytes, word: bytes, value: bytes) -> str:
    if len(value) == 40 and _AWS_SECRET_VALUE_RE.fullmatch(value) and _AWS_KEY_RE.search(key):
        return "aws-secret-key"
    return "password-assignment" if word in _PASSWORD_WORDS else "secret-assignment"


_FLAG_BEFORE = frozenset(b"- \t\r\n\"'=")


def _is_flag(data: bytes, word_start: int) -> bool:
    """A command-line flag: ``--password VALUE``, `` -token VALUE`` (not ``two-token``)."""
    return word_start >= 2 and data[word_start - 1] == 45 and data[word_start - 2] in _FLAG_BEFORE


_ENV_PREFIX_RE = re.compile(rb"[ \t+>-]*(?:export[ \t]+|set[ \t]+|ENV[ \t]+)?")


def _unquoted_is_secret(
    data: bytes, m: re.Match[bytes], key: bytes, limit: int, flag: bool
) -> bool:
    """Decide whether ``password=VALUE`` (no quotes) is a literal or code."""
    value = m["uv"]
    if _is_placeholder(value) or value.startswith((b"*", b"&", b"!", b"|", b">", b"@")):
        return False
    if m["word"].lower() == b"pwd" and value.startswith((b"/", b"~", b".")):
        return False  # $PWD, the working directory
    sep = m["sep"]
    op = sep.strip()
    end = m.end("uv")
    nxt = data[end : end + 1] if end < limit else b""
    eol = _at_eol(data, end, limit)
    identifier = _IDENTIFIER_RE.fullmatch(value) is not None
    number = _NUMBER_RE.fullmatch(value) is not None
    if flag:  # --password VALUE, --token=VALUE
        return not number or len(value) >= 4
    if op == b"=" and sep == b"=":  # KEY=value: env, shell, ini, query string, connection string
        key_start = _key_start(data, m.start("word"))
        line_start = data.rfind(b"\n", max(0, key_start - 64), key_start) + 1
        prefix = data[line_start:key_start]
        env_line = (line_start > 0 or key_start < 64) and _ENV_PREFIX_RE.fullmatch(
            prefix
        ) is not None
        if key.isupper() or nxt in (b";", b"&") or (eol and env_line and nxt != b"("):
            return not (number and len(value) < 4)
    elif op == b":" and sep != b":" and not m["kq"] and eol:  # YAML: key: value
        return not (identifier and value.split(b".")[0] in _TYPE_NAMES) and not (
            number and len(value) < 4
        )
    elif op == b":" and m["kq"]:  # JSON: "key": 123456
        return number and len(value) >= 4
    elif sep == b":":  # {token:02x}, a[token:], key:value in code
        return _high_entropy(value)
    # code: a variable, an attribute, a call, a number are not secrets themselves
    if nxt in (b"(", b"[", b"{") or (number and len(value) < 6):
        return False
    if identifier:
        return _high_entropy(value)
    return True


def _capped(data: bytes, m: re.Match[bytes], group: str, more: re.Pattern[bytes]) -> bool:
    """The value filled its VALUE_MAX and goes on: too long to judge, and not cut short."""
    value = m[group]
    return (
        value is not None and len(value) >= VALUE_MAX and more.match(data, m.end(group)) is not None
    )


def _word_starts(data: bytes, regions: Sequence[Region]) -> list[Region]:
    """Without the prefilter: every keyword in the regions, to the end of its line."""
    starts = [m.start() for start, end in regions for m in _WORD_RE.finditer(data, start, end)]
    return _anchored_regions(data, starts)


def _assignments(data: bytes, regions: Sequence[Region], anchored: bool) -> Iterator[Finding]:
    """At each keyword: an assignment, else a random-looking value right after it."""
    if not anchored:
        regions = _word_starts(data, regions)
    skip_until = -1  # keywords inside an over-long value are not tried again (linear time)
    for start, end in regions:
        if start < skip_until:
            continue
        m = _ASSIGN_RE.match(data, start, end)
        if m is not None:
            if _capped(data, m, "uv", _UV_MORE):
                skip_until = m.end("uv")
                continue
            finding = _assignment(data, m, end)
            if finding is not None:
                yield finding
                continue
            if m["q"] is not None:  # a quoted value that is no secret: nothing else follows
                continue
        m = _ENTROPY_RE.match(data, start, end)
        if m is not None:
            if _capped(data, m, "v", _V_MORE):
                skip_until = m.end("v")
                continue
            if (
                _boundary_ok(data, start, m["word"].lower())
                and not _inside_marker(data, start)
                and _high_entropy(m["v"])
            ):
                yield Finding(*m.span("v"), "high-entropy")
                continue
        if start > 0 and data[start - 1] == 60:  # <password>...</password>
            m = _XML_RE.match(data, start - 1, end)
            if m is not None and not _is_placeholder(m["v"]) and not _inside_marker(data, start):
                word = m["tag"].lower()
                yield Finding(*m.span("v"), _assignment_kind(word, word, m["v"]))


def _assignment(data: bytes, m: re.Match[bytes], limit: int) -> Finding | None:
    """``m`` is ``KEY SEP VALUE``: the value's span if it is a secret."""
    quoted = m["qv"]
    if quoted is not None and _is_placeholder(quoted):  # first: the commonest rejection
        return None
    word = m["word"].lower()
    word_start = m.start("word")
    if not _boundary_ok(data, word_start, word) or _inside_marker(data, word_start):
        return None
    flag = _is_flag(data, word_start)
    if not flag and not m["sep"].strip():  # "the token is ...", "two-token keywords"
        return None
    key_start = _key_start(data, word_start)
    key = data[key_start : m.end("word")]
    if quoted is not None:
        prefix = m["sp"].lower()
        if b"{" in quoted and b"f" in prefix:  # an f-string
            return None
        if quoted.rstrip().endswith((b":", b"?")):  # a prompt: "Password: "
            return None
        if b"r" in prefix and b"\\" in quoted:  # a regular expression: r"[^\W\d]\w*"
            return None
        if word == b"token" and key_start == word_start and _WORD_VALUE_RE.fullmatch(quoted):
            return None  # a lexer's token type: token = "NAME"
        return Finding(*m.span("qv"), _assignment_kind(key, word, quoted))
    if _unquoted_is_secret(data, m, key, limit, flag):
        return Finding(*m.span("uv"), _assignment_kind(key, word, m["uv"]))
    return None


# ---------------------------------------------------------------- URLs and headers

_URL_RE = re.compile(
    rb"://(?<=[A-Za-z0-9]://)"
    rb"(?P<user>[^\s:/?#@'\"<>\[\]]{0,256}+):(?P<pw>[^\s/?#'\"<>]{1,256})"
    rb"@(?=[A-Za-z0-9\[._~%-])"
)
_URL_PLACEHOLDER_RE = re.compile(rb"(?i)pass(?:word|wd)?|pwd|secret|token|x-oauth-basic|\*+|x+")


def _urls(data: bytes, regions: Sequence[Region], anchored: bool) -> Iterator[Finding]:
    for m in _matches(_URL_RE, data, regions, anchored):
        if _inside_marker(data, m.start()):
            continue
        pw = m["pw"]
        if not (_is_placeholder(pw) or _URL_PLACEHOLDER_RE.fullmatch(pw)):
            yield Finding(*m.span("pw"), "url-password")
        if _high_entropy(m["user"]):  # https://<token>:x-oauth-basic@github.com
            yield Finding(*m.span("user"), "url-password")


_AUTH_RE = re.compile(
    rb"(?i:authorization)[\"'`]?\]?[ \t]*[:=,][ \t]*(?:[bBrRuUfF]{0,2}[\"'`])?[ \t]*"
    rb"(?:(?P<scheme>(?i:bearer|basic|token|digest|negotiate|apikey|sso-key|jwt))[ \t]+)?"
    rb"(?P<v>[A-Za-z0-9._~+/=-]{8,2048}+)(?![A-Za-z0-9._~+/=-]|\[REDACTED:)"
)
_WORD_VALUE_RE = re.compile(rb"[a-z_]+|[A-Z_]+|[A-Za-z]+")  # a variable's name, a word


def _basic_credentials(value: bytes) -> bool:
    try:
        decoded = binascii.a2b_base64(value + b"=" * (-len(value) % 4), strict_mode=True)
    except binascii.Error:
        return False
    return b":" in decoded


def _authorization(data: bytes, regions: Sequence[Region], anchored: bool) -> Iterator[Finding]:
    for m in _matches(_AUTH_RE, data, regions, anchored):
        value = m["v"]
        scheme = m["scheme"]
        if scheme is None:  # no scheme word: only a random-looking credential
            if not _high_entropy(value):
                continue
        elif (_WORD_VALUE_RE.fullmatch(value) is not None or _is_placeholder(value)) and not (
            scheme.lower() == b"basic" and _basic_credentials(value)
        ):
            continue  # "Bearer token", "Bearer TOKEN", "Basic <placeholder>"
        if not _inside_marker(data, m.start()):
            yield Finding(*m.span("v"), "authorization-header")


# ---------------------------------------------------------------- families and prefilter


class _Family(NamedTuple):
    """Patterns that share prefilter keywords.

    An anchored family's hits are where its patterns start, so each is tried there
    with one ``match``; the others are searched in the lines around their hits.
    """

    name: str
    scanners: tuple[Scanner, ...]
    anchored: bool


FAMILIES: dict[str, _Family] = {
    f.name: f
    for f in (
        _Family("private-key", (_private_keys,), False),
        _Family("age", (_AGE,), False),
        _Family("slack-webhook", (_SLACK_WEBHOOK,), False),
        _Family("aws-id", (_AWS_ID,), True),
        _Family("aws-secret", (_AWS_SECRET,), True),
        _Family("gcp", (_GCP,), True),
        _Family("azure", (_AZURE,), True),
        _Family("github", (_GITHUB,), True),
        _Family("gitlab", (_GITLAB,), True),
        _Family("slack", (_SLACK,), True),
        _Family("stripe", (_STRIPE,), True),
        _Family("google", (_GOOGLE,), True),
        _Family("openai", (_OPENAI,), True),
        _Family("jwt", (_JWT,), True),
        _Family("assign", (_assignments,), True),
        _Family("url", (_urls,), True),
        _Family("auth", (_authorization,), True),
    )
}


class _Branch(NamedTuple):
    lead: str  # literal text right after the anchor (branches that share it are grouped)
    check: str  # then this regex (lookbehinds check what precedes the anchor)
    offset: int  # from the anchor to where the keyword starts
    families: tuple[str, ...]


def _kw(word: str, anchor: str, families: str, then: str = "") -> _Branch:
    """A literal keyword found by one of its letters (``_kw("token", "k", ...)``), where
    ``then`` (lookarounds) holds; lookarounds only skip what the families would reject."""
    i = word.index(anchor)
    behind = f"(?<={re.escape(word)})" if i > 0 else ""
    return _Branch(re.escape(word[i + 1 :]), behind + then, -i, tuple(families.split()))


def _assignable(word: str) -> str:
    """Lookarounds after ``word``: an assignment (or a ``--flag value``) can follow."""
    run = r"""[a-z0-9_-]{0,24}+["'`\]]{0,2}"""
    return (
        rf"(?:(?={run}(?:[ \t]*+[:=,>]|[ \t]{{1,4}}[bru]{{0,2}}[\"'`]?[a-z0-9+/=_.~-]{{20}}))"
        rf"|(?:(?<=--{re.escape(word)})|(?<=[\s\"'=]-{re.escape(word)}))(?={run}[ \t]))"
    )


def _assign_kw(word: str, anchor: str, families: str = "assign") -> _Branch:
    """A keyword of the assignment family, only where an assignment can follow it."""
    return _kw(word, anchor, families, _assignable(word))


def _rx(regex: str, families: str) -> _Branch:
    """A keyword that starts with the anchor and goes on as ``regex``."""
    return _Branch("", regex, 0, tuple(families.split()))


class _Pass(NamedTuple):
    """One prefilter pass over the data: a regex that starts with a literal anchor."""

    lowercase: bool  # over the lowercased copy (case-insensitive keywords)
    memchr: bool  # find the anchor with bytes.find, then match (for very rare anchors)
    anchor: bytes
    pattern: re.Pattern[bytes]
    branches: tuple[_Branch, ...]  # indexed by match.lastindex - 1


def _pass(
    anchor: str, branches: Sequence[_Branch], lowercase: bool = True, memchr: bool = False
) -> _Pass:
    groups: dict[str, list[_Branch]] = {}
    for b in branches:
        groups.setdefault(b.lead, []).append(b)
    ordered = [b for group in groups.values() for b in group]  # capture groups' order
    alternatives = "|".join(
        lead + "(?:" + "|".join(f"(?:{b.check})()" for b in group) + ")"
        for lead, group in groups.items()
    )
    pattern = re.compile(f"{re.escape(anchor)}(?:{alternatives})".encode())
    assert pattern.groups == len(ordered)
    assert all(name in FAMILIES for b in ordered for name in b.families)
    return _Pass(lowercase, memchr, anchor.encode(), pattern, tuple(ordered))


_KEY_WORDS = (  # noqa: SIM905
    "api_key apikey api-key access_key accesskey access-key auth_key authkey auth-key "
    "encryption_key encryptionkey encryption-key signing_key signingkey signing-key "
    "master_key masterkey master-key account_key account-key"
).split()

# Anchors are letters that are rare in source code (k, w, z, J, x, g, A) or literals
# the engine finds quickly ("secret", "://"); lookbehinds check the rest of the keyword,
# and lookarounds what each family needs around it (a boundary, an assignment, a body).
_PASSES: tuple[_Pass, ...] = (
    _pass(
        "k",
        [
            _assign_kw("token", "k"),
            *(_assign_kw(w, "k") for w in _KEY_WORDS),
            _assign_kw("accountkey", "k", "assign azure"),
            *(
                _assign_kw(w, "k", "assign gcp")
                for w in ("private_key", "private-key", "privatekey")
            ),
            _kw("private key", "k", "private-key", "(?=(?: block)?-----)"),
            _kw("sk-", "k", "openai", "(?<![a-z0-9_-]sk-)(?=[a-z0-9_-]{20})"),
            _Branch(
                "_",
                "(?:live|test)_(?<=[sr]k_live_|[sr]k_test_)"
                "(?<![a-z0-9_][sr]k_live_|[a-z0-9_][sr]k_test_)(?=[a-z0-9]{10})",
                -1,
                ("stripe",),
            ),
            _kw("hooks.slack.com/", "k", "slack-webhook"),
        ],
    ),
    _pass(
        "w",
        [
            _assign_kw("pwd", "w"),
            _kw("aws", "w", "aws-secret", "(?=[a-z0-9_.-]{0,32}?(?:secret|key))"),
            _kw("whsec_", "w", "stripe", "(?<![a-z0-9_]whsec_)(?=[a-z0-9]{20})"),
            _assign_kw("passw", "w"),  # no lead letter: last, after the cheap branches
        ],
    ),
    _pass(
        "secret",
        [
            _Branch("", "(?<=age-secret)(?=-key-1)", -4, ("age",)),
            _Branch("", _assignable("secret"), 0, ("assign",)),
        ],
        memchr=True,
    ),
    _pass(
        "z",
        [
            _kw("authorization", "z", "auth", r"""(?=["'`]?\]?[ \t]*+[:=,])"""),
            _kw("aiza", "z", "google", "(?<![a-z0-9_-]aiza)(?=[a-z0-9_-]{35})"),
        ],
    ),
    _pass(
        "J",
        [_kw("eyJ", "J", "jwt", "(?<![A-Za-z0-9_.-]eyJ)(?=[A-Za-z0-9_-]{8})")],
        lowercase=False,
        memchr=True,
    ),
    _pass(
        "x",
        [_rx("(?:ox[abposre]|app)-(?<![a-z0-9_-]x...-)(?=[a-z0-9-]{10})", "slack")],
    ),
    _pass(
        "g",
        [
            _rx(
                "(?:h[pousr]_(?<![a-z0-9_]g.._)|ithub_pat_(?<![a-z0-9_]github_pat_))"
                "(?=[a-z0-9_]{30})",
                "github",
            ),
            _rx(
                "(?:l(?<![a-z0-9_-]gl)[a-z]{2,8}-|r1348941(?<![a-z0-9_-]gr1348941))"
                "(?=[a-z0-9_-]{20})",
                "gitlab",
            ),
        ],
    ),
    _pass(
        "://",
        [
            _rx(
                r"""(?<=[a-z0-9]://)(?=[^\s:/?#@'"<>\[\]]{0,256}+:[^\s/?#'"<>]{1,256}@)""",
                "url",
            )
        ],
        memchr=True,
    ),
    _pass(
        "A",
        [
            _rx(
                "(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])(?<![A-Za-z0-9][A-Z0-9]{4})"
                "(?=[A-Z2-7]{16}(?![A-Za-z0-9]))",
                "aws-id",
            ),
        ],
        lowercase=False,
    ),
)


def _hits(data: bytes) -> dict[str, list[int]]:
    """Where each family must look: the start of each candidate keyword."""
    lowered = data.lower()
    hits: dict[str, list[int]] = {}
    for p in _PASSES:
        text = lowered if p.lowercase else data
        if p.memchr:
            matches: Iterator[re.Match[bytes] | None] = _memchr_matches(text, p)
        else:
            matches = p.pattern.finditer(text)
        for m in matches:
            if m is not None:
                branch = p.branches[(m.lastindex or 1) - 1]
                for name in branch.families:
                    hits.setdefault(name, []).append(m.start() + branch.offset)
    return hits


MEMCHR_LIMIT = 2000  # anchors found one by one; past that, the regex engine takes over


def _memchr_matches(text: bytes, p: _Pass) -> Iterator[re.Match[bytes] | None]:
    find, match, anchor = text.find, p.pattern.match, p.anchor
    i = find(anchor)
    for _ in range(MEMCHR_LIMIT):
        if i < 0:
            return
        yield match(text, i)
        i = find(anchor, i + 1)
    if i >= 0:  # an anchor that is not rare in this text
        yield from p.pattern.finditer(text, i)


def _line_regions(data: bytes, positions: list[int]) -> list[Region]:
    """The lines around the positions (a window on very long lines), merged, in order."""
    regions: list[Region] = []
    n = len(data)
    for pos in sorted(positions):
        if regions and pos < regions[-1][1]:
            continue
        floor = max(0, pos - LINE_WINDOW_BEFORE)
        start = data.rfind(b"\n", floor, pos) + 1 or floor
        end = data.find(b"\n", pos, min(n, pos + LINE_WINDOW_AFTER))
        if end < 0:
            end = min(n, pos + LINE_WINDOW_AFTER)
        if regions and start <= regions[-1][1] + 1:  # the same or the next line
            regions[-1] = (regions[-1][0], end)
        else:
            regions.append((start, end))
    return regions


def _anchored_regions(data: bytes, positions: list[int]) -> list[Region]:
    """From each position to the end of its line (or the window)."""
    n = len(data)
    regions: list[Region] = []
    newline = -1  # the first newline at or after the current position (n: none)
    for pos in sorted(set(positions)):
        if pos < 0:
            continue
        if newline < pos:  # one search per line, however many hits it has
            newline = data.find(b"\n", pos)
            if newline < 0:
                newline = n
        end = pos + LINE_WINDOW_AFTER
        regions.append((pos, newline if newline < end else end))
    return regions


# ---------------------------------------------------------------- merge and replace

_MARKER_RE = re.compile(rb"\[REDACTED:[a-z0-9-]{1,40}\]")
_MARKER_MAX = 60


def _on_marker(data: bytes, finding: Finding) -> bool:
    """The span touches a marker already in the input (keeps redaction idempotent)."""
    start = max(0, finding.start - _MARKER_MAX)
    for m in _MARKER_RE.finditer(data, start, min(len(data), finding.end + _MARKER_MAX)):
        if m.start() < finding.end and finding.start < m.end():
            return True
        if m.start() >= finding.end:
            break
    return False


def _inside_marker(data: bytes, pos: int) -> bool:
    """``pos`` is inside a marker: its kind's words (``github-token``) are no keywords."""
    i = data.rfind(b"[REDACTED:", max(0, pos - _MARKER_MAX), pos + 1)
    return i >= 0 and (m := _MARKER_RE.match(data, i)) is not None and pos < m.end()


def _snap(data: bytes, finding: Finding) -> Finding:
    """Widen a span to whole UTF-8 characters, so text decodes after replacement."""
    start, end = finding.start, finding.end
    while start > 0 and 0x80 <= data[start] < 0xC0:
        start -= 1
    while end < len(data) and 0x80 <= data[end] < 0xC0:
        end += 1
    return Finding(start, end, finding.kind)


def _merge(data: bytes, findings: list[Finding]) -> list[Finding]:
    if not findings:
        return []
    if b"[REDACTED:" in data:
        findings = [f for f in findings if not _on_marker(data, f)]
    if not data.isascii():
        findings = [_snap(data, f) for f in findings]
    kept = sorted((f for f in findings if f.end > f.start), key=lambda f: (f.start, -f.end))
    merged: list[Finding] = []
    for f in kept:
        if merged and f.start < merged[-1].end:
            last = merged[-1]
            kind = last.kind if KINDS[last.kind] >= KINDS[f.kind] else f.kind
            merged[-1] = Finding(last.start, max(last.end, f.end), kind)
        else:
            merged.append(f)
    return merged


_MARKERS = {kind: REDACTED_TEMPLATE.format(kind=kind).encode() for kind in KINDS}


def _replacement(span: bytes, kind: str) -> bytes:
    """The marker; for a span of several lines, the marker on its first and last line
    and its line breaks in between, each with its line's diff prefix.

    A span's neighbours always meet a marker's ``[`` or ``]``, as on the first pass.
    """
    marker = _MARKERS[kind]
    if b"\n" not in span:
        return marker
    lines = span.split(b"\n")
    out = [marker]
    for i, line in enumerate(lines[1:]):
        if lines[i].endswith(b"\r"):
            out.append(b"\r")
        out.append(b"\n")
        if line[:1] in (b"+", b"-", b" "):
            out.append(line[:1])
    out.append(marker)
    return b"".join(out)


def _find(data: bytes, prefilter: bool) -> list[Finding]:
    findings: list[Finding] = []
    if prefilter:
        for name, positions in _hits(data).items():
            family = FAMILIES[name]
            if family.anchored:
                regions = _anchored_regions(data, positions)
            else:
                regions = _line_regions(data, positions)
            for scan in family.scanners:
                findings.extend(scan(data, regions, family.anchored))
    else:
        everything = [(0, len(data))]
        for family in FAMILIES.values():
            for scan in family.scanners:
                findings.extend(scan(data, everything, False))
    return _merge(data, findings)


def _apply(data: bytes, findings: list[Finding]) -> bytes:
    out: list[bytes] = []
    pos = 0
    for f in findings:
        out.append(data[pos : f.start])
        out.append(_replacement(data[f.start : f.end], f.kind))
        pos = f.end
    out.append(data[pos:])
    return b"".join(out)


# ---------------------------------------------------------------- public API


def find_secrets(data: bytes, *, prefilter: bool = True) -> list[Finding]:
    """The secret spans of ``data``, sorted and disjoint (overlapping ones are united)."""
    return _find(bytes(data), prefilter)


def redact_bytes(data: bytes, *, prefilter: bool = True) -> bytes:
    """``data`` with every secret span replaced by its marker; works on any bytes.

    ``prefilter=False`` scans with every pattern over the whole input (the
    benchmark's baseline); the result is the same.
    """
    try:
        data = bytes(data)
        findings = _find(data, prefilter)
        return _apply(data, findings) if findings else data
    except Exception:  # fail closed: never raise, never pass unscanned data on
        return FAILED_MARKER.encode()


def redact_text(text: str) -> str:
    """``text`` with every secret span replaced by its marker."""
    try:
        raw = text.encode("utf-8", "surrogatepass")
        findings = _find(raw, True)
        if not findings:
            return text
        return _apply(raw, findings).decode("utf-8", "surrogatepass")
    except Exception:  # fail closed, as in redact_bytes
        return FAILED_MARKER


def contains_secret(text: str | bytes) -> bool:
    """Whether redaction would change ``text``."""
    try:
        raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
        return bool(_find(raw, True))
    except Exception:
        return True
