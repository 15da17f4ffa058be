"""The revocation feed: the append that follows every revocation, and the reads of it.

Every revocation (``events.RevokeReason``) is appended to one Redis Stream per namespace
(``keys.revocations_key``) as one entry: the user, the session ids, the reason, the time.
Never a token, a refresh secret or anything derived from one.

Why the append is a call of its own, after the revoking script, on every deployment: the
revoking scripts run on the user's hash slot, and one stream per namespace lives in a slot
of its own. On Redis Cluster a script may not write a key of another slot (nor another
node), so the scripts cannot append there; a stream per user slot would be no feed. One
path for every deployment, then: when a revoking call's chain (the script, its follow-ups,
the confirmation read) has settled its outcome, one more call appends the entry
(``lua/feed.lua``: XADD with ``MINID ~`` trimming and the key's TTL renewed, atomically),
and only then is the outcome returned (or its error raised). Standalone and Sentinel
deployments could append inside the script, atomically; they do not, so that the feed
holds the same guarantee and the same code everywhere.

The guarantee: an entry is appended at most once per revocation, after the revocation is
in Redis. It is lost when the process dies (or Redis becomes unreachable, or refuses the
append) between the two round trips; a refused append is logged on the ``sessionstore``
logger and never fails the revocation, which stands. A caller that saw ``revoke`` return
knows the entry is in the stream (or was logged as lost). Readers that must not miss a
revocation also keep the channel (``keys.revoked_channel``) or re-read the user's sessions.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar, get_args

from sessionstore._engine.call import Arg, Call
from sessionstore._engine.schema import FEED_AT
from sessionstore.errors import InvalidInput
from sessionstore.events import RevocationEntry, RevokeReason
from sessionstore.keys import revocations_key
from sessionstore.models import Config
from sessionstore.scripts import SCRIPTS

__all__ = [
    "REASON",
    "SECURITY_EVENTS",
    "SESSIONS",
    "USER",
    "Feed",
    "Signer",
    "decode",
    "fed",
    "first_page",
    "next_page",
]

logger = logging.getLogger("sessionstore")

T = TypeVar("T")

# The entry's fields besides FEED_AT (the script's own). Readers ignore fields they do
# not know: later versions may add some.
USER = b"user"  # the user id, UTF-8
SESSIONS = b"sessions"  # the session ids, separated by one space
REASON = b"reason"  # an events.RevokeReason
# Config.revocation_feed_sets: one signed SET per session id, same order, one space apart.
SECURITY_EVENTS = b"sets"

Signer = Callable[[str, str, str], str]
"""``sign(user_id, session_id, reason)``: the Security Event Token of one revoked session."""

_REASONS = frozenset(get_args(RevokeReason))
_STREAM_ID = re.compile(r"\d{1,20}(-\d{1,20})?")
_MAX_PAGE = 10_000


class Feed:
    """The feed entry of one revocation: its session ids, gathered as the calls settle."""

    __slots__ = ("key", "reason", "retention_ms", "session_ids", "sign", "user_id")

    def __init__(
        self, config: Config, user_id: str, reason: RevokeReason, sign: Signer | None = None
    ) -> None:
        self.key = revocations_key(config.namespace)
        self.retention_ms = config.revocation_feed_retention * 1000
        self.user_id = user_id
        self.reason = reason
        self.sign = sign
        self.session_ids: list[str] = []

    def add(self, session_ids: list[str]) -> None:
        """Sessions the revocation deleted (a walk adds each step's)."""
        self.session_ids += session_ids

    def append(self, outcome: Callable[[], T]) -> Call[T] | None:
        """The call appending the entry, whose result is ``outcome()``; None when nothing
        was revoked. Its failure is logged and leaves the outcome as it is."""
        if not self.session_ids:
            return None
        sids, self.session_ids = self.session_ids, []
        args: tuple[Arg, ...] = (
            self.retention_ms,
            USER,
            self.user_id,
            SESSIONS,
            " ".join(sids),
            REASON,
            self.reason,
        )
        sign = self.sign
        if sign is not None:
            sets = " ".join(sign(self.user_id, sid, self.reason) for sid in sids)
            args += (SECURITY_EVENTS, sets)

        def lost(err: Exception, unreachable: bool) -> T:
            logger.warning(
                "sessionstore revocation feed: %d revoked session(s) (%s) not appended: %r",
                len(sids),
                self.reason,
                err,
            )
            return outcome()

        return Call(SCRIPTS["feed"], (self.key,), args, lambda _: outcome(), lost)


def fed(call: Call[T], feed: Feed | None) -> Call[T]:
    """``call`` and its follow-ups, then the append of ``feed``'s entry, then the result.

    The outcome (result or error) of the chain's last call is settled first (its parse
    reports the revoked sessions to ``feed``), the entry appended, and the outcome returned.
    """
    if feed is None:
        return call
    outcome: list[Callable[[], T]] = []
    inner_then, inner_parse, inner_fail = call.then, call.parse, call.fail

    def then(reply: Any) -> Call[T] | None:
        follow = inner_then(reply) if inner_then is not None else None
        if follow is not None:
            return fed(follow, feed)
        outcome.append(_settled(inner_parse, reply))
        return feed.append(outcome[-1])  # None: parse() answers with the outcome

    def fail(err: Exception, unreachable: bool) -> Any:
        settled = _settled(lambda _: inner_fail(err, unreachable), None)
        append = feed.append(settled)
        return settled() if append is None else append

    def parse(reply: Any) -> T:
        # After ``then`` (``step``): its settled outcome. A caller that parses a reply
        # itself, without ``step`` (a bulk loader), gets the plain parse and no entry.
        return outcome[-1]() if outcome else inner_parse(reply)

    return Call(
        call.script,
        call.keys,
        call.args,
        parse,
        fail,
        call.durable,
        call.command,
        then,
    )


def _settled(parse: Callable[[Any], T], reply: Any) -> Callable[[], T]:
    """``parse(reply)`` now; later, its result again or its error raised again."""
    try:
        value = parse(reply)
    except Exception as err:
        error = err

        def again() -> T:
            raise error

        return again
    return lambda: value


def first_page(config: Config, since: object, count: object) -> Call[list[RevocationEntry]]:
    """The first read of the feed (checks the arguments: ``InvalidInput`` before any I/O).

    ``since`` is a stream id (the entries after it), a Unix time in seconds (the entries
    appended in its millisecond or later), or None (every entry still retained); ``count``
    the entries one XRANGE reads.
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= _MAX_PAGE:
        raise InvalidInput(f"count must be an integer in 1..{_MAX_PAGE}, got {count!r}")
    return _page(config, _start(since), count)


def next_page(
    config: Config, entries: list[RevocationEntry], count: int
) -> Call[list[RevocationEntry]] | None:
    """The read after a page of ``entries``; None when that page reached the tail."""
    if len(entries) < count:
        return None
    return _page(config, "(" + entries[-1].id, count)


def _start(since: object) -> str:
    """The XRANGE start of ``since`` (see ``first_page``)."""
    if since is None:
        return "-"
    if isinstance(since, str):
        if not _STREAM_ID.fullmatch(since):
            raise InvalidInput(f"since must be a stream id like '1700000000000-0', got {since!r}")
        return "(" + since
    if isinstance(since, bool) or not isinstance(since, int | float) or not math.isfinite(since):
        raise InvalidInput(f"since must be a stream id, a Unix time or None, got {since!r}")
    if since < 0:
        raise InvalidInput(f"since must not be negative, got {since!r}")
    return str(math.floor(since * 1000))  # its whole millisecond: ids are ms


def _page(config: Config, start: str, count: int) -> Call[list[RevocationEntry]]:
    key = revocations_key(config.namespace)

    def parse(reply: Any) -> list[RevocationEntry]:
        found = (decode(entry_id, fields) for entry_id, fields in reply or ())
        return [entry for entry in found if entry is not None]

    return Call(SCRIPTS["feed"], (key,), (start, "+", "COUNT", count), parse, command="XRANGE")


def decode(entry_id: bytes | str, fields: Any) -> RevocationEntry | None:
    """One stream entry (its fields as a flat list or a mapping), or None when it is not a
    revocation this version can read (skipped)."""
    flat = not isinstance(fields, dict)
    pairs = zip(fields[::2], fields[1::2], strict=True) if flat else fields.items()
    got = {_text(k): _text(v) for k, v in pairs}
    reason, at, user, sessions = (
        got.get(_text(name)) for name in (REASON, FEED_AT, USER, SESSIONS)
    )
    if reason not in _REASONS or not user or not sessions or at is None or not at.isdigit():
        return None
    sets = got.get(_text(SECURITY_EVENTS))
    return RevocationEntry(
        id=_text(entry_id),
        user_id=user,
        session_ids=tuple(sessions.split(" ")),
        reason=reason,  # type: ignore[arg-type]  # checked against RevokeReason above
        at=int(at) / 1000,
        security_events=tuple(sets.split(" ")) if sets else (),
    )


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
