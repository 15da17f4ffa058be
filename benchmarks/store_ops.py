"""Store operations: create, touch, step_up, rotate, revoke (feed on, off), revoke_user (1000
sessions), devices (50); login, refresh.

Each builder does its setup (sessions to touch, users to list; pipelined through ``bulk``)
before returning its case; a case's timed part holds nothing but the calls it names.
"""

from __future__ import annotations

import itertools
from time import perf_counter_ns

from benchmarks import bulk
from benchmarks.context import DATA, DEVICES, PER_USER, Context, device
from benchmarks.harness import Case
from benchmarks.server import BenchError
from sessionstore import TokenPair

__all__ = ["BIG_USER", "FULL_USER", "core_cases", "token_cases"]

FULL_USER = 50
"""Sessions of the users devices() lists (the default cap, nothing evicted)."""
BIG_USER = 1000
"""Sessions of the users revoke_user revokes (a store with max_sessions_per_user=1000)."""


def create_case(ctx: Context) -> Case:
    """SessionStore.create, 10 sessions per fresh user: the cap never evicts."""
    create = ctx.store.create

    def run(n: int) -> int:
        owners = [(user_id, device(k)) for user_id, k in ctx.owners("create", n)]
        start = perf_counter_ns()
        for user_id, dev in owners:
            create(user_id, device=dev, data=DATA)
        return perf_counter_ns() - start

    return Case("create", run, note=f"UA 120 B, {PER_USER}/user")


def touch_case(ctx: Context, sessions: int = 2000) -> Case:
    """SessionStore.touch cycling over existing sessions (always writes)."""
    owners = ctx.owners("touch", sessions)
    pairs = _sessions(ctx, owners)
    pool = [(user_id, pair.session_id) for (user_id, _), pair in zip(owners, pairs, strict=True)]
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


def step_up_case(ctx: Context, sessions: int = 2000) -> Case:
    """SessionStore.step_up cycling over existing sessions (one script, then an access token
    signed with the session's new auth_time, amr and acr)."""
    owners = ctx.owners("step_up", sessions)
    pairs = _sessions(ctx, owners)
    pool = [(user_id, pair.session_id) for (user_id, _), pair in zip(owners, pairs, strict=True)]
    cycle, step_up = itertools.cycle(pool), ctx.store.step_up
    methods = itertools.cycle(("otp", "webauthn"))

    def run(n: int) -> int:
        batch = [(*owner, next(methods)) for owner in itertools.islice(cycle, n)]
        start = perf_counter_ns()
        tokens = [step_up(user_id, sid, method=m, level=2) for user_id, sid, m in batch]
        elapsed = perf_counter_ns() - start
        if not all(tokens):
            raise BenchError("step_up returned no token")
        return elapsed

    return Case("step_up", run, note=f"{len(pool)} sessions cycled, HS256")


def rotate_case(ctx: Context, sessions: int = 2000) -> Case:
    """SessionStore.rotate cycling over existing sessions, each under its latest id (one
    script; the confirming read and the revocation feed's append; a new pair signed)."""
    owners = ctx.owners("rotate", sessions)
    pairs = _sessions(ctx, owners)
    pool = [[user_id, pair.session_id] for (user_id, _), pair in zip(owners, pairs, strict=True)]
    slots, rotate = itertools.cycle(pool), ctx.store.rotate

    def run(n: int) -> int:
        batch = list(itertools.islice(slots, n))
        start = perf_counter_ns()
        for entry in batch:  # a slot met twice in one batch rotates its latest id
            entry[1] = rotate(entry[0], entry[1]).session_id
        return perf_counter_ns() - start

    return Case("rotate", run, note=f"{len(pool)} sessions cycled, HS256, feed on")


def _sessions(ctx: Context, owners: list[tuple[str, int]]) -> list[TokenPair]:
    return bulk.login_many(ctx.store, owners)


def revoke_user_case(ctx: Context, per_round: int) -> Case:
    """revoke_user on users of 1000 sessions; only the revoke_user calls are timed."""
    store = ctx.open_store(max_sessions_per_user=BIG_USER)
    revoke_user = store.revoke_user

    def run(n: int) -> int:
        user_ids = [ctx.new_user("revoke") for _ in range(n)]
        owners = [(user_id, k % DEVICES) for user_id in user_ids for k in range(BIG_USER)]
        if bulk.create_many(store, owners) != len(owners):
            raise BenchError("revoke_user setup created too few sessions")
        start = perf_counter_ns()
        revoked = [revoke_user(user_id) for user_id in user_ids]
        elapsed = perf_counter_ns() - start
        if any(count != BIG_USER for count in revoked):
            raise BenchError(f"revoke_user revoked {revoked}, expected {BIG_USER} each")
        return elapsed

    note = f"{per_round} users/round, re-created untimed; max_sessions_per_user={BIG_USER}"
    return Case(f"revoke_user ({BIG_USER} sessions)", run, fixed_ops=per_round, note=note)


def revoke_case(ctx: Context, feed: bool) -> Case:
    """SessionStore.revoke of one live session, with the revocation feed's append after the
    script (the default) or without (``revocation_feed_retention=0``); sessions made untimed."""
    store = ctx.store if feed else ctx.open_store(revocation_feed_retention=0)
    revoke = store.revoke

    def run(n: int) -> int:
        owners = ctx.owners("revoke1", n)
        pairs = _sessions(ctx, owners)
        batch = [
            (user_id, pair.session_id) for (user_id, _), pair in zip(owners, pairs, strict=True)
        ]
        start = perf_counter_ns()
        done = [revoke(user_id, session_id) for user_id, session_id in batch]
        elapsed = perf_counter_ns() - start
        if not all(done):
            raise BenchError("revoke found a gone session")
        return elapsed

    return Case(f"revoke, feed {'on' if feed else 'off'}", run, note="1 session, made untimed")


def devices_case(ctx: Context, users: int = 4) -> Case:
    """devices() of users holding 50 sessions over 5 device ids."""
    user_ids = [ctx.new_user("devices") for _ in range(users)]
    bulk.create_many(ctx.store, [(u, k % DEVICES) for u in user_ids for k in range(FULL_USER)])
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
    login = ctx.store.login

    def run(n: int) -> int:
        owners = [(user_id, device(k)) for user_id, k in ctx.owners("login", n)]
        start = perf_counter_ns()
        for user_id, dev in owners:
            login(user_id, device=dev, data=DATA)
        return perf_counter_ns() - start

    return Case("login", run, note=f"{PER_USER}/user")


def refresh_case(ctx: Context, sessions: int = 1000) -> Case:
    """SessionStore.refresh, each session presenting its current refresh token."""
    tokens = [pair.refresh_token for pair in _sessions(ctx, ctx.owners("refresh", sessions))]
    refresh, position = ctx.store.refresh, 0

    def run(n: int) -> int:
        nonlocal position
        slots = [(position + i) % len(tokens) for i in range(n)]
        position = (position + n) % len(tokens)
        start = perf_counter_ns()
        for slot in slots:
            tokens[slot] = refresh(tokens[slot]).refresh_token
        return perf_counter_ns() - start

    return Case("refresh", run, note=f"{len(tokens)} sessions rotated")


def core_cases(ctx: Context, revoke_per_round: int) -> list[Case]:
    """create, touch, step_up, rotate, revoke (feed on, off), revoke_user, devices(), in
    table order."""
    return [
        create_case(ctx),
        touch_case(ctx),
        step_up_case(ctx),
        rotate_case(ctx),
        revoke_case(ctx, feed=True),
        revoke_case(ctx, feed=False),
        revoke_user_case(ctx, revoke_per_round),
        devices_case(ctx),
    ]


def token_cases(ctx: Context) -> list[Case]:
    """login and refresh."""
    return [login_case(ctx), refresh_case(ctx)]
