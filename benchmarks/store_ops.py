"""Store operations (issue "Core"): create, touch, revoke_user, devices; also login, refresh.

Each builder does its setup (sessions to touch, users to list) before returning its case;
a case's timed part holds nothing but the calls it names.
"""

from __future__ import annotations

import itertools
import math
from time import perf_counter_ns

from benchmarks.context import DATA, Context, device
from benchmarks.harness import Case
from benchmarks.server import BenchError

__all__ = ["core_cases", "token_cases"]

PER_USER = 10
"""Sessions per user where the row spreads over users (far below the cap of 50)."""
FULL_USER = 50
"""Sessions of the user that revoke_user and devices() work on (the cap, nothing evicted)."""
DEVICES = 5


def _fill(ctx: Context, user_id: str, count: int) -> list[str]:
    """Create ``count`` sessions for ``user_id`` over DEVICES device ids; their ids."""
    return [
        ctx.store.create(user_id, device=device(k % DEVICES), data=DATA).session_id
        for k in range(count)
    ]


def _spread(ctx: Context, prefix: str, n: int) -> list[str]:
    """``n`` user ids for ``n`` new sessions, PER_USER sessions to a fresh user."""
    users = [ctx.new_user(prefix) for _ in range(math.ceil(n / PER_USER))]
    return [users[i // PER_USER] for i in range(n)]


def create_case(ctx: Context) -> Case:
    """SessionStore.create, 10 sessions per fresh user: the cap never evicts."""
    create, dev = ctx.store.create, device(0)

    def run(n: int) -> int:
        user_ids = _spread(ctx, "create", n)
        start = perf_counter_ns()
        for user_id in user_ids:
            create(user_id, device=dev, data=DATA)
        return perf_counter_ns() - start

    return Case("create", run, note=f"UA 120 B, {PER_USER}/user")


def touch_case(ctx: Context, users: int = 200) -> Case:
    """SessionStore.touch cycling over existing sessions (always writes)."""
    pool: list[tuple[str, str]] = []
    for _ in range(users):
        user_id = ctx.new_user("touch")
        pool += [(user_id, session_id) for session_id in _fill(ctx, user_id, PER_USER)]
    cycle, touch = itertools.cycle(pool), ctx.store.touch

    def run(n: int) -> int:
        batch = list(itertools.islice(cycle, n))
        start = perf_counter_ns()
        live = [touch(user_id, session_id) for user_id, session_id in batch]
        elapsed = perf_counter_ns() - start
        if not all(live):
            raise BenchError("touch found a gone session")
        return elapsed

    return Case("touch", run, note=f"{len(pool)} sessions cycled")


def revoke_user_case(ctx: Context, per_round: int) -> Case:
    """revoke_user on users of 50 sessions; only the revoke_user calls are timed."""
    revoke_user = ctx.store.revoke_user

    def run(n: int) -> int:
        user_ids = [ctx.new_user("revoke") for _ in range(n)]
        for user_id in user_ids:
            _fill(ctx, user_id, FULL_USER)
        start = perf_counter_ns()
        revoked = [revoke_user(user_id) for user_id in user_ids]
        elapsed = perf_counter_ns() - start
        if any(count != FULL_USER for count in revoked):
            raise BenchError(f"revoke_user revoked {revoked}, expected {FULL_USER} each")
        return elapsed

    note = f"{per_round} users/round, re-created untimed"
    return Case(f"revoke_user ({FULL_USER} sessions)", run, fixed_ops=per_round, note=note)


def devices_case(ctx: Context, users: int = 4) -> Case:
    """devices() of users holding 50 sessions over 5 device ids."""
    user_ids = [ctx.new_user("devices") for _ in range(users)]
    for user_id in user_ids:
        _fill(ctx, user_id, FULL_USER)
    groups = ctx.store.devices(user_ids[0])
    if len(groups) != DEVICES or sum(len(g.sessions) for g in groups) != FULL_USER:
        raise BenchError(f"devices() gave {len(groups)} devices, expected {DEVICES}")
    cycle, devices = itertools.cycle(user_ids), ctx.store.devices

    def run(n: int) -> int:
        batch = list(itertools.islice(cycle, n))
        start = perf_counter_ns()
        for user_id in batch:
            devices(user_id)
        return perf_counter_ns() - start

    return Case(f"devices() ({FULL_USER} sessions)", run, note=f"{DEVICES} device ids")


def login_case(ctx: Context) -> Case:
    """SessionStore.login (create + sign an access token and a refresh token)."""
    login, dev = ctx.store.login, device(0)

    def run(n: int) -> int:
        user_ids = _spread(ctx, "login", n)
        start = perf_counter_ns()
        for user_id in user_ids:
            login(user_id, device=dev, data=DATA)
        return perf_counter_ns() - start

    return Case("login", run, note=f"{PER_USER}/user, not a target yet")


def refresh_case(ctx: Context, users: int = 100) -> Case:
    """SessionStore.refresh, each session presenting its current refresh token."""
    tokens = [
        ctx.store.login(user_id, device=device(k % DEVICES), data=DATA).refresh_token
        for user_id in (ctx.new_user("refresh") for _ in range(users))
        for k in range(PER_USER)
    ]
    refresh, position = ctx.store.refresh, 0

    def run(n: int) -> int:
        nonlocal position
        slots = [(position + i) % len(tokens) for i in range(n)]
        position = (position + n) % len(tokens)
        start = perf_counter_ns()
        for slot in slots:
            tokens[slot] = refresh(tokens[slot]).refresh_token
        return perf_counter_ns() - start

    return Case("refresh", run, note=f"{len(tokens)} sessions rotated, not a target yet")


def core_cases(ctx: Context, revoke_per_round: int) -> list[Case]:
    """The rows of issue "Core", in table order."""
    return [
        create_case(ctx),
        touch_case(ctx),
        revoke_user_case(ctx, revoke_per_round),
        devices_case(ctx),
    ]


def token_cases(ctx: Context) -> list[Case]:
    """login and refresh (measured, not targets yet)."""
    return [login_case(ctx), refresh_case(ctx)]
