"""Secrets out of text: a URL rendered without its passwords, and the passwords it holds.

Works on every URL form ``from_url`` takes (one host, ``unix://``, comma-separated cluster
and sentinel hosts) without parsing hosts or ports, so a URL that is wrong in any other
way is still masked, never echoed.
"""

from __future__ import annotations

from urllib.parse import unquote

__all__ = ["MASK", "mask_text", "mask_url", "url_secrets"]

MASK = "***"


def _split(url: str) -> tuple[str, str, str, str]:
    """(scheme + "://", userinfo, the rest up to the query, query); "" where absent."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    head, _, query = rest.partition("?")
    userinfo, at, hosts = head.rpartition("@")
    return (scheme + sep, userinfo if at else "", hosts if at else head, query)


def _secret_option(name: str) -> bool:
    # password, sentinel_password, ...: any option that names a password holds one
    return "password" in unquote(name).lower()


def mask_url(url: str) -> str:
    """``url`` with every password (``user:pass@`` and ``?password=``) replaced by ``***``."""
    prefix, userinfo, hosts, query = _split(url)
    if userinfo:
        user, colon, _ = userinfo.partition(":")
        userinfo = f"{user}:{MASK}@" if colon else f"{user}@"
    if query:
        options = []
        for option in query.split("&"):
            name, equals, _ = option.partition("=")
            options.append(f"{name}={MASK}" if equals and _secret_option(name) else option)
        query = "?" + "&".join(options)
    return f"{prefix}{userinfo}{hosts}{query}"


def url_secrets(url: str) -> set[str]:
    """The passwords ``url`` holds, as written and percent-decoded."""
    _, userinfo, _, query = _split(url)
    found = set()
    _, colon, password = userinfo.partition(":")
    if colon:
        found |= {password, unquote(password)}
    for option in query.split("&") if query else ():
        name, equals, value = option.partition("=")
        if equals and _secret_option(name):
            found |= {value, unquote(value)}
    return {s for s in found if s}


def mask_text(text: str, url: str) -> str:
    """``text`` with ``url`` masked and every password of ``url`` replaced by ``***``."""
    text = text.replace(url, mask_url(url))
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
