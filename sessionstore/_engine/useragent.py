"""The one table of user-agent patterns: browser and OS families, with their major versions.

Device binding compares families (``family``): its answers feed the keyed digests in
access tokens, so a pattern's match/no-match must never change (tokens already issued
would stop matching). Each pattern's group, optional, only reads the major version for
labels (the demo's device cards); it never decides whether a pattern matches.
"""

from __future__ import annotations

import re

__all__ = ["BROWSERS", "SYSTEMS", "Table", "family", "first"]

Table = tuple[tuple[str, re.Pattern[str]], ...]

# Order matters: Edge and Opera also say "Chrome/", Chrome also says "Safari/".
BROWSERS: Table = (
    ("Edge", re.compile(r"\bEdg(?:e|A|iOS)?/(\d+)?")),
    ("Opera", re.compile(r"\bOPR/(\d+)?|\bOpera\b")),
    ("Firefox", re.compile(r"\b(?:Firefox|FxiOS)/(\d+)?")),
    ("Chrome", re.compile(r"\b(?:Chrome|CriOS)/(\d+)?")),
    ("Safari", re.compile(r"(?:\bVersion/(\d+)[.\d]* (?:Mobile/\S+ )?)?\bSafari/")),
    ("curl", re.compile(r"^curl/(\d+)?")),
)
SYSTEMS: Table = (
    ("Android", re.compile(r"\bAndroid\b(?: (\d+))?")),
    ("iOS", re.compile(r"\b(?:iPhone|iPad|iPod)\b(?:.*?\bOS (\d+))?")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("macOS", re.compile(r"\bMac OS X\b|\bMacintosh\b")),
    ("Linux", re.compile(r"\bLinux\b|\bX11\b")),
)


def first(table: Table, user_agent: str) -> tuple[str, str] | None:
    """(family, major version or "") of the first pattern of ``table`` that matches."""
    for name, pattern in table:
        found = pattern.search(user_agent)
        if found:
            return name, next((group for group in found.groups() if group), "")
    return None


def family(user_agent: str) -> tuple[str, str]:
    """(browser family, OS family) of a user agent; "other" where unknown."""
    browser = first(BROWSERS, user_agent)
    system = first(SYSTEMS, user_agent)
    return (browser[0] if browser else "other"), (system[0] if system else "other")
