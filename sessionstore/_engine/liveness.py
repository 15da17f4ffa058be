"""How long a session held by a live connection (a WebSocket, a stream) may stay open.

A revocation reaches such a connection as a push (``_nearcache.watch``); the rest is
asked here, and only when due, never by polling:

- ``remaining``: one ``PTTL`` of the session's hash, whose TTL is its idle deadline (never
  past its absolute one) on the server's clock: the seconds it has left, or None when it is
  gone (expired or revoked). Asked at a connection's known deadline, and for every
  connection after the invalidation link was down (announcements may have been missed).
  Its reply tells the breaker Redis answered, its failure counts like a validation's.
- ``denied_in``: how long until a validation would be refused for want of Redis (0: now):
  at once under ``fallback="deny"``, else once ``max_degraded_seconds`` have passed since
  Redis last answered (``validation.degraded``, the same bound).

Pure: the shells run the call.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sessionstore import events
from sessionstore._engine.call import Call, answered, fail_closed
from sessionstore._engine.validation import Host, reached
from sessionstore.errors import StoreUnavailable
from sessionstore.keys import user_keys
from sessionstore.scripts import SCRIPTS

__all__ = ["denied_in", "remaining"]

_GONE = -2  # PTTL of a missing key


def remaining(engine: Host, user_id: str, session_id: str) -> Call[float | None]:
    """The call reading how many seconds ``session_id`` has left (None: gone).

    While the breaker is open (and this is not its probe) nothing is sent:
    ``StoreUnavailable`` at once, as every call of the store would meet.
    """
    breaker = engine.breaker
    if not breaker.allow(time.monotonic()):
        raise StoreUnavailable("Redis is unreachable (circuit open)") from breaker.last_error
    key = user_keys(engine.config.namespace, user_id).session(session_id)

    def parse(reply: Any) -> float | None:
        reached(engine)
        ms = int(reply)
        if ms == _GONE:
            return None
        return math.inf if ms < 0 else ms / 1000  # -1: no TTL (never written so)

    def fail(err: Exception, unreachable: bool) -> float | None:
        if answered(err, unreachable):
            reached(engine)
        elif unreachable and breaker.failure(time.monotonic(), err):
            engine.emit(events.DegradedEntered(fallback=engine.config.fallback))
        return fail_closed(err, unreachable)  # type: ignore[no-any-return]

    # The script is only the Call's label: ``command`` is what is sent.
    return Call(SCRIPTS["check"], (key,), (), parse, fail, command="PTTL")


def denied_in(engine: Host, now: float) -> float:
    """Seconds from ``now`` (monotonic) until an unreachable Redis makes validations
    deny every token (0: they deny now)."""
    config = engine.config
    if config.fallback == "deny":
        return 0.0
    unreached = engine.breaker.unreached_seconds(now)
    if unreached is None:
        return 0.0  # never reached: nothing is known of revocations
    return max(0.0, config.max_degraded_seconds - unreached)
