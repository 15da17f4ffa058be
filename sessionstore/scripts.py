"""The Lua scripts, read once from the package (wheel) or the repo's ``lua/`` (editable).

Each script is the shared ``_prelude.lua`` followed by its own file: static text, never
built by interpolation. Of the prelude's functions a script carries only those it calls,
directly or through another (every name and constant stays): Redis runs a script's whole
top-level chunk on each call, and defining every helper cost each call about 2 µs. Scripts
run by EVALSHA and are reloaded with EVAL on NOSCRIPT.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import NamedTuple

__all__ = ["SCRIPTS", "SCRIPT_SOURCE_DIR", "Script"]

_NAMES = (
    "check",
    "create",
    "feed",
    "history",
    "list",
    "marker",
    "ratelimit",
    "refresh",
    "revoke",
    "revoke_many",
    "rotate",
    "step_up",
    "update",
)


class Script(NamedTuple):
    """One atomic operation: its name, full source and SHA1 (for EVALSHA)."""

    name: str
    source: str
    sha: str


def _source_dir() -> Traversable:
    packaged = resources.files(__package__ or "sessionstore") / "_lua"
    if packaged.is_dir():
        return packaged
    # Editable install or a source checkout: the repo's top-level lua/ folder.
    return Path(__file__).resolve().parent.parent / "lua"


_FUNCTION = re.compile(r"local function (\w+)")
_WORD = re.compile(r"\w+")


def _parts(prelude: str) -> list[tuple[str | None, str]]:
    """The prelude cut before each top-level ``local``: (the function it defines, or None
    for a name or constant, and its text). Comments and blank lines before a definition
    go with it."""
    parts: list[tuple[str | None, str]] = []
    pending: list[str] = []
    for line in prelude.splitlines(keepends=True):
        if line.startswith("local "):
            defined = _FUNCTION.match(line)
            parts.append((defined[1] if defined else None, "".join(pending) + line))
            pending = []
        elif not parts or not line.strip() or line.startswith("--"):
            pending.append(line)  # the header, or what comes before the next definition
        else:
            name, text = parts[-1]
            parts[-1] = (name, text + "".join(pending) + line)
            pending = []
    if pending:
        parts.append((None, "".join(pending)))
    return parts


def _words(lua: str) -> set[str]:
    """The words of ``lua``'s code (comments left out)."""
    return {word for line in lua.splitlines() for word in _WORD.findall(line.split("--")[0])}


def _with_prelude(parts: list[tuple[str | None, str]], body: str) -> str:
    """``body`` after the prelude's names and the functions it calls, in prelude order."""
    functions = {name: text for name, text in parts if name is not None}
    needed: set[str] = set()
    words = _words(body)
    while fresh := (words & functions.keys()) - needed:
        needed |= fresh
        words = {word for name in fresh for word in _words(functions[name])}
    kept = (text for name, text in parts if name is None or name in needed)
    return "".join(kept) + "\n" + body


def _load() -> tuple[dict[str, Script], str]:
    folder = _source_dir()
    parts = _parts(folder.joinpath("_prelude.lua").read_text("utf-8"))
    scripts = {}
    for name in _NAMES:
        source = _with_prelude(parts, folder.joinpath(f"{name}.lua").read_text("utf-8"))
        sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        scripts[name] = Script(name, source, sha)
    return scripts, str(Path(str(folder)).resolve())


SCRIPTS, SCRIPT_SOURCE_DIR = _load()
