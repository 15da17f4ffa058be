"""A tiny user-agent parser for the demo: browser and OS with their major versions.

It knows the common browsers and systems only, enough to label a device card; anything
else is "Unknown browser" / "unknown OS" and the raw string stays one click away.
"""

from __future__ import annotations

import re

import msgspec

__all__ = ["UserAgent", "parse"]

# Order matters: Edge and Opera also say "Chrome/", Chrome also says "Safari/".
_BROWSERS = (
    ("Edge", re.compile(r"\bEdg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"\bOPR/(\d+)")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/(\d+)")),
    ("Firefox", re.compile(r"\b(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"\b(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"\bVersion/(\d+)[.\d]* (?:Mobile/\S+ )?Safari/")),
    ("curl", re.compile(r"^curl/(\d+)")),
)
_SYSTEMS = (
    ("Android", re.compile(r"\bAndroid (\d+)?")),
    ("iOS", re.compile(r"\b(?:iPhone|iPad|iPod)\b.*?\bOS (\d+)?")),
    ("Windows", re.compile(r"\bWindows\b()")),
    ("ChromeOS", re.compile(r"\bCrOS\b()")),
    ("macOS", re.compile(r"\bMac OS X\b()|\bMacintosh\b()")),
    ("Linux", re.compile(r"\bLinux\b()|\bX11\b()")),
)


class UserAgent(msgspec.Struct, frozen=True, kw_only=True):
    """What a user agent says about itself: browser and OS, each with a major version."""

    browser: str
    system: str

    def __str__(self) -> str:
        return f"{self.browser} on {self.system}"


def _first(table: tuple[tuple[str, re.Pattern[str]], ...], text: str) -> str | None:
    for name, pattern in table:
        found = pattern.search(text)
        if found:
            version = next((group for group in found.groups() if group), "")
            return f"{name} {version}".strip()
    return None


def parse(user_agent: str) -> UserAgent:
    """Browser family and OS of a user agent, each with its major version where given."""
    browser = _first(_BROWSERS, user_agent) or "Unknown browser"
    system = _first(_SYSTEMS, user_agent) or "unknown OS"
    return UserAgent(browser=browser, system=system)
