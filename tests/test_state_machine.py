"""A hypothesis state machine over the session lifecycle, against a real server and a model.

Rules drive a real ``SessionStore`` (default caches on) on a private server: login, validate,
touch, refresh (current, previous and older tokens, and tokens of ids rotated away: reuse of
the session they moved to), update (data, claims), step_up, rotate, revoke, revoke_device,
revoke_user, logout and listing. A plain Python model predicts every
answer, including which session the cap evicts. After every step the invariants are read
straight from Redis:

* no resurrection, index == hashes: each user's index ZSET, its session hashes and the
  model's live sessions are the same set (a dead session has no key at all);
* every key has a TTL (the users' history lists included), and a history holds at most
  its cap;
* a login's ``new_device`` is True exactly when the user never signed in on that device
  (the devices here carry no user agent or IP: the device id alone decides);
* count <= cap;
* a revoked session never validates (the latest one is re-checked after every step).

CI runs a few hundred examples (about 20 s). A long run::

    SESSIONSTORE_STATEFUL_EXAMPLES=20000 SESSIONSTORE_STATEFUL_STEPS=60 \\
        .venv/bin/python -m pytest tests/test_state_machine.py -q
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jwt
import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sessionstore import (
    Config,
    Device,
    Keyring,
    RefreshReuseDetected,
    SessionLimitReached,
    SessionRevoked,
    SessionStore,
    TokenPair,
    events,
)
from sessionstore.keys import user_keys
from sessionstore.testing import LocalServer, local_binary

CAP = 3
USERS = ("alice", "bob")
DEVICES = ("phone", "laptop")
METHODS = ("pwd", "otp", "webauthn")
ROLES = ("user", "admin", "auditor")
EXAMPLES = int(os.environ.get("SESSIONSTORE_STATEFUL_EXAMPLES", "250"))
STEPS = int(os.environ.get("SESSIONSTORE_STATEFUL_STEPS", "30"))
# Generous timeouts: a loaded CI machine must never turn an answer into a degraded one.
CONFIG = Config(max_sessions_per_user=CAP, refresh_grace=3600, socket_timeout=5.0)
_run_ids = itertools.count()


@dataclass
class Model:
    """What the model knows of one session."""

    user: str
    sid: str
    device: str
    seen: int
    generation: int = 1
    refresh: dict[int, str] = field(default_factory=dict)
    access: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    live: bool = True
    amr: tuple[str, ...] = ()
    acr: int = 0
    claims: dict[str, Any] = field(default_factory=dict)
    moved_to: Model | None = None  # rotate: the session this id moved to


class SessionMachine(RuleBasedStateMachine):
    """Drives one store; the server is flushed at the start of each example."""

    store: ClassVar[SessionStore]
    admin: ClassVar[redis.Redis]
    seen_events: ClassVar[list[events.Event]]

    def __init__(self) -> None:
        super().__init__()
        self.run = next(_run_ids)
        self.sessions: list[Model] = []
        self.clock = itertools.count()
        self.last_dead: Model | None = None
        self.devices_seen: set[tuple[str, str]] = set()

    # --- helpers -----------------------------------------------------------------------------

    def user(self, name: str) -> str:
        return f"{name}-{self.run}"

    def live(self, user: str | None = None) -> list[Model]:
        return [s for s in self.sessions if s.live and (user is None or s.user == user)]

    def pick(self, index: int) -> Model:
        return self.sessions[index % len(self.sessions)]

    def family_head(self, session: Model) -> Model:
        """Where a session's family lives now: it, or the session rotations moved it to."""
        while session.moved_to is not None:
            session = session.moved_to
        return session

    def kill(self, session: Model) -> None:
        session.live = False
        self.last_dead = session

    def signed_in(
        self,
        user: str,
        device: str,
        pair: TokenPair,
        amr: tuple[str, ...] = (),
        acr: int = 0,
        claims: dict[str, Any] | None = None,
    ) -> None:
        """Model a login's new session (and check its new-device flag)."""
        assert pair.new_device == ((user, device) not in self.devices_seen)
        self.devices_seen.add((user, device))
        session = Model(user=user, sid=pair.session_id, device=device, seen=next(self.clock))
        session.refresh[1], session.access[:] = pair.refresh_token, [pair.access_token]
        session.amr, session.acr, session.claims = amr, acr, claims or {}
        self.sessions.append(session)

    def evictions(self) -> list[str]:
        found = [
            sid
            for event in self.seen_events
            if isinstance(event, events.Revoked) and event.reason == "evicted"
            for sid in event.session_ids
        ]
        self.seen_events.clear()
        return found

    # --- rules -------------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        self.admin.flushall()
        self.seen_events.clear()

    @rule(name=st.sampled_from(USERS), device=st.sampled_from(DEVICES), level=st.integers(0, 2))
    def login(self, name: str, device: str, level: int) -> None:
        user = self.user(name)
        live = self.live(user)
        expected_evicted: list[str] = []
        if len(live) >= CAP:
            victim = min(live, key=lambda s: (s.seen, s.sid))
            self.kill(victim)
            expected_evicted = [victim.sid]
        self.seen_events.clear()
        methods = ("pwd",) if level else ()
        pair = self.store.login(
            user, device=Device(id=device), claims={"n": self.run}, methods=methods, level=level
        )
        assert self.evictions() == expected_evicted
        self.signed_in(user, device, pair, methods, level, {"n": self.run})

    @rule(name=st.sampled_from(USERS), device=st.sampled_from(DEVICES))
    def login_refusing_at_the_limit(self, name: str, device: str) -> None:
        """A login under ``at_limit="refuse"``: made below the limit, else refused, typed,
        with the live sessions named and nothing written or evicted."""
        user = self.user(name)
        live = self.live(user)
        self.seen_events.clear()
        try:
            pair = self.store.login(user, device=Device(id=device), at_limit="refuse")
        except SessionLimitReached as refused:
            assert len(live) >= CAP
            assert set(refused.session_ids) == {s.sid for s in live}
            assert self.evictions() == []
            return
        assert len(live) < CAP and self.evictions() == []
        self.signed_in(user, device, pair)

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 1000), which=st.integers(0, 1000))
    def validate(self, index: int, which: int) -> None:
        session = self.pick(index)
        token = session.access[which % len(session.access)]
        if session.live:
            principal = self.store.validate(token)
            assert not principal.degraded and principal.session is not None
            assert (principal.user_id, principal.session_id) == (session.user, session.sid)
            assert principal.session.data == session.data
            assert (principal.amr, principal.acr) == (session.amr, session.acr)
            assert principal.claims == session.claims  # an update since the token counts
        else:
            with pytest.raises(SessionRevoked):
                self.store.validate(token)

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 1000))
    def touch(self, index: int) -> None:
        session = self.pick(index)
        assert self.store.touch(session.user, session.sid) is session.live
        if session.live:
            session.seen = next(self.clock)

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 1000), back=st.integers(0, 3))
    def refresh(self, index: int, back: int) -> None:
        session = self.pick(index)
        presented = max(1, session.generation - back)
        token = session.refresh[presented]
        head = self.family_head(session)
        if not session.live and head.live:
            # A token of an id rotated away, any generation: reuse of the family, whose
            # live session (any number of rotations later) is revoked.
            with pytest.raises(RefreshReuseDetected):
                self.store.refresh(token)
            self.kill(head)
        elif not session.live:
            with pytest.raises(SessionRevoked):
                self.store.refresh(token)
        elif presented == session.generation:
            pair = self.store.refresh(token)
            session.generation += 1
            session.refresh[session.generation] = pair.refresh_token
            session.access.append(pair.access_token)
            session.seen = next(self.clock)
            claims = jwt.decode(pair.access_token, options={"verify_signature": False})
            assert tuple(claims.get("amr", ())) == session.amr
            assert int(claims.get("acr", 0)) == session.acr
            assert {k: claims[k] for k in session.claims} == session.claims
        elif presented == session.generation - 1:
            # Within the grace: the racer's answer is the current token, not a new one.
            pair = self.store.refresh(token)
            assert pair.refresh_token == session.refresh[session.generation]
            session.access.append(pair.access_token)
        else:
            with pytest.raises(RefreshReuseDetected):
                self.store.refresh(token)
            self.kill(session)

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 1000), value=st.integers(0, 99))
    def update(self, index: int, value: int) -> None:
        session = self.pick(index)
        if session.live:
            updated = self.store.update(session.user, session.sid, data={"v": value})
            assert updated.data == {"v": value}
            session.data = {"v": value}
        else:
            with pytest.raises(SessionRevoked):
                self.store.update(session.user, session.sid, data={"v": value})

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 1000), role=st.sampled_from(ROLES))
    def update_claims(self, index: int, role: str) -> None:
        # Claims change in place: nothing else, and the next validation (the near cache
        # holds the session by now) answers with them.
        session = self.pick(index)
        if session.live:
            updated = self.store.update(session.user, session.sid, claims={"role": role})
            assert (updated.claims, updated.data) == ({"role": role}, session.data)
            session.claims = {"role": role}
            principal = self.store.validate(session.access[-1])
            assert principal.claims == session.claims
        else:
            with pytest.raises(SessionRevoked):
                self.store.update(session.user, session.sid, claims={"role": role})

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 1000), role=st.one_of(st.none(), st.sampled_from(ROLES)))
    def rotate(self, index: int, role: str | None) -> None:
        # A new id for the same session: the old id is dead (its tokens refused, see the
        # invariants), the new one keeps everything, its last-seen time (the eviction
        # order) included, and starts its refresh generations again.
        session = self.pick(index)
        claims = None if role is None else {"role": role}
        if not session.live:
            with pytest.raises(SessionRevoked):
                self.store.rotate(session.user, session.sid, claims=claims)
            return
        self.seen_events.clear()
        pair = self.store.rotate(session.user, session.sid, claims=claims)
        assert self.evictions() == []
        moved = Model(
            user=session.user,
            sid=pair.session_id,
            device=session.device,
            seen=session.seen,
            data=session.data,
            amr=session.amr,
            acr=session.acr,
            claims=session.claims if claims is None else claims,
        )
        moved.refresh[1], moved.access[:] = pair.refresh_token, [pair.access_token]
        self.kill(session)
        session.moved_to = moved
        self.sessions.append(moved)
        principal = self.store.validate(pair.access_token)
        assert principal.claims == moved.claims and principal.session is not None
        assert (principal.amr, principal.acr) == (moved.amr, moved.acr)
        assert principal.session.data == moved.data

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 1000), method=st.sampled_from(METHODS), level=st.integers(1, 3))
    def step_up(self, index: int, method: str, level: int) -> None:
        # Neither seen nor anything else changes: the model's eviction order (least recently
        # seen) must still predict the next login at the cap.
        session = self.pick(index)
        if session.live:
            token = self.store.step_up(session.user, session.sid, method=method, level=level)
            session.amr = (*(m for m in session.amr if m != method), method)
            session.acr = level
            session.access.append(token)
            principal = self.store.validate(token)
            assert (principal.amr, principal.acr) == (session.amr, session.acr)
            assert principal.session is not None and principal.session.data == session.data
        else:
            with pytest.raises(SessionRevoked):
                self.store.step_up(session.user, session.sid, method=method, level=level)

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 1000))
    def revoke(self, index: int) -> None:
        # A rotated-away id still names its session: where its family lives now goes.
        session = self.family_head(self.pick(index))
        assert self.store.revoke(session.user, self.pick(index).sid) is session.live
        self.kill(session)

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 1000))
    def logout(self, index: int) -> None:
        session = self.family_head(self.pick(index))
        assert self.store.logout(self.pick(index).access[-1]) is session.live
        self.kill(session)

    @rule(name=st.sampled_from(USERS), device=st.sampled_from(DEVICES))
    def revoke_device(self, name: str, device: str) -> None:
        user = self.user(name)
        doomed = [s for s in self.live(user) if s.device == device]
        assert self.store.revoke_device(user, device) == len(doomed)
        for session in doomed:
            self.kill(session)

    @rule(name=st.sampled_from(USERS), keep=st.integers(-1, 1000))
    def revoke_user(self, name: str, keep: int) -> None:
        user = self.user(name)
        mine = [s for s in self.sessions if s.user == user]
        kept = mine[keep % len(mine)].sid if mine and keep >= 0 else None
        doomed = [s for s in self.live(user) if s.sid != kept]
        assert self.store.revoke_user(user, keep=kept) == len(doomed)
        for session in doomed:
            self.kill(session)

    @rule(name=st.sampled_from(USERS))
    def listing(self, name: str) -> None:
        user = self.user(name)
        live = self.live(user)
        listed = self.store.sessions(user)
        assert {s.session_id for s in listed} == {s.sid for s in live}
        groups = self.store.devices(user)
        assert {g.device.id for g in groups} == {s.device for s in live}
        assert sum(len(g.sessions) for g in groups) == len(live)

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def index_equals_hashes_equals_model(self) -> None:
        for name in USERS:
            user = self.user(name)
            keys = user_keys(CONFIG.namespace, user)
            members: list[Any] = self.admin.zrange(keys.index, 0, -1)
            index = {bytes(sid).decode() for sid in members}
            hashes = {
                bytes(key).decode()[len(keys.prefix) :]
                for key in self.admin.scan_iter(match=keys.prefix + "*", count=1000)
            }
            model = {s.sid for s in self.live(user)}
            assert index == hashes == model, (index, hashes, model)
            assert len(model) <= CAP

    @invariant()
    def histories_are_capped(self) -> None:
        for name in USERS:
            history = user_keys(CONFIG.namespace, self.user(name)).history
            assert self.admin.llen(history) <= CONFIG.history_max_entries

    @invariant()
    def every_key_expires(self) -> None:
        keys = list(self.admin.scan_iter(count=1000))
        pipe = self.admin.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(key)
        for key, ttl in zip(keys, pipe.execute(), strict=True):
            assert ttl != -1, f"{key!r} has no TTL"

    @invariant()
    def the_latest_revoked_session_never_validates(self) -> None:
        if self.last_dead is not None:
            for token in self.last_dead.access[-2:]:
                with pytest.raises(SessionRevoked):
                    self.store.validate(token)


@pytest.fixture(scope="module")
def machine_server() -> Iterator[LocalServer]:
    binary = local_binary()
    if binary is None:
        if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
            pytest.fail("CI=true: no valkey-server or redis-server for the state machine")
        pytest.skip("no valkey-server or redis-server")
    with LocalServer(binary, name="state-machine") as server:
        yield server


def test_session_lifecycle_state_machine(machine_server: LocalServer) -> None:
    seen: list[events.Event] = []
    store = SessionStore.from_url(
        machine_server.url, keyring=Keyring.generate("HS256"), config=CONFIG, on_event=seen.append
    )
    admin = redis.Redis.from_url(machine_server.url)
    SessionMachine.store, SessionMachine.admin, SessionMachine.seen_events = store, admin, seen
    try:
        run_state_machine_as_test(
            SessionMachine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
                database=None,
            ),
        )
    finally:
        store.close()
        admin.close()
