"""Recorded path names: how raw file-system bytes become the dataset's strings.

A path that is valid UTF-8 is recorded as is.  A path that is not (a Linux
file name may hold any byte but ``/`` and NUL) is recorded with each invalid
byte written as ``\\xNN`` (Python's ``backslashreplace``), so it still fits an
Arrow string column and :func:`to_bytes` turns it back into the same bytes.

A path that holds a secret (a token whose format gives it away, such as
``ghp_...`` or ``AKIA...``: people do name files after keys) is recorded with
the secret redacted, like any other text; such a path no longer maps back to
the file on disk, which is the point.  A bare random string in a name cannot
be told from any other name and is recorded as is.
"""

from __future__ import annotations

import re

from snapshotter.redact import redact_text

_ESCAPED_BYTE = re.compile(r"\\x([0-9a-fA-F]{2})")
# what makes git quote a name: control characters, DEL, a double quote, a backslash
_QUOTED_CHARS = re.compile(r'["\\\x00-\x1f\x7f]')


def to_record(raw: bytes) -> str:
    """The string stored in the dataset for a raw path relative to the workspace root."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="backslashreplace")
    return redact_text(text)


def to_bytes(recorded: str) -> bytes:
    """The raw path a recorded string stands for (inverse of :func:`to_record`)."""
    try:
        encoded = recorded.encode("utf-8")
    except UnicodeEncodeError:  # pragma: no cover - recorded strings are valid UTF-8
        encoded = recorded.encode("utf-8", errors="surrogateescape")
    if b"\\x" not in encoded:
        return encoded
    candidate = _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), recorded)
    raw = candidate.encode("utf-8", errors="surrogateescape")
    # Only an escape that stood for an invalid byte is decoded; a real
    # backslash followed by "x41" in a valid UTF-8 name stays literal.
    return raw if to_record(raw) == recorded else encoded


def git_quote(raw: bytes) -> str:
    """A path as git writes it in diff headers: C-quoted only when it must be.

    Names that are valid UTF-8 and free of control characters, quotes and
    backslashes stay readable; anything else is quoted with octal escapes,
    which ``git apply`` and GNU ``patch`` both read back to the same bytes.
    """
    try:
        text = raw.decode("utf-8")
        plain = _QUOTED_CHARS.search(text) is None
    except UnicodeDecodeError:
        plain = False
    if plain:
        return text
    out = ['"']
    specials = {0x22: '\\"', 0x5C: "\\\\", 0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    for byte in raw:
        if byte in specials:
            out.append(specials[byte])
        elif byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:03o}")
        else:
            out.append(chr(byte))
    out.append('"')
    return "".join(out)
