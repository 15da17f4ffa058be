"""The Lua scripts, read once from the package (wheel) or the repo's ``lua/`` (editable).

Each script is the shared ``_prelude.lua`` followed by its own file: static text, never
built by interpolation. Scripts run by EVALSHA and are reloaded with EVAL on NOSCRIPT.
"""

from __future__ import annotations

import hashlib
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


def _load() -> tuple[dict[str, Script], str]:
    folder = _source_dir()
    prelude = folder.joinpath("_prelude.lua").read_text("utf-8")
    scripts = {}
    for name in _NAMES:
        source = prelude + "\n" + folder.joinpath(f"{name}.lua").read_text("utf-8")
        sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        scripts[name] = Script(name, source, sha)
    return scripts, str(Path(str(folder)).resolve())


SCRIPTS, SCRIPT_SOURCE_DIR = _load()
