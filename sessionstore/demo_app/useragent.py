"""A tiny user-agent parser for the demo: browser and OS with their major versions.

It reads device binding's table of families (``sessionstore._engine.useragent``), so a card
names the family binding compares, and only tells apart two brands binding counts in a
wider family (Samsung Internet is Chrome, ChromeOS is Linux). Anything else is
"Unknown browser" / "unknown OS" and the raw string stays one click away.
"""

from __future__ import annotations

import re

import msgspec

from sessionstore._engine.useragent import BROWSERS, SYSTEMS, Table, first

__all__ = ["UserAgent", "parse"]

# Brands within a family: (family, brand, pattern with the brand's major version).
_BRANDS = (
    ("Chrome", "Samsung Internet", re.compile(r"\bSamsungBrowser/(\d+)")),
    ("Linux", "ChromeOS", re.compile(r"\bCrOS\b()")),
)


class UserAgent(msgspec.Struct, frozen=True, kw_only=True):
    """What a user agent says about itself: browser and OS, each with a major version."""

    browser: str
    system: str

    def __str__(self) -> str:
        return f"{self.browser} on {self.system}"


def _label(table: Table, user_agent: str) -> str | None:
    found = first(table, user_agent)
    if found is None:
        return None
    name, version = found
    for family, brand, pattern in _BRANDS:
        branded = pattern.search(user_agent) if family == name else None
        if branded:
            name, version = brand, branded.group(1)
    return f"{name} {version}".strip()


def parse(user_agent: str) -> UserAgent:
    """Browser family and OS of a user agent, each with its major version where given."""
    browser = _label(BROWSERS, user_agent) or "Unknown browser"
    system = _label(SYSTEMS, user_agent) or "unknown OS"
    return UserAgent(browser=browser, system=system)
