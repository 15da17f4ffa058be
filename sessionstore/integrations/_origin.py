"""The Origin rule of cookie-authenticated WebSocket handshakes (pure code, no framework).

A browser attaches cookies to a WebSocket handshake whatever page opens it, and a handshake
carries no CSRF token: the ``Origin`` header (which browsers always send on WebSocket
handshakes and scripts cannot forge) is the only thing telling the victim's own page from
a foreign one. The rule: the Origin must name the same host and port as the ``Host``
header, or be one of the allowed origins. A missing or opaque (``null``) Origin is refused:
browsers always send one, so it is a non-browser client, which should use a Bearer token.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from sessionstore.errors import InvalidInput

__all__ = ["OriginPolicy", "parse_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]  # scheme, lowercase host, port (the default one filled in)


def parse_origin(text: str) -> Origin | None:
    """``scheme://host[:port]`` as (scheme, host, port); None for anything else (``null``)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (
        scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    return scheme, parts.hostname, _DEFAULT_PORTS[scheme] if port is None else port


def _host(header: str) -> tuple[str, int | None] | None:
    """The ``Host`` header as (lowercase host, port or None)."""
    try:
        parts = urlsplit("//" + header.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path:
        return None
    return parts.hostname, port


class OriginPolicy:
    """Decides whether a handshake's ``Origin`` may use the ambient cookie."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        if isinstance(allowed, str):
            raise InvalidInput("allowed_origins must be a list of origins, not one string")
        parsed: set[Origin] = set()
        for text in allowed:
            origin = parse_origin(text) if isinstance(text, str) else None
            if origin is None:
                raise InvalidInput(
                    f"allowed origin {text!r} must be scheme://host[:port] (http or https)"
                )
            parsed.add(origin)
        self.allowed = frozenset(parsed)

    def allows(self, origin: str | None, host: str | None, *, secure: bool) -> bool:
        """Whether ``origin`` is the ``host`` itself or an allowed origin.

        ``secure`` (the handshake came over ``wss``) also asks for an ``https`` Origin: a
        plain-HTTP page of the same host could be a network attacker's. Behind a proxy that
        ends TLS the handshake looks like ``ws`` and either scheme passes.
        """
        found = parse_origin(origin) if origin else None
        if found is None:
            return False
        if found in self.allowed:
            return True
        target = _host(host) if host else None
        if target is None or (secure and found[0] != "https"):
            return False
        name, port = target
        # A Host without a port names the default port of the scheme the page used.
        return found[1] == name and found[2] == (_DEFAULT_PORTS[found[0]] if port is None else port)
