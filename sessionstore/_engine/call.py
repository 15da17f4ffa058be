"""A ``Call``: one command or script to run, and what to make of its reply or failure.

The engine (and the rate limiter) builds calls; the shells (``SessionStore``,
``AsyncSessionStore``), the batcher and the script runner (``_redis.runner``) send them,
and ``step`` turns each reply into the next call or the result. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sessionstore.errors import ScriptError, StoreBusy, StoreUnavailable
from sessionstore.scripts import Script

__all__ = ["Arg", "Call", "announced", "answered", "confirmed", "fail_closed", "step"]

T = TypeVar("T")
Arg = bytes | str | int


def answered(err: Exception, unreachable: bool) -> bool:
    """Whether Redis answered the failed call (not a saturated pool: ``StoreBusy``)."""
    return not unreachable and not isinstance(err, StoreBusy)


def fail_closed(err: Exception, unreachable: bool) -> Any:
    """Default outcome of a failed call: never a fallback, always a typed error."""
    if isinstance(err, StoreBusy):
        raise err
    if unreachable:
        raise StoreUnavailable(f"Redis is unreachable: {type(err).__name__}") from err
    raise ScriptError(f"Redis answered with an error: {err}") from err


# slots, not frozen: a frozen dataclass pays an object.__setattr__ per field, and one Call is
# built per request. Treat a Call as immutable all the same.
@dataclass(slots=True)
class Call(Generic[T]):
    """One script invocation (or one plain read) and what to make of its outcome.

    With ``command`` set, the shells send that read-only command instead of the script:
    the command, ``keys``, then ``args``. ``then`` may turn a reply into a follow-up call
    whose result is the result (e.g. a read that finds a touch due); None means ``parse``
    the reply.
    """

    script: Script
    keys: tuple[str, ...]
    args: tuple[Arg, ...]
    parse: Callable[[Any], T]
    # A failure's outcome: the result, or (a revocation's feed append) a follow-up call.
    fail: Callable[[Exception, bool], Call[T] | T] = field(default=fail_closed)
    # A revocation: with Config.revoke_wait_replicas the shells WAIT for replicas after it.
    durable: bool = False
    command: str | None = None
    then: Callable[[Any], Call[T] | None] | None = None


def step(call: Call[T], reply: Any) -> Call[T] | T:
    """What ``reply`` makes of ``call``: the follow-up call to run next, or the result.

    The one place a reply moves a call on: the shells, the batcher and the script runner
    all step calls here (a result is never itself a ``Call``).
    """
    then = call.then
    if then is not None:
        follow = then(reply)
        if follow is not None:
            return follow
    return call.parse(reply)


def announced(call: Call[T], when: Callable[[Any], bool] | None = None) -> Call[T]:
    """``call`` (a revocation), then one keyed read on the server that ran it before the
    result is returned (when ``when(reply)`` holds, or always).

    The server writes the script's reply before the invalidation pushes of the same step
    (the listeners' connections queued first are written last), and a busy two-core
    machine may run the caller before the server gets to them: a revoke returned, and
    another process' next validation still found nothing on its listener's socket. The
    server reads the follow-up only after it has written everything of that step, so when
    it answers, every listener's socket holds the pushes: a validation anywhere that
    starts after ``revoke`` returns sees them (``Listener.fresh``).
    """

    def then(reply: Any) -> Call[T] | None:
        if when is not None and not when(reply):
            return None

        def done(_: Any) -> T:
            return call.parse(reply)

        def failed(err: Exception, unreachable: bool) -> T:
            return call.parse(reply)  # the revocation stands; only its confirmation failed

        return Call(call.script, call.keys[:1], (), done, failed, command="PTTL")

    call.then = then
    return call


def confirmed(script: Script, key: str, result: T) -> Call[T]:
    """The keyed read of ``announced`` after the last step of a stepped revocation: its
    answer, or its failure, leaves ``result`` as it is."""

    def failed(err: Exception, unreachable: bool) -> T:
        return result

    return Call(script, (key,), (), lambda _: result, failed, command="PTTL")
