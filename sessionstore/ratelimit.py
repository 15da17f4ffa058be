"""Login rate limiting in Redis: GCRA per account and per client IP, with a retry-after.

One Lua script (``lua/ratelimit.lua``) keeps a theoretical arrival time per key, on the
server's clock. The default allows 5 attempts per minute per account and 30 per minute per
IP (IPv6 counted per /64): the 6th attempt on an account within a minute is refused, and
after that one more is allowed every 12 s. Every attempt counts, successful or not.

Keys (each with a TTL: it expires exactly when its budget is full again)::

    {ns}:{<base64url account>}:rl:<name>     the account's key, in the account's hash slot
    {ns}:{ip.<base64url ip>}:rl:<name>       the client IP's (or IPv6 /64's) key

The IP is checked first, so a refused IP never spends an account's budget. When Redis is
unreachable (connection error or timeout), ``fallback="local"`` (default) decides with an
in-process GCRA of the same rates (per process, bounded); ``fallback="closed"`` refuses
every attempt with ``Decision.unavailable`` set. Any other Redis error is ``ScriptError``.
The store's circuit breaker guards the calls: after ``breaker_failures`` unreachable errors
in a row the fallback answers at once (no socket timeout, no driver retries and backoff per
attempt, which would also let the local budget refill between attempts), and one probe
every ``breaker_reset`` seconds finds Redis again.

Accounts are counted by ``normalize(account)``: by default :func:`normalize_account`
(NFKC, case-folded, invisible characters removed, trimmed), so "Alice", "ALICE", its
full-width form, " alice " and "alice" with a zero-width space inside share one budget.
Pass ``normalize=None`` to count the exact string (accounts already canonical), or your
own ``Callable[[str], str]``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar

import msgspec

from sessionstore._engine.binding import ip_address
from sessionstore._engine.call import Call
from sessionstore._engine.fallback import Breaker
from sessionstore._engine.forks import AfterFork
from sessionstore._redis import runner
from sessionstore.errors import InvalidInput, ScriptError
from sessionstore.keys import account_limit_key, check_user_id, ip_limit_key
from sessionstore.models import Config
from sessionstore.scripts import SCRIPTS

__all__ = [
    "DEFAULT_PER_ACCOUNT",
    "DEFAULT_PER_IP",
    "AsyncLoginRateLimiter",
    "Decision",
    "LocalLimiter",
    "LoginRateLimiter",
    "Rate",
    "gcra",
    "normalize_account",
]

Scope = Literal["account", "ip"]
_MAX_IP_CHARS = 64
_SCRIPT = SCRIPTS["ratelimit"]
L = TypeVar("L", bound="_LimiterBase")


def normalize_account(account: str) -> str:
    """The canonical spelling of a login name: one budget for all the ways to type it.

    NFKC (full-width and compatibility forms), case folding, then NFKC again (folding can
    denormalize), with format characters (zero-width space and joiners, BOM, soft hyphen)
    removed and surrounding whitespace trimmed.
    """
    text = unicodedata.normalize("NFKC", account)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return unicodedata.normalize("NFKC", text.casefold()).strip()


class Rate(msgspec.Struct, frozen=True):
    """At most ``limit`` attempts per ``period`` seconds."""

    limit: int
    period: float

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise InvalidInput(f"rate limit must be an integer >= 1, got {self.limit!r}")
        period = self.period
        if isinstance(period, bool) or not isinstance(period, int | float):
            raise InvalidInput(f"rate period must be a number of seconds, got {period!r}")
        if not 0.001 <= period <= 86400 * 366:
            raise InvalidInput(f"rate period must be 0.001..{86400 * 366} seconds, got {period}")

    @property
    def period_ms(self) -> int:
        """The period in whole milliseconds."""
        return max(1, round(self.period * 1000))


DEFAULT_PER_ACCOUNT = Rate(5, 60)
"""The default account budget: 5 attempts per minute."""
DEFAULT_PER_IP = Rate(30, 60)
"""The default client IP budget: 30 attempts per minute (IPv6: per /64)."""


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The answer for one attempt.

    ``retry_after`` is in seconds (0 when allowed); ``limited_by`` names the budget that
    refused it; ``unavailable`` is True when Redis could not be asked (see ``local``).
    ``local`` is True when an in-process limiter decided instead of Redis.
    """

    allowed: bool
    remaining: int
    retry_after: float
    limited_by: Scope | None = None
    local: bool = False
    unavailable: bool = False

    @property
    def retry_after_header(self) -> str:
        """``retry_after`` rounded up to whole seconds, for a ``Retry-After`` header."""
        return str(max(1, math.ceil(self.retry_after))) if not self.allowed else "0"


def gcra(
    tat: float | None, now: float, rate: Rate, cost: int = 1
) -> tuple[bool, float, int, float]:
    """One GCRA step in ms, the mirror of ``lua/ratelimit.lua``: (allowed, new tat, remaining,
    retry after ms). ``tat`` is the stored theoretical arrival time (None: nothing stored)."""
    period = rate.period_ms
    interval = period / rate.limit
    start = now if tat is None or tat < now else tat
    next_tat = start + interval * cost
    allow_at = next_tat - period
    if now < allow_at:
        return False, start, 0, allow_at - now
    return True, next_tat, math.floor((period - (next_tat - now)) / interval), 0.0


class LocalLimiter:
    """An in-process GCRA (the fallback while Redis is unreachable); thread-safe, bounded."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._tat: OrderedDict[str, float] = OrderedDict()
        _LIMITERS.add(self)

    def hit(self, key: str, rate: Rate, now_ms: float | None = None) -> tuple[bool, int, float]:
        """Count one attempt on ``key``: (allowed, remaining, retry after ms)."""
        now = time.monotonic() * 1000 if now_ms is None else now_ms
        with self._lock:
            allowed, tat, remaining, retry = gcra(self._tat.get(key), now, rate)
            if allowed:
                self._tat[key] = tat
                self._tat.move_to_end(key)
                while len(self._tat) > self._capacity:
                    self._tat.popitem(last=False)
            return allowed, remaining, retry


def _unlock(limiter: LocalLimiter) -> None:
    # A parent thread may have held a limiter's lock at the fork; the counts stay.
    limiter._lock = threading.Lock()


_LIMITERS: AfterFork[LocalLimiter] = AfterFork(_unlock)


def _ip_bucket(ip: str) -> str:
    """The unit an IP is counted in: the address (IPv4) or its /64 (IPv6)."""
    address = ip_address(ip)  # device binding's parse: IPv4-mapped IPv6 is its IPv4
    if address is None:
        return ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Step(msgspec.Struct, frozen=True):
    """One script call of a decision: which budget, its key, its rate."""

    scope: Scope
    key: str
    rate: Rate

    @property
    def args(self) -> tuple[int, ...]:
        """The script's ARGV: limit, period in ms, cost."""
        return (self.rate.limit, self.rate.period_ms, 1)


class _Plan:
    """The pure part of a decision: its steps as calls (IP first), what their replies mean.

    Each step is one ``Call`` of ``lua/ratelimit.lua``, run like the store's calls by the
    script runner; a step that allows the attempt has the next step as its follow-up.
    """

    def __init__(self, limiter: _LimiterBase, steps: Sequence[Step]) -> None:
        self._limiter = limiter
        self.steps = steps
        self._remaining: list[int] = []

    def start(self) -> Call[Decision] | Decision:
        """The first call, or the decision when none is needed (no budget, breaker open)."""
        if not self.steps:
            return self.allowed()
        if not self._limiter.breaker.allow(time.monotonic()):
            return self.fallback()
        return self.call(0)

    @contextlib.contextmanager
    def running(self) -> Iterator[Call[Decision] | Decision]:
        """``start``, guarded: interrupted mid-call (cancelled, or any other exception),
        the breaker's probe, if the call was it, is void."""
        try:
            yield self.start()
        except BaseException:
            self._limiter.breaker.abandon()
            raise

    def call(self, n: int) -> Call[Decision]:
        """Step ``n``: its reply refuses, or goes on to step ``n + 1``, or allows."""
        step = self.steps[n]

        def then(reply: Any) -> Call[Decision] | None:
            self._limiter.reachable()
            allowed, remaining, _, _ = reply  # lua/ratelimit.lua
            if n + 1 < len(self.steps) and int(allowed):
                self._remaining.append(int(remaining))
                return self.call(n + 1)
            return None

        def parse(reply: Any) -> Decision:
            allowed, remaining, retry_ms, _ = map(int, reply)  # lua/ratelimit.lua
            if not allowed:
                return Decision(
                    allowed=False, remaining=0, retry_after=retry_ms / 1000, limited_by=step.scope
                )
            self._remaining.append(remaining)
            return self.allowed()

        return Call(_SCRIPT, (step.key,), step.args, parse, self.failed, then=then)

    def allowed(self) -> Decision:
        """Every step allowed the attempt."""
        return Decision(allowed=True, remaining=min(self._remaining, default=0), retry_after=0.0)

    def failed(self, err: Exception, unreachable: bool) -> Decision:
        """Redis could not answer: fall back (unreachable) or raise ``ScriptError``."""
        if not unreachable:
            self._limiter.reachable()
            raise ScriptError(f"Redis answered with an error: {err}") from err
        self._limiter.breaker.failure(time.monotonic())
        return self.fallback()

    def fallback(self) -> Decision:
        """The answer without Redis: the local limiter, or a refusal (``closed``)."""
        if self._limiter.fallback == "closed":
            return Decision(allowed=False, remaining=0, retry_after=1.0, unavailable=True)
        remaining = []
        for step in self.steps:
            allowed, left, retry_ms = self._limiter.local.hit(step.key, step.rate)
            if not allowed:
                return Decision(
                    allowed=False,
                    remaining=0,
                    retry_after=retry_ms / 1000,
                    limited_by=step.scope,
                    local=True,
                    unavailable=True,
                )
            remaining.append(left)
        return Decision(
            allowed=True, remaining=min(remaining), retry_after=0.0, local=True, unavailable=True
        )


class _LimiterBase:
    """Configuration and key building shared by the sync and async limiters (no I/O)."""

    def __init__(
        self,
        client: Any,
        *,
        per_account: Rate | None = DEFAULT_PER_ACCOUNT,
        per_ip: Rate | None = DEFAULT_PER_IP,
        namespace: str = "ss",
        name: str = "login",
        fallback: Literal["local", "closed"] = "local",
        local_capacity: int = 100_000,
        normalize: Callable[[str], str] | None = normalize_account,
        breaker_failures: int = 3,
        breaker_reset: float = 1.0,
    ) -> None:
        if client is None:
            raise InvalidInput("a rate limiter needs a Redis client (e.g. store.client)")
        for label, rate in (("per_account", per_account), ("per_ip", per_ip)):
            if rate is not None and not isinstance(rate, Rate):
                raise InvalidInput(f"{label} must be a Rate or None")
        if fallback not in ("local", "closed"):
            raise InvalidInput("fallback must be 'local' or 'closed'")
        if normalize is not None and not callable(normalize):
            raise InvalidInput("normalize must be a callable (str -> str) or None")
        # The same namespace and breaker rules as the store's.
        Config(namespace=namespace, breaker_failures=breaker_failures, breaker_reset=breaker_reset)
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,32}", name):
            raise InvalidInput("name must be 1..32 chars of [A-Za-z0-9_]")
        self.client = client
        self.per_account = per_account
        self.per_ip = per_ip
        self.namespace = namespace
        self.name = name
        self.fallback = fallback
        self.local = LocalLimiter(local_capacity)
        self.normalize = normalize
        self.breaker = Breaker(breaker_failures, breaker_reset)

    @classmethod
    def for_store(cls: type[L], store: Any, **options: Any) -> L:
        """A limiter on a store's client (``SessionStore`` for ``LoginRateLimiter``,
        ``AsyncSessionStore`` for ``AsyncLoginRateLimiter``), sharing its namespace and
        its breaker settings."""
        config = store.config
        options.setdefault("namespace", config.namespace)
        options.setdefault("breaker_failures", config.breaker_failures)
        options.setdefault("breaker_reset", config.breaker_reset)
        return cls(store.client, **options)

    def reachable(self) -> None:
        """Redis answered: close the breaker (cheap when it is closed already)."""
        if not self.breaker.quiet:
            self.breaker.success(time.monotonic())

    def account_name(self, account: str) -> str:
        """The spelling ``account`` is counted under (see ``normalize``)."""
        check_user_id(account)
        if self.normalize is None:
            return account
        name = self.normalize(account)
        if not isinstance(name, str) or not name:
            raise InvalidInput("account is empty once normalized (only spaces or invisibles)")
        check_user_id(name)
        return name

    def account_key(self, account: str) -> str:
        """The account's key (same hash tag as the account's sessions)."""
        return account_limit_key(self.namespace, self.name, account)

    def ip_key(self, ip: str) -> str:
        """The client IP's key (IPv6: its /64)."""
        return ip_limit_key(self.namespace, self.name, _ip_bucket(ip))

    def plan(self, account: str, ip: str | None) -> _Plan:
        """Check the inputs (no Redis call for bad ones) and list the steps: IP first."""
        account = self.account_name(account)
        steps = []
        if ip is not None:
            if not isinstance(ip, str) or not 1 <= len(ip) <= _MAX_IP_CHARS:
                raise InvalidInput(f"ip must be a string of 1..{_MAX_IP_CHARS} chars")
            if self.per_ip is not None:
                steps.append(Step("ip", self.ip_key(ip), self.per_ip))
        if self.per_account is not None:
            steps.append(Step("account", self.account_key(account), self.per_account))
        return _Plan(self, steps)


class LoginRateLimiter(_LimiterBase):
    """Login attempts per account and per IP, for synchronous code (a ``redis.Redis``)."""

    def hit(self, account: str, ip: str | None = None) -> Decision:
        """Count one attempt on ``account`` from ``ip``; is it allowed, and if not, when?"""
        with self.plan(account, ip).running() as start:
            return runner.complete(self.client, start)


class AsyncLoginRateLimiter(_LimiterBase):
    """Login attempts per account and per IP, for asyncio (a ``redis.asyncio.Redis``)."""

    async def hit(self, account: str, ip: str | None = None) -> Decision:
        """Count one attempt on ``account`` from ``ip``; is it allowed, and if not, when?"""
        with self.plan(account, ip).running() as start:
            return await runner.acomplete(self.client, start)
