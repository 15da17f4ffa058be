"""Device binding: does a request's IP and user agent still match its session's device?

Deliberately coarse, so that ordinary churn is not a mismatch: IPs match on their network
(IPv4 /24, IPv6 /64) and user agents on their family (browser and OS, not versions).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

__all__ = ["mismatch", "same_network", "ua_family"]

_BROWSERS = (
    ("Edge", re.compile(r"\bEdg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"\bOPR/|\bOpera\b")),
    ("Firefox", re.compile(r"\bFirefox/|\bFxiOS/")),
    ("Chrome", re.compile(r"\bChrome/|\bCriOS/")),
    ("Safari", re.compile(r"\bSafari/")),
    ("curl", re.compile(r"^curl/")),
)
_SYSTEMS = (
    ("Android", re.compile(r"\bAndroid\b")),
    ("iOS", re.compile(r"\b(?:iPhone|iPad|iPod)\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("macOS", re.compile(r"\bMac OS X\b|\bMacintosh\b")),
    ("Linux", re.compile(r"\bLinux\b|\bX11\b")),
)


def ua_family(user_agent: str) -> tuple[str, str]:
    """(browser family, OS family) of a user agent; "other" where unknown."""
    browser = next((name for name, rx in _BROWSERS if rx.search(user_agent)), "other")
    system = next((name for name, rx in _SYSTEMS if rx.search(user_agent)), "other")
    return browser, system


def same_network(a: str, b: str) -> bool:
    """Whether two IPs share a /24 (IPv4) or /64 (IPv6); unparsable ones must be equal."""
    try:
        left, right = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return a == b
    if left.version != right.version:
        return False
    prefix = 24 if left.version == 4 else 64
    network = ipaddress.ip_network(f"{left}/{prefix}", strict=False)
    return right in network


def mismatch(
    stored_ip: str, stored_ua: str, ip: str | None, user_agent: str | None
) -> Literal["ip", "user_agent"] | None:
    """The first field that differs (fields unknown on either side are not compared)."""
    if ip and stored_ip and not same_network(stored_ip, ip):
        return "ip"
    if user_agent and stored_ua and ua_family(stored_ua) != ua_family(user_agent):
        return "user_agent"
    return None
