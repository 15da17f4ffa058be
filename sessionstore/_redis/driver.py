"""What the sync and async shells share about the driver: error classes and client options."""

from __future__ import annotations

from typing import Any, TypeVar

from redis import exceptions as rx

from sessionstore._engine.call import Call
from sessionstore._redis.redispy import pool_exhausted
from sessionstore.errors import InvalidInput, StoreBusy
from sessionstore.models import Config

__all__ = [
    "DRIVER_ERRORS",
    "check_client",
    "client_options",
    "eval_args",
    "failed",
    "is_unreachable",
    "typed",
]

T = TypeVar("T")

# RedisClusterException (e.g. SlotNotCoveredError) is not a RedisError in redis-py.
DRIVER_ERRORS = (rx.RedisError, rx.RedisClusterException, OSError)
_UNREACHABLE = (rx.ConnectionError, rx.TimeoutError, ConnectionError, TimeoutError)
# No primary answers for the key's slot right now: a failover in progress (CLUSTERDOWN,
# MASTERDOWN), a slot whose keys are split mid-migration (TRYAGAIN), a hole in the slot
# map. Transient, and no request content can cause them: they may open the fallback.
# MOVED/ASK never get here (the cluster client follows them); READONLY from a demoted
# Sentinel primary is turned into a ConnectionError by redis-py.
_CLUSTER_TRANSIENT = (rx.ClusterDownError, rx.TryAgainError, rx.SlotNotCoveredError)
# A refused login is a misconfiguration, not an outage: it must not open the fallback.
_MISCONFIGURED = (rx.AuthenticationError, rx.AuthorizationError)


def is_unreachable(err: BaseException) -> bool:
    """Connection errors, timeouts and transient cluster states mean "Redis is unreachable".

    redis-py reports "no startup node answers" as a ``RedisClusterException`` chained from
    the connection error, and "redirected without end" as a bare ``ClusterError``.
    """
    if isinstance(err, _MISCONFIGURED) or pool_exhausted(err):
        return False
    if isinstance(err, _UNREACHABLE + _CLUSTER_TRANSIENT) or type(err) is rx.ClusterError:
        return True
    cause = err.__cause__
    return isinstance(err, rx.RedisClusterException) and cause is not None and is_unreachable(cause)


def typed(err: Exception) -> Exception:
    """``err``, or ``StoreBusy`` (caused by it) when no pooled connection was free: Redis
    was never asked, so no fallback may answer and the breaker must not count it."""
    if not pool_exhausted(err):
        return err
    busy = StoreBusy("no free connection in this process's pool (max_connections reached)")
    busy.__cause__ = err
    return busy


def failed(call: Call[T], err: Exception) -> Call[T] | T:
    """The outcome of ``call`` when the driver raised ``err``: the result, or a follow-up
    call whose result is the result (a revocation's feed append, ``_engine.feed``)."""
    return call.fail(typed(err), is_unreachable(err))


def eval_args(call: Call[Any]) -> tuple[Any, ...]:
    """Positional arguments of EVALSHA/EVAL after the script: numkeys, KEYS, ARGV."""
    return (len(call.keys), *call.keys, *call.args)


def client_options(config: Config) -> dict[str, Any]:
    """Options for clients the store creates: bounded timeouts, binary replies."""
    return {
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.socket_timeout,
        "decode_responses": False,
    }


def check_client(client: Any) -> None:
    """Refuse a user-owned client that decodes replies (session blobs are binary)."""
    options: dict[str, Any] = getattr(client, "get_connection_kwargs", dict)()
    if options.get("decode_responses"):
        raise InvalidInput("the Redis client must use decode_responses=False")
