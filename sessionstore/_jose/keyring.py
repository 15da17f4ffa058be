"""The keyring: kid -> key, the algorithm pinned per kid, rotation and retirement.

Readers take one immutable ``KeySet`` snapshot per call; ``rotate`` and ``retire`` swap in
a fresh one. Token signing and checking live in ``tokens``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

from sessionstore._jose import jws, strict
from sessionstore._jose.jws import KeyEntry, KeySet
from sessionstore.errors import InvalidInput, UnknownKey

__all__ = ["SAFE_INT_MAX", "Keyring", "seconds"]

SAFE_INT_MAX: Final = 2**53  # integers up to here survive any JSON parser (IEEE doubles)


class Keyring:
    """kid -> key, with the algorithm pinned per kid.

    Build one with ``generate``, ``from_jwks`` or ``from_env``. Readers take one immutable
    snapshot per call; ``rotate`` and ``retire`` swap in a fresh one, so no reader ever sees
    a half-updated keyring. No method puts key material in a repr or an error message.
    """

    __slots__ = ("_lock", "_state")

    def __init__(self, entries: Iterable[KeyEntry] = (), *, current: str | None = None) -> None:
        keys: dict[str, KeyEntry] = {}
        for entry in entries:
            if entry.kid in keys:
                raise InvalidInput(f"duplicate kid {entry.kid!r}")
            keys[entry.kid] = entry
        if current is not None and (current not in keys or not keys[current].can_sign):
            raise InvalidInput("the current kid must name a key with private material")
        self._lock = threading.Lock()
        self._state = KeySet(keys, {}, current)

    @classmethod
    def generate(cls, alg: str = "HS256", *, kid: str | None = None) -> Keyring:
        """A keyring of one fresh random key: HS256/384/512, ES256, EdDSA, RS256 or PS256."""
        entry = jws.generate_entry(alg, kid)
        return cls([entry], current=entry.kid)

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any] | str | bytes) -> Keyring:
        """Load an RFC 7517 JWK Set (a mapping or JSON text); every key needs "kid" and "alg".

        The last key with private material signs; a public-only set verifies only.
        """
        data: object = jwks
        if isinstance(jwks, str | bytes):
            try:
                text = jwks.decode("utf-8") if isinstance(jwks, bytes) else jwks
                data = strict.strict_loads(text)
            except (ValueError, RecursionError) as err:
                raise InvalidInput("JWK Set is not valid JSON") from err
        keys = data.get("keys") if isinstance(data, Mapping) else None
        if not isinstance(keys, list | tuple) or not keys:
            raise InvalidInput('a JWK Set must be an object with a non-empty "keys" list')
        entries = [jws.entry_from_jwk(jwk) for jwk in keys]
        signing = [entry.kid for entry in entries if entry.can_sign]
        return cls(entries, current=signing[-1] if signing else None)

    @classmethod
    def from_env(cls, name: str = "SESSIONSTORE_JWKS") -> Keyring:
        """Load the JWK Set held as JSON in the environment variable ``name``."""
        raw = os.environ.get(name)
        if not raw:
            raise InvalidInput(f"environment variable {name} is not set")
        return cls.from_jwks(raw)

    def to_jwks(self) -> dict[str, Any]:
        """The public JWK Set other services verify with (HMAC keys are never published)."""
        state = self._live()
        return {"keys": [k.to_jwk(private=False) for k in state.keys.values() if k.secret is None]}

    def to_private_jwks(self) -> dict[str, Any]:
        """The full JWK Set, SECRETS INCLUDED: store it like a password.

        The current signing key comes last, so ``from_jwks`` restores it as current.
        """
        state = self._live()
        entries = sorted(state.keys.values(), key=lambda entry: entry.kid == state.current)
        return {"keys": [entry.to_jwk(private=True) for entry in entries]}

    def rotate(self, new: Keyring, *, grace: float = 3600.0) -> None:
        """Add ``new``'s keys and sign with its current kid; retire every held key after ``grace``.

        Tokens signed by a retired key verify until ``time.time() + grace``, then fail with
        ``UnknownKey``.
        """
        if not isinstance(new, Keyring):
            raise InvalidInput("rotate needs a Keyring")
        deadline = time.time() + seconds("grace", grace)
        with self._lock:
            now = time.time()
            old = self._state.without_expired(now)
            fresh = new._state.without_expired(now)
            if old.current is not None and fresh.current is None:
                raise InvalidInput("rotate needs a keyring with a signing key")
            clash = sorted(old.keys.keys() & fresh.keys.keys())
            if clash:
                raise InvalidInput(f"kids already held: {clash!r}")
            retire = {kid: min(old.retire.get(kid, deadline), deadline) for kid in old.keys}
            retire.update(fresh.retire)
            self._state = KeySet({**old.keys, **fresh.keys}, retire, fresh.current)

    def retire(self, kid: str, *, at: float | None = None) -> None:
        """Drop ``kid`` at time ``at`` (default: now); for tests and emergencies."""
        when = time.time() if at is None else seconds("at", at)
        with self._lock:
            state = self._state
            if kid not in state.keys:
                raise InvalidInput(f"no key {kid!r} in this keyring")
            retire = {**state.retire, kid: min(state.retire.get(kid, when), when)}
            self._state = KeySet(state.keys, retire, state.current).without_expired(time.time())

    @property
    def current_kid(self) -> str | None:
        """The kid new tokens are signed with; None for a verify-only keyring."""
        return self._live().current

    @property
    def kids(self) -> list[str]:
        """The kids of every live key (retired keys still in their grace included)."""
        return list(self._live().keys)

    def __repr__(self) -> str:
        state = self._live()
        return f"Keyring(kids={list(state.keys)!r}, current={state.current!r})"

    def _forked(self) -> None:
        """In a forked child: a new lock (a parent thread may have held the old one)."""
        self._lock = threading.Lock()

    def _live(self) -> KeySet:
        """The current snapshot, after dropping keys whose retirement time has passed."""
        state = self._state
        if state.retire and min(state.retire.values()) <= time.time():
            with self._lock:
                self._state = state = self._state.without_expired(time.time())
        return state

    def _entry(self, kid: str) -> KeyEntry:
        """The live key named ``kid``; ``UnknownKey`` if it is unknown or retired."""
        state = self._state
        entry = state.keys.get(kid)
        if entry is None:
            raise UnknownKey("unknown kid")
        at = state.retire.get(kid)
        if at is not None and at <= time.time():
            self._live()
            raise UnknownKey("key was retired")
        return entry

    def _signer(self, kid: str | None) -> KeyEntry:
        """The key to sign with (default: current); ``InvalidInput`` if it cannot sign."""
        if kid is None:
            kid = self._live().current
            if kid is None:
                raise InvalidInput("keyring has no signing key")
        try:
            entry = self._entry(kid)
        except UnknownKey as err:
            raise InvalidInput(f"no live key {kid!r} in this keyring") from err
        if not entry.can_sign:
            raise InvalidInput(f"key {kid!r} is verify-only")
        return entry


def seconds(name: str, value: object) -> float:
    """``value`` as float seconds; ``InvalidInput`` unless a number in 0..2**53."""
    # One bound refuses negatives, NaN, infinities and ints too big for a float alike.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{name} must be a number of seconds in 0..2**53")
    if not 0 <= value <= SAFE_INT_MAX:
        raise InvalidInput(f"{name} must be a number of seconds in 0..2**53")
    return float(value)
