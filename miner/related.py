"""Is a file a build error names plausibly related to the files a fix touches?

The ``fix_unrelated_to_error`` filter asks this for every file the red build's
errors name.  ``error_file`` (relative to the workspace) and a fix path ``p`` are
plausibly related when any of these holds:

1. **same file**: equal, or one ends with ``/`` + the other (a diagnostic path
   relative to a subdirectory);
2. **same module**: equal basenames up to their first dot, ignoring case
   (``shape.ml``/``shape.mli``, ``util.c``/``util.h``, ``Calc.java``/``calc.java``);
3. **build file**: one of them is a build description (``dune``, ``Makefile``,
   ``Cargo.toml``, ``package.json``, ...) whose directory contains the other;
4. **reference**: the red content of one names the other, by a cheap textual
   check chosen by the referring file's language (:data:`REFERENCES`): C's
   ``#include "x.h"``, OCaml's module ``X`` (``open X``, ``X.f``), Python's
   ``import x`` / ``from x import``, Rust's ``mod x`` / ``x::``, JavaScript's and
   TypeScript's ``from './x'`` / ``require('./x')``, Go's same directory or import
   path; other languages: the other file's name appears in the text.

The error file referring to the fix file is the common case (an error at a use
site, a fix in the definition); the other direction (a fix at the use site of a
definition the error points at) counts too.  Contents are the red state's.

An error file whose red content is unknown (unchanged from the base and recorded
nowhere in the dataset) cannot be checked for references, and the common case
above looks exactly like that (a definition changed and fixed, its untouched
caller reporting the error), so it counts as plausibly related: the filter only
speaks when it has read what it judges.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence

BUILD_FILES = frozenset(
    {
        "dune",
        "dune-project",
        "Makefile",
        "makefile",
        "GNUmakefile",
        "CMakeLists.txt",
        "meson.build",
        "BUILD",
        "BUILD.bazel",
        "Cargo.toml",
        "build.rs",
        "package.json",
        "tsconfig.json",
        "go.mod",
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "tox.ini",
        "conftest.py",
    }
)


def _stem(path: str) -> str:
    return posixpath.basename(path).split(".", 1)[0]


def _c_includes(text: str, target: str) -> bool:
    name = posixpath.basename(target)
    pattern = rf"#\s*include\s*[<\"](?:[^>\"\n]*/)?{re.escape(name)}[>\"]"
    return re.search(pattern, text) is not None


def _ocaml_module(text: str, target: str) -> bool:
    stem = _stem(target)
    if not stem:
        return False
    module = stem[:1].upper() + stem[1:]
    return re.search(rf"\b{re.escape(module)}\b", text) is not None


def _python_import(text: str, target: str) -> bool:
    stem = re.escape(_stem(target))
    pattern = rf"^[ \t]*(?:from|import)\b[^\n]*\b{stem}\b"
    return re.search(pattern, text, re.MULTILINE) is not None


def _rust_module(text: str, target: str) -> bool:
    stem = re.escape(_stem(target))
    return re.search(rf"\bmod\s+{stem}\b|\b{stem}::", text) is not None


def _js_import(text: str, target: str) -> bool:
    stem = re.escape(_stem(target))
    pattern = rf"(?:from|require\(|import\()\s*['\"][^'\"\n]*\b{stem}(?:\.\w+)?['\"]"
    return re.search(pattern, text) is not None


def _go_import(text: str, target: str) -> bool:
    directory = posixpath.basename(posixpath.dirname(target))
    if not directory:
        return False
    return re.search(rf"\"[^\"\n]*/{re.escape(directory)}\"", text) is not None


def _names_file(text: str, target: str) -> bool:
    return posixpath.basename(target) in text


# the referring file's extension -> does its text refer to the target path?
REFERENCES: dict[str, Callable[[str, str], bool]] = {
    **dict.fromkeys(
        (".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".m", ".mm"), _c_includes
    ),
    **dict.fromkeys((".ml", ".mli", ".mll", ".mly", ".re", ".rei"), _ocaml_module),
    **dict.fromkeys((".py", ".pyi"), _python_import),
    ".rs": _rust_module,
    **dict.fromkeys((".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts"), _js_import),
    ".go": _go_import,
}


def refers_to(path: str, content: bytes, target: str) -> bool:
    """Whether ``content`` (of ``path``) names ``target`` in its language's way."""
    text = content.decode("utf-8", errors="replace")
    check = REFERENCES.get(posixpath.splitext(path)[1].lower(), _names_file)
    return check(text, target)


def _same_file(a: str, b: str) -> bool:
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def _contains(build_file: str, other: str) -> bool:
    if posixpath.basename(build_file) not in BUILD_FILES:
        return False
    directory = posixpath.dirname(build_file)
    return not directory or other.startswith(directory + "/")


def _same_package(a: str, b: str) -> bool:
    # Go: the files of one directory are one package
    return a.endswith(".go") and b.endswith(".go") and posixpath.dirname(a) == posixpath.dirname(b)


def related(error_file: str, fix_path: str, contents: Mapping[str, bytes | None]) -> bool:
    """Rules 1 to 4 of the module docstring for one pair."""
    if _same_file(error_file, fix_path):
        return True
    if _stem(error_file).lower() == _stem(fix_path).lower():
        return True
    if _contains(error_file, fix_path) or _contains(fix_path, error_file):
        return True
    if _same_package(error_file, fix_path):
        return True
    error_content = contents.get(error_file)
    if error_content is not None and refers_to(error_file, error_content, fix_path):
        return True
    fix_content = contents.get(fix_path)
    return fix_content is not None and refers_to(fix_path, fix_content, error_file)


def workspace_file(file: str | None) -> str | None:
    """``file`` if it names a file inside the workspace (relative, no ``..``), else None."""
    if not file or file.startswith(("<", "/")) or re.match(r"[A-Za-z]:[\\/]", file):
        return None
    normal = posixpath.normpath(file)
    if normal == "." or normal.startswith("../") or normal == "..":
        return None
    return normal


def any_related(
    error_files: Sequence[str], fix_paths: Sequence[str], contents: Mapping[str, bytes | None]
) -> bool:
    """Whether some error file is plausibly related to some fix path (or unknown)."""
    return any(
        contents.get(e) is None or any(related(e, p, contents) for p in fix_paths)
        for e in error_files
    )
