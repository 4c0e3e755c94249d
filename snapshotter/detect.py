"""Propose a build command for a working copy from the marker files at its root.

The proposal is only a proposal: ``snapshotter init`` shows it and the user
confirms it or types another, and only then is it written to the user's own
config.  This module only *reads* a few well-known marker files at the root
(never a file that names a command, such as a ``.redgreen.toml`` shipped in
the repository), and never runs anything.

The first rule that matches wins, in this order:

    dune-project                            dune build
    Cargo.toml                              cargo check
    Makefile, makefile, GNUmakefile         make
    go.mod                                  go build ./...
    package.json using TypeScript           npx tsc --noEmit
    pyproject.toml or setup.py              mypy . when mypy is configured, else compileall

dune and Cargo come first because they are whole-project build systems whose
check is fast and authoritative; a Makefile next to them is usually a wrapper.
In Go, TypeScript and Python projects a Makefile is usually the project's own
entry point (code generation, several languages), so it wins over the
language's default.  For Python, mypy is proposed only when the project
configured it (``[tool.mypy]`` in pyproject.toml, or a ``mypy.ini``): mypy on a
project that never ran it is red for reasons nobody is fixing, which would
hide the breakages that matter.  Otherwise ``compileall`` catches syntax
errors, skipping hidden folders (``.venv``, ``.tox``) whose files are not the
project's.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Marker files are small; a bigger one is not what we are looking for.
_MAX_MARKER_BYTES = 1024 * 1024

COMPILEALL = "python3 -m compileall -q -x '/\\.' ."


def propose_build(root: Path) -> str | None:
    """A build command for the working copy at ``root``, or None when nothing is recognised."""
    for rule in _RULES:
        command = rule(root)
        if command is not None:
            return command
    return None


def _dune(root: Path) -> str | None:
    return "dune build" if _is_file(root / "dune-project") else None


def _cargo(root: Path) -> str | None:
    return "cargo check" if _is_file(root / "Cargo.toml") else None


def _make(root: Path) -> str | None:
    names = ("GNUmakefile", "makefile", "Makefile")
    return "make" if any(_is_file(root / name) for name in names) else None


def _go(root: Path) -> str | None:
    return "go build ./..." if _is_file(root / "go.mod") else None


def _typescript(root: Path) -> str | None:
    if not _is_file(root / "package.json"):
        return None
    if _is_file(root / "tsconfig.json"):
        return "npx tsc --noEmit"
    package = _read_json(root / "package.json")
    for section in ("dependencies", "devDependencies"):
        deps = package.get(section)
        if isinstance(deps, dict) and "typescript" in deps:
            return "npx tsc --noEmit"
    return None


def _python(root: Path) -> str | None:
    pyproject = root / "pyproject.toml"
    if not _is_file(pyproject) and not _is_file(root / "setup.py"):
        return None
    tool = _read_toml(pyproject).get("tool") if _is_file(pyproject) else None
    mypy = tool.get("mypy") if isinstance(tool, dict) else None
    if isinstance(mypy, dict):
        # with files/packages/modules configured, plain `mypy` checks what the project chose
        chosen = any(key in mypy for key in ("files", "packages", "modules"))
        return "mypy" if chosen else "mypy ."
    if _is_file(root / "mypy.ini") or _is_file(root / ".mypy.ini"):
        return "mypy ."
    return COMPILEALL


_RULES: tuple[Callable[[Path], str | None], ...] = (
    _dune,
    _cargo,
    _make,
    _go,
    _typescript,
    _python,
)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _read_text(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_MARKER_BYTES + 1)
    except OSError:
        return None
    if len(data) > _MAX_MARKER_BYTES:
        return None
    return data.decode("utf-8", errors="replace")


def _read_json(path: Path) -> dict[str, Any]:
    text = _read_text(path)
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _read_toml(path: Path) -> dict[str, Any]:
    text = _read_text(path)
    try:
        return tomllib.loads(text) if text is not None else {}
    except tomllib.TOMLDecodeError:
        return {}
