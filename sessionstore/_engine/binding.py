"""Device binding: does a request's IP and user agent still match its session's device?

Deliberately coarse, so that ordinary churn is not a mismatch: IPs match on their network
(IPv4 /24, IPv6 /64; an IPv4-mapped IPv6 address is its IPv4) and user agents on their
family (browser and OS, not versions). For degraded mode an access token carries keyed
digests of both (``digest``), never the raw values.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Literal

from sessionstore._engine import useragent
from sessionstore._jose import strict

__all__ = [
    "digest",
    "ip_address",
    "ip_prefix",
    "mismatch",
    "same_network",
    "token_mismatch",
    "ua_family",
]

_DIGEST_BYTES = 16

Field = Literal["ip", "user_agent"]


def ua_family(user_agent: str) -> tuple[str, str]:
    """(browser family, OS family) of a user agent; "other" where unknown."""
    return useragent.family(user_agent)


def ip_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``ip`` names, an IPv4-mapped IPv6 one as its IPv4; None if unparsable.

    A dual-stack socket reports an IPv4 peer as ``::ffff:a.b.c.d``: the same client.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ip_prefix(ip: str) -> str:
    """The network an IP is bound to: its /24 (IPv4) or /64 (IPv6); unparsable ones as given."""
    address = ip_address(ip)
    if address is None:
        return ip
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def same_network(a: str, b: str) -> bool:
    """Whether two IPs share a /24 (IPv4) or /64 (IPv6); unparsable ones must be equal."""
    return ip_prefix(a) == ip_prefix(b)


def mismatch(
    stored_ip: str, stored_ua: str, ip: str | None, user_agent: str | None
) -> Field | None:
    """The first field that differs, or None.

    An IP unknown on either side is not compared (the application passes the peer address;
    a client cannot leave it out). A user agent is: a request without one, on a session
    that has one, is a mismatch, or leaving out the header would skip the check.
    """
    if ip and stored_ip and not same_network(stored_ip, ip):
        return "ip"
    if stored_ua and (not user_agent or ua_family(stored_ua) != ua_family(user_agent)):
        return "user_agent"
    return None


def digest(key: bytes, session_id: str, field: Field, value: str) -> str:
    """The keyed digest a token carries for one device field (the coarse form of ``value``).

    The session id is mixed in, so two tokens of one device cannot be linked by their
    digests; only holders of ``key`` can compute or test one.
    """
    coarse = ip_prefix(value) if field == "ip" else "/".join(ua_family(value))
    message = f"{field}\x00{session_id}\x00{coarse}".encode("utf-8", "surrogatepass")
    return strict.b64u_encode(hmac.digest(key, message, "sha256")[:_DIGEST_BYTES])


def token_mismatch(
    key: bytes, session_id: str, bound: dict[str, str], ip: str | None, user_agent: str | None
) -> Field | None:
    """``mismatch`` against the digests a token carries (``bound``: field -> digest)."""
    expected = bound.get("ip")
    if (
        ip
        and expected is not None
        and not hmac.compare_digest(digest(key, session_id, "ip", ip), expected)
    ):
        return "ip"
    expected = bound.get("ua")
    if expected is not None and (
        not user_agent
        or not hmac.compare_digest(digest(key, session_id, "user_agent", user_agent), expected)
    ):
        return "user_agent"
    return None
