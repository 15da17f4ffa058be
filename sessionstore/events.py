"""Typed events a store reports to its ``on_event`` hook (metrics, audit logs, alerts).

A hook is any ``Callable[[Event], None]``; it runs inline, so keep it quick. An exception
raised by a hook is logged on the ``sessionstore`` logger and never breaks the operation.
Events carry ids and reasons, never tokens or keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

import msgspec

__all__ = [
    "Adopted",
    "Created",
    "DataLost",
    "DegradedEntered",
    "DegradedLeft",
    "DeviceMismatch",
    "Event",
    "EventHook",
    "Expired",
    "LoginRefused",
    "Refreshed",
    "ReplicationLag",
    "ReuseDetected",
    "RevocationEntry",
    "Revoked",
    "Rotated",
    "SteppedUp",
    "TouchFailed",
    "ValidationFailed",
    "emit",
    "fanout",
]

logger = logging.getLogger("sessionstore")

RevokeReason = Literal[
    "revoke", "device", "user", "logout", "evicted", "reuse", "rotated", "password"
]
"""Why sessions were revoked: ``store.revoke`` (an admin or the user, one session), a device,
the user's sessions (sign out everywhere; ``"password"``: the same after a password change),
``logout``, evicted at the session limit, refresh token reuse, ``"rotated"``: the old id of
a ``store.rotate``."""


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of every event: ``at`` is the Unix time it happened."""

    at: float = msgspec.field(default_factory=time.time)


class Created(Event, frozen=True, kw_only=True):
    """A session was created (login or create). ``new_device``: no sign-in in the user's
    history showed this device (see ``TokenPair.new_device``); send "new sign-in" mail."""

    user_id: str
    session_id: str
    device_id: str
    new_device: bool = False


class Adopted(Event, frozen=True, kw_only=True):
    """A legacy token (``Config.legacy_tokens``) was seen first: a session was made for it.

    ``issued_at``/``expires_at`` are the legacy token's; the token itself is never carried.
    """

    user_id: str
    session_id: str
    device_id: str
    issued_at: int
    expires_at: int


class Revoked(Event, frozen=True, kw_only=True):
    """Sessions were revoked; ``reason`` says by what."""

    user_id: str
    session_ids: tuple[str, ...]
    reason: RevokeReason


class RevocationEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the revocation feed (``store.revocations()``): what was revoked, never
    a token. ``id`` is its stream id (``"<ms>-<seq>"``): pass it as ``since`` to resume
    after it; ``at`` is the Unix time it was appended (the server's clock).
    ``security_events``: with ``Config.revocation_feed_sets``, one signed Security Event
    Token (RFC 8417, CAEP ``session-revoked``) per session id, in the same order."""

    id: str
    user_id: str
    session_ids: tuple[str, ...]
    reason: RevokeReason
    at: float
    security_events: tuple[str, ...] = ()


class Expired(Event, frozen=True, kw_only=True):
    """A session was found past its idle or absolute deadline."""

    user_id: str
    session_id: str


class Refreshed(Event, frozen=True, kw_only=True):
    """A refresh token was rotated (``grace``: a retry answered with the current one)."""

    user_id: str
    session_id: str
    generation: int
    grace: bool


class SteppedUp(Event, frozen=True, kw_only=True):
    """A session recorded a new proof of identity (``step_up``): its method and level."""

    user_id: str
    session_id: str
    method: str
    level: int


class Rotated(Event, frozen=True, kw_only=True):
    """A session moved to a new id (``rotate``): ``previous_session_id`` is revoked."""

    user_id: str
    session_id: str
    previous_session_id: str


class LoginRefused(Event, frozen=True, kw_only=True):
    """A login met the user's session limit and was refused (``session_limit="refuse"``):
    ``session_ids`` are the user's live sessions."""

    user_id: str
    limit: int
    session_ids: tuple[str, ...]


class ReuseDetected(Event, frozen=True, kw_only=True):
    """A spent refresh token came back: the session was revoked. ``previous_session_id``:
    the token named that id, which ``rotate`` had moved to ``session_id`` (None: the same)."""

    user_id: str
    session_id: str
    previous_session_id: str | None = None


class ValidationFailed(Event, frozen=True, kw_only=True):
    """``validate`` refused a token; ``reason`` is the error class name."""

    reason: str
    user_id: str | None = None
    session_id: str | None = None


class DegradedEntered(Event, frozen=True, kw_only=True):
    """Redis became unreachable: validation answers from tokens alone (``fallback``
    ``"stateless"``), or refuses every token with ``StoreUnavailable`` (``"deny"``)."""

    fallback: Literal["stateless", "deny"] = "stateless"


class DegradedLeft(Event, frozen=True, kw_only=True):
    """Redis answers again after ``seconds`` of outage."""

    seconds: float


class DeviceMismatch(Event, frozen=True, kw_only=True):
    """A request's IP or user agent differs from its session's device."""

    user_id: str
    session_id: str
    field: Literal["ip", "user_agent"]
    enforced: bool


class ReplicationLag(Event, frozen=True, kw_only=True):
    """A revocation was acknowledged by fewer replicas than ``revoke_wait_replicas`` asks."""

    wanted: int
    acked: int


class TouchFailed(Event, frozen=True, kw_only=True):
    """A validation was due to extend its session, and Redis refused the write (e.g. memory
    full under noeviction): the validation answered from its read, the session was not
    extended. ``reason`` is the server's error."""

    user_id: str
    session_id: str
    reason: str


class DataLost(Event, frozen=True, kw_only=True):
    """The store's data set vanished (e.g. a restart without persistence)."""

    detail: str


EventHook = Callable[[Event], None]


def emit(hook: EventHook | None, event: Event) -> None:
    """Deliver ``event`` to ``hook``; a failing hook is logged, never raised."""
    if hook is None:
        return
    try:
        hook(event)
    except Exception:
        logger.exception("sessionstore event hook failed on %s", type(event).__name__)


def fanout(*hooks: EventHook) -> EventHook:
    """One hook that delivers every event to each of ``hooks`` in turn."""

    def deliver(event: Event) -> None:
        for hook in hooks:
            emit(hook, event)

    return deliver
