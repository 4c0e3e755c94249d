"""The user's configuration: ``config.toml`` read, merged over defaults, validated.

    defaults in code (the dataclasses below, and the key tables beside them)
      <- the user's TOML (stdlib ``tomllib``), key by key
      -> a frozen :class:`Config`, or one :class:`ConfigError` naming the file and the key

A missing file means every default and no workspace.  Unknown keys are errors
(with a did-you-mean when one is close): a typo must not silently leave a
default in place.  ``[[workspace]]`` blocks are numbered from 1 in messages
(``workspace[2].build`` is the second block).

The build command of a workspace comes only from this file (or the command
line), never from a file inside a repository (design rule 5).

Writing is append-only, so the user's comments and layout survive: the
commented default file is written once when missing, and :func:`add_workspace`
appends a block.  The new text is loaded back before it replaces the old file,
and files are replaced whole (temporary name, fsync, rename).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import secrets
import textwrap
import tomllib
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miner.settings import DEFAULT_FIX_EXCLUDES, SPLIT_MODES, MinerSettings
from snapshotter.capture import DEFAULT_EXCLUDES, CaptureSettings
from snapshotter.errors import ConfigError
from snapshotter.paths import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    default_config_file,
    default_data_dir,
)

KIB = 1024
_UNITS = {"b": 1, "kib": KIB, "mib": KIB**2, "gib": KIB**3, "tib": KIB**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)?\s*$", re.IGNORECASE)
_TOML_POSITION = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")


@dataclass(frozen=True)
class WorkspaceConfig:
    path: Path
    build: str | None = None
    build_timeout: float = 600.0


@dataclass(frozen=True)
class AgentSettings:
    interval: float = 20.0
    debounce: float = 2.0
    heartbeat: float = 600.0
    rescan: float = 600.0
    build_nice: int = 10
    roll_interval: float = 3600.0
    roll_rows: int = 5000


@dataclass(frozen=True)
class RetentionSettings:
    max_bytes: int = 2 * KIB**3
    max_age_days: int = 90


@dataclass(frozen=True)
class LLMSettings:
    """The miner's LLM describer; no model means the offline describer, no network."""

    model: str | None = None
    base_url: str | None = None
    # $OPENAI_API_KEY is preferred; kept out of repr, so out of logs and tracebacks
    api_key: str | None = field(default=None, repr=False)
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 3
    max_tokens_total: int | None = None
    context_tokens: int = 6000


@dataclass(frozen=True)
class MinerSection:
    """The ``[miner]`` section: how ``miner run`` splits and filters, unless its flags say.

    ``fix_exclude`` holds only the user's globs: whether the built-in lock files
    and vendored trees come first is ``default_fix_exclude``, which the command
    line can turn either way, so the two are kept apart until :meth:`settings`.
    """

    split_by: str = MinerSettings.split_by
    fix_exclude: tuple[str, ...] = ()
    default_fix_exclude: bool = True
    test_fraction: float = MinerSettings.test_fraction
    max_fix_lines: int = MinerSettings.max_fix_lines
    max_fix_files: int = MinerSettings.max_fix_files
    max_context_bytes: int = MinerSettings.max_context_bytes

    def settings(
        self,
        *,
        split_by: str | None = None,
        fix_exclude: tuple[str, ...] = (),
        default_fix_exclude: bool | None = None,
    ) -> MinerSettings:
        """One run's settings: the command line's choices (None: not given) over this section.

        Globs from the command line are added to the section's, never replace them.
        """
        use_defaults = (
            self.default_fix_exclude if default_fix_exclude is None else default_fix_exclude
        )
        defaults = DEFAULT_FIX_EXCLUDES if use_defaults else ()
        return MinerSettings(
            max_fix_lines=self.max_fix_lines,
            max_fix_files=self.max_fix_files,
            test_fraction=self.test_fraction,
            split_by=split_by or self.split_by,
            max_context_bytes=self.max_context_bytes,
            fix_exclude=tuple(dict.fromkeys((*defaults, *self.fix_exclude, *fix_exclude))),
        )


@dataclass(frozen=True)
class Config:
    agent: AgentSettings
    capture: CaptureSettings  # exclude = DEFAULT_EXCLUDES + the user's globs
    retention: RetentionSettings
    workspaces: tuple[WorkspaceConfig, ...]
    data_dir: Path
    source: Path | None  # the file read; None when it did not exist
    llm: LLMSettings = LLMSettings()
    miner: MinerSection = MinerSection()


# -- values -----------------------------------------------------------------


class _Invalid(Exception):
    """A value of the wrong kind; its message says what was expected."""


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid("must be a number of seconds > 0")
    if value <= 0:
        raise _Invalid("must be a number of seconds > 0")
    return float(value)


def _seconds_or_zero(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid("must be a number of seconds >= 0")
    if value < 0:
        raise _Invalid("must be a number of seconds >= 0")
    return float(value)


def _int_between(low: int, high: int | None, what: str) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            raise _Invalid(f"must be {what}")
        return value

    return parse


def parse_size(value: object) -> int:
    """Bytes from an int or a string like ``"512MiB"``, ``"2GiB"``, ``"1.5 GiB"``."""
    expected = 'must be a size > 0: a number of bytes or a string like "512MiB" or "2GiB"'
    if isinstance(value, bool):
        raise _Invalid(expected)
    if isinstance(value, int):
        if value <= 0:
            raise _Invalid(expected)
        return value
    if not isinstance(value, str):
        raise _Invalid(expected)
    match = _SIZE.match(value)
    if match is None:
        raise _Invalid(expected)
    unit = (match.group(2) or "b").lower()
    if unit not in _UNITS:
        raise _Invalid(f"{expected} (units: B, KiB, MiB, GiB, TiB)")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise _Invalid(expected)
    return size


def format_size(n: int) -> str:
    """Bytes for a person: ``512 B``, ``1.5 KiB`` ... ``2.0 GiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _path(value: object) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("must be a path string")
    expanded = os.path.expanduser(value)
    if not os.path.isabs(expanded):
        raise _Invalid("must be an absolute path (or start with ~)")
    return Path(os.path.normpath(expanded))


def _command(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("must be a non-empty string (a shell command)")
    return value


def _globs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid("must be an array of glob strings")
    return tuple(value)


def _fraction(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _Invalid("must be a number from 0 to 1")
    return float(value)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _split_mode(value: object) -> str:
    if value not in SPLIT_MODES:
        raise _Invalid("must be " + " or ".join(json.dumps(mode) for mode in SPLIT_MODES))
    return str(value)


@dataclass(frozen=True)
class _Key:
    """One configuration key: how to check it, its default as TOML, what it means."""

    name: str
    parse: Callable[[object], Any]
    default: str
    meaning: str


_AGENT_KEYS = (
    _Key("interval", _seconds, "20", "seconds between ticks"),
    _Key(
        "debounce",
        _seconds_or_zero,
        "2.0",
        "seconds a new state must stay unchanged before it is built",
    ),
    _Key("heartbeat", _seconds, "600", "seconds of unchanged state between heartbeat rows"),
    _Key("rescan", _seconds, "600", "at most this many seconds between safety-net full rescans"),
    _Key(
        "build_nice",
        _int_between(0, 19, "an integer niceness from 0 to 19"),
        "10",
        "niceness of builds (0 to 19)",
    ),
    _Key("roll_interval", _seconds, "3600", "seconds between rolls of the spool into Parquet"),
    _Key(
        "roll_rows",
        _int_between(1, None, "an integer >= 1"),
        "5000",
        "... or as soon as this many rows are pending",
    ),
    _Key(
        "data_dir",
        _path,
        '"~/.local/share/redgreen"',
        "where the dataset lives; $REDGREEN_DATA_DIR overrides it; default: XDG data home",
    ),
)
_CAPTURE_KEYS = (
    _Key(
        "max_file_size",
        parse_size,
        '"1MiB"',
        "larger files are recorded by hash and size only (bytes, or a size like 1MiB)",
    ),
    _Key(
        "exclude",
        _globs,
        "[]",
        "globs never read, added to the built-in ones: " + " ".join(DEFAULT_EXCLUDES),
    ),
)
_RETENTION_KEYS = (
    _Key(
        "max_bytes",
        parse_size,
        '"2GiB"',
        "disk budget for the dataset (bytes, or a size like 500MiB or 2GiB)",
    ),
    _Key(
        "max_age_days",
        _int_between(1, None, "an integer number of days >= 1"),
        "90",
        "days of data kept; older days are deleted",
    ),
)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("must be a non-empty string")
    return value.strip()


def _url(value: object) -> str:
    text = _text(value)
    if not text.startswith(("http://", "https://")):
        raise _Invalid("must be an http:// or https:// URL")
    return text


_LLM_KEYS = (
    _Key(
        "model",
        _text,
        '"gpt-4o-mini"',
        "model that describes episodes (miner run/describe); unset: the offline describer,"
        " and nothing is sent anywhere",
    ),
    _Key(
        "base_url",
        _url,
        '"http://127.0.0.1:8080/v1"',
        "OpenAI-compatible endpoint (vLLM, llama.cpp, Ollama); unset: OpenAI's API",
    ),
    _Key("api_key", _text, '"..."', "API key; prefer $OPENAI_API_KEY, which wins"),
    _Key(
        "concurrency", _int_between(1, 256, "an integer from 1 to 256"), "8", "requests in flight"
    ),
    _Key("timeout", _seconds, "120", "seconds before one request is abandoned"),
    _Key(
        "max_retries",
        _int_between(0, 20, "an integer from 0 to 20"),
        "3",
        "retries of a request on 429, 5xx or a dropped connection (honouring Retry-After)",
    ),
    _Key(
        "max_tokens_total",
        _int_between(1, None, "an integer >= 1"),
        "1000000",
        "optional: tokens (in + out) a run may spend; it stops cleanly when they are spent",
    ),
    _Key(
        "context_tokens",
        _int_between(256, None, "an integer >= 256"),
        "6000",
        "tokens of error, diffs and files sent per request, trimmed to fit",
    ),
)
_MINER_KEYS = (
    _Key(
        "split_by",
        _split_mode,
        '"time"',
        'what the test split holds out: each host\'s latest episodes ("time") or whole'
        ' developers ("developer"); miner run --split-by overrides it',
    ),
    _Key("test_fraction", _fraction, "0.1", "share of the kept episodes held out as test"),
    _Key(
        "max_fix_lines",
        _int_between(1, None, "an integer >= 1"),
        "100",
        "a fix changing more lines fails fix_too_large",
    ),
    _Key(
        "max_fix_files",
        _int_between(1, None, "an integer >= 1"),
        "10",
        "a fix changing more files fails fix_too_large",
    ),
    _Key(
        "max_context_bytes",
        parse_size,
        '"64KiB"',
        "size of an episode's context: the files the fix touches, then the files its errors"
        " name while they fit (bytes, or a size like 64KiB)",
    ),
    _Key(
        "fix_exclude",
        _globs,
        "[]",
        "globs of files left out of every fix (DIR/ matches a directory anywhere), added to"
        " the built-in lock files (Cargo.lock, go.sum, ...) and vendored trees (vendor/,"
        " node_modules/, ...); miner run --fix-exclude adds more",
    ),
    _Key(
        "default_fix_exclude",
        _flag,
        "true",
        "false: keep lock files and vendored trees in fixes, leave out only your globs"
        " (as miner run --no-default-fix-exclude)",
    ),
)
_WORKSPACE_KEYS = (
    _Key("path", _path, '"~/src/app"', "the working copy to watch; ~ is expanded"),
    _Key("build", _command, '"make -j2"', "optional: build command, run in it by your shell"),
    _Key("build_timeout", _seconds, "600", "optional: seconds before a build is killed"),
)
_SECTIONS: dict[str, tuple[_Key, ...]] = {
    "agent": _AGENT_KEYS,
    "capture": _CAPTURE_KEYS,
    "retention": _RETENTION_KEYS,
    "llm": _LLM_KEYS,
    "miner": _MINER_KEYS,
}
_WORKSPACE = "workspace"


# -- loading ----------------------------------------------------------------


def load_config(path: Path | None = None) -> Config:
    """The configuration in ``path`` (default: the XDG config file) over the defaults."""
    source = path if path is not None else default_config_file()
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _build({}, None, display(source))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{display(source)}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {display(source)}: {exc.strerror or exc}") from exc
    return _load_text(text, source)


def _load_text(text: str, source: Path) -> Config:
    where = display(source)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML{_toml_position(exc)}") from exc
    return _build(document, source, where)


def _toml_position(exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = _TOML_POSITION.search(message)
    reason = message[: match.start()] if match else message
    if match and match.group(1):
        return f" at line {match.group(1)}, column {match.group(2)}: {reason}"
    if match:
        return f" at the end of the file: {reason}"
    return f": {reason}"


def _build(document: Mapping[str, Any], source: Path | None, where: str) -> Config:
    known = [*_SECTIONS, _WORKSPACE]
    for name in document:
        if name not in known:
            raise ConfigError(f"{where}: {_unknown_top_level(name)}")
    values = {
        section: _section(document, section, keys, where) for section, keys in _SECTIONS.items()
    }
    agent_values = dict(values["agent"])
    configured_data_dir = agent_values.pop("data_dir", None)
    capture_values = values["capture"]
    extra = capture_values.get("exclude", ())
    for number, glob in enumerate(extra, start=1):
        if not isinstance(glob, str) or not glob.strip():
            raise ConfigError(
                f"{where}: capture.exclude[{number}] must be a non-empty glob string,"
                f" got {_show(glob)}"
            )
    capture = CaptureSettings(
        max_file_bytes=capture_values.get("max_file_size", CaptureSettings.max_file_bytes),
        exclude=tuple(dict.fromkeys((*DEFAULT_EXCLUDES, *extra))),
    )
    override = os.environ.get("REDGREEN_DATA_DIR")
    data_dir = Path(override) if override else (configured_data_dir or default_data_dir())
    return Config(
        agent=AgentSettings(**agent_values),
        capture=capture,
        retention=RetentionSettings(**values["retention"]),
        workspaces=_workspaces(document.get(_WORKSPACE), where),
        data_dir=data_dir,
        source=source,
        llm=LLMSettings(**values["llm"]),
        miner=_miner(values["miner"], where),
    )


def _miner(values: dict[str, Any], where: str) -> MinerSection:
    for number, glob in enumerate(values.get("fix_exclude", ()), start=1):
        # a bare "/" would be a directory without a name (MinerSettings refuses it)
        if not isinstance(glob, str) or not glob.strip().strip("/"):
            raise ConfigError(
                f"{where}: miner.fix_exclude[{number}] must be a non-empty glob string,"
                f" got {_show(glob)}"
            )
    return MinerSection(**values)


def _section(
    document: Mapping[str, Any], section: str, keys: tuple[_Key, ...], where: str
) -> dict[str, Any]:
    table = document.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {section} must be a table ([{section}]), got {_show(table)}")
    return _check_table(table, section, keys, where)


def _check_table(
    table: Mapping[str, Any], prefix: str, keys: tuple[_Key, ...], where: str
) -> dict[str, Any]:
    by_name = {key.name: key for key in keys}
    values: dict[str, Any] = {}
    for name, value in table.items():
        key = by_name.get(name)
        if key is None:
            hint = _did_you_mean(name, list(by_name), prefix=f"{prefix}.")
            raise ConfigError(f"{where}: unknown key {prefix}.{name}{hint}")
        try:
            values[name] = key.parse(value)
        except _Invalid as exc:
            raise ConfigError(f"{where}: {prefix}.{name} {exc}, got {_show(value)}") from None
    return values


def _workspaces(value: object, where: str) -> tuple[WorkspaceConfig, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(
            f"{where}: workspace must be [[workspace]] blocks (an array of tables),"
            f" got {_show(value)}"
        )
    result: list[WorkspaceConfig] = []
    seen: list[tuple[str, str, Path]] = []  # (key, real path, path) of the blocks before
    for number, table in enumerate(value, start=1):
        prefix = f"workspace[{number}]"
        values = _check_table(table, prefix, _WORKSPACE_KEYS, where)
        if "path" not in values:
            raise ConfigError(f"{where}: {prefix}.path is missing (the working copy to watch)")
        workspace = WorkspaceConfig(**values)
        real = os.path.realpath(workspace.path)
        for other_key, other, shown in seen:
            if real == other:
                raise ConfigError(
                    f"{where}: {prefix}.path {workspace.path} is the same as {other_key}.path"
                )
            inner, outer = (real, other) if len(real) > len(other) else (other, real)
            if inner.startswith(outer.rstrip(os.sep) + os.sep):
                relation = "is inside" if inner == real else "contains"
                raise ConfigError(
                    f"{where}: {prefix}.path {workspace.path} {relation} {other_key}.path"
                    f" {shown}: workspaces must not be nested"
                )
        seen.append((prefix, real, workspace.path))
        result.append(workspace)
    return tuple(result)


def _unknown_top_level(name: str) -> str:
    sections = [*_SECTIONS, _WORKSPACE]
    for section, keys in {**_SECTIONS, _WORKSPACE: _WORKSPACE_KEYS}.items():
        if name in (key.name for key in keys):
            header = f"[[{section}]]" if section == _WORKSPACE else f"[{section}]"
            return f"unknown key {name} (did you mean {name} under {header}?)"
    return f"unknown key {name}{_did_you_mean(name, sections)}"


def _did_you_mean(name: str, candidates: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def _show(value: object) -> str:
    """A value as the user wrote it in TOML, short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:57] + '..."'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def display(path: Path) -> str:
    """``path`` for a message: under the home directory as ``~/...``."""
    home = str(Path.home())
    text = str(path)
    if home != os.sep and text.startswith(home.rstrip(os.sep) + os.sep):
        return "~" + text[len(home.rstrip(os.sep)) :]
    return text


# -- writing ----------------------------------------------------------------

_HEADER = """\
# redgreen configuration.
#
# Every key is shown commented out, with its default and its meaning:
# uncomment a line to change it.  `snapshotter init PATH` adds a
# [[workspace]] block at the end; `snapshotter doctor` checks the setup.
# A running agent reads this file again when it gets SIGHUP.
"""

_LINE_WIDTH = 110
_SETTING_WIDTH = 2 + max(
    len(f"# {key.name} = {key.default}")
    for keys in (*_SECTIONS.values(), _WORKSPACE_KEYS)
    for key in keys
)

_WORKSPACE_HELP = """\
# One [[workspace]] block per working copy to watch (Mercurial or Git), e.g.
#
# [[workspace]]
"""


def default_config_text() -> str:
    """The commented default file: every key commented out, with its default and meaning."""
    parts = [_HEADER]
    for section, keys in _SECTIONS.items():
        parts.append(f"\n[{section}]\n")
        parts.extend(_commented(key) for key in keys)
    parts.append("\n" + _WORKSPACE_HELP)
    parts.extend(_commented(key) for key in _WORKSPACE_KEYS)
    return "".join(parts)


def _commented(key: _Key) -> str:
    setting = f"# {key.name} = {key.default}".ljust(_SETTING_WIDTH)
    lines = textwrap.wrap(key.meaning, width=_LINE_WIDTH - _SETTING_WIDTH - 3)
    first, *rest = lines
    pad = "#".ljust(_SETTING_WIDTH)
    return "".join([f"{setting} # {first}\n", *(f"{pad} # {line}\n" for line in rest)])


def write_default_config(path: Path | None = None) -> Path:
    """Write the commented default file if there is none; returns its path.

    Parent folders are created 0700, the file 0600.  An existing file is never touched.
    """
    target = path if path is not None else default_config_file()
    if not target.exists():
        _write(target, default_config_text(), exclusive=True)
    return target


def add_workspace(workspace: Path, build: str | None, path: Path | None = None) -> Path:
    """Append a ``[[workspace]]`` block for ``workspace`` to the config file; returns the file.

    Writes the commented default file first if there is none.  The user's text
    is kept as it is; a workspace already in the file is refused, and the new
    text must load (so a nested workspace is refused too) before it replaces
    the old one.  An empty ``build`` means none.
    """
    target = path if path is not None else default_config_file()
    where = display(target)
    try:
        root = _path(str(workspace))
    except _Invalid as exc:
        raise ConfigError(f"{where}: workspace {workspace} {exc}") from None
    write_default_config(target)
    current = load_config(target)
    for number, existing in enumerate(current.workspaces, start=1):
        if os.path.realpath(existing.path) == os.path.realpath(root):
            raise ConfigError(
                f"{where}: {root} is already a workspace (workspace[{number}]); edit the file"
                " to change it"
            )
    real = target.resolve()  # a symlinked config (dotfiles) is edited where it lives
    try:
        text = real.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"cannot read {where}: {exc}") from exc
    block = [f"path = {toml_string(str(root))}"]
    if build is not None and build.strip():
        block.append(f"build = {toml_string(build)}")
    if text and not text.endswith("\n"):
        text += "\n"
    updated = text + "\n[[workspace]]\n" + "".join(line + "\n" for line in block)
    _load_text(updated, target)  # refuses what would not load back
    _write(real, updated, exclusive=False)
    return target


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"{text!r} cannot be written to a TOML file (not UTF-8)") from exc
    # JSON string escapes are valid TOML basic-string escapes (\\uXXXX included);
    # DEL must be escaped in TOML but not in JSON.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _write(final: Path, text: str, *, exclusive: bool) -> None:
    """Put ``text`` at ``final`` whole or not at all; ``exclusive`` never replaces a file."""
    directory = final.parent
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    except OSError as exc:
        raise ConfigError(f"cannot create {display(directory)}: {exc.strerror or exc}") from exc
    mode = PRIVATE_FILE_MODE
    if not exclusive:
        with suppress(OSError):
            mode = final.stat().st_mode & 0o777
    temporary = directory / f".{final.name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(fd, mode)  # whatever the umask
            file.write(text)
            file.flush()
            os.fsync(fd)
        if exclusive:
            with suppress(FileExistsError):  # someone else wrote one first: theirs stays
                os.link(temporary, final)
        else:
            os.replace(temporary, final)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise ConfigError(f"cannot write {display(final)}: {exc.strerror or exc}") from exc
    finally:
        with suppress(OSError):
            temporary.unlink()


__all__ = [
    "AgentSettings",
    "Config",
    "MinerSection",
    "RetentionSettings",
    "WorkspaceConfig",
    "add_workspace",
    "default_config_text",
    "display",
    "format_size",
    "load_config",
    "parse_size",
    "write_default_config",
]
