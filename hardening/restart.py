"""``python -m hardening.restart``: a process restarted during an outage, with figures.

Per engine (Valkey 8, Redis 7), on a private server: one store logs in ``--sessions``
sessions (device binding enforced), revokes ``--revoked`` of them and validates the rest,
then the server is killed (SIGKILL, by pid). From then on two processes validate every
token in a loop, from the session's own device and, one call in four, from another one:

- *running*: this process, whose store saw Redis a moment before the outage;
- *restarted*: a new Python process started ``--restart-at`` seconds into the outage (as a
  supervisor restarts a worker), which has never reached Redis.

Both run until ``--run-for`` seconds into the outage, past ``max_degraded_seconds``
(``--bound``). A *wrong accept* is an accept of a revoked session, of a request from
another device, or an accept of a call begun more than ``--bound`` seconds after the last
reply of Redis (taken as the moment that reply had been handled: the count never overstates).
Prints the markdown subsection of docs/hardening.md; exits 1 on any wrong accept.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

import sessionstore
from sessionstore import (
    Config,
    Device,
    DeviceBindingError,
    Keyring,
    SessionRevoked,
    SessionStore,
    SessionStoreError,
    StoreUnavailable,
)
from sessionstore.testing import LocalServer, redis_binary, valkey_binary

__all__ = ["Tally", "hammer", "main"]

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
HOME = ("10.0.0.7", CHROME)
_LAUNCH = 5.0  # seconds between starting the restarted process's interpreter and the kill
AWAY = ("192.0.2.44", FIREFOX)


class Tally(msgspec.Struct, kw_only=True):
    """What one process saw: operations, accepts, refusals by kind, wrong accepts."""

    operations: int = 0
    accepted: int = 0
    unavailable: int = 0
    revoked: int = 0
    device: int = 0
    unhandled: int = 0
    wrong: int = 0
    last_accept: float | None = None  # seconds after the last reply of Redis


def config_for(bound: int) -> Config:
    """The store configuration of both processes."""
    return Config(
        socket_timeout=0.25,
        breaker_failures=2,
        breaker_reset=0.3,
        max_degraded_seconds=bound,
        device_binding="enforce",
    )


def hammer(
    store: SessionStore,
    tokens: Sequence[tuple[str, bool]],
    *,
    until: float,
    last_reply: float,
    bound: float,
) -> Tally:
    """Validate ``tokens`` (token, revoked) in a loop until monotonic ``until``."""
    tally = Tally()
    calls = 0
    while time.monotonic() < until:
        for token, revoked in tokens:
            calls += 1
            away = calls % 4 == 0
            ip, agent = AWAY if away else HOME
            tally.operations += 1
            # Read before the call: an accept is wrong only if the call began past the
            # bound (its own check ran later still), so a slow return is never counted.
            began = time.monotonic()
            try:
                store.validate(token, ip=ip, user_agent=agent)
            except StoreUnavailable:
                tally.unavailable += 1
                continue
            except SessionRevoked:
                tally.revoked += 1
                continue
            except DeviceBindingError:
                tally.device += 1
                continue
            except SessionStoreError:
                tally.unhandled += 1  # a typed error no outage should cause
                continue
            tally.accepted += 1
            tally.last_accept = began - last_reply
            if revoked or away or began - last_reply > bound:
                tally.wrong += 1
        time.sleep(0.005)  # two processes share two cores: leave the other one some
    return tally


def _child(argv: list[str]) -> int:
    """The restarted process: tokens in a file, its tally on stdout."""
    url, until, bound, listing, restart = argv[0], float(argv[1]), int(argv[2]), argv[3], argv[4]
    tokens = [(token, revoked) for token, revoked in json.loads(Path(listing).read_text())]
    time.sleep(max(0.0, float(restart) - time.monotonic()))  # the restart, mid-outage
    # The parent wrote when Redis last answered it right after the kill, before this.
    last_reply = float(Path(listing).with_suffix(".reply").read_text())
    with SessionStore.from_url(url, keyring=Keyring.from_env(), config=config_for(bound)) as store:
        tally = hammer(store, tokens, until=until, last_reply=last_reply, bound=bound)
    sys.stdout.write(msgspec.json.encode(tally).decode())
    return 0


def run_engine(
    binary: str, *, sessions: int, revoked: int, bound: int, restart_at: float, run_for: float
) -> tuple[str, Tally, Tally]:
    """One engine: the running and the restarted process's tallies."""
    keyring = Keyring.generate("HS256")
    config = config_for(bound)
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalServer(binary, name="hardening-restart") as server,
    ):
        name, version = server.info()
        with SessionStore.from_url(server.url, keyring=keyring, config=config) as store:
            device = Device(id="laptop", user_agent=HOME[1], ip=HOME[0])
            pairs = [store.login(f"user-{i % 20}", device=device) for i in range(sessions)]
            tokens = [(pair.access_token, i < revoked) for i, pair in enumerate(pairs)]
            for i, pair in enumerate(pairs[:revoked]):
                store.revoke(f"user-{i % 20}", pair.session_id)
            env = {
                **os.environ,
                "SESSIONSTORE_JWKS": json.dumps(keyring.to_private_jwks()),
                # The child imports the same sessionstore and hardening as this process.
                "PYTHONPATH": os.pathsep.join(
                    [
                        str(Path(sessionstore.__file__).resolve().parents[1]),
                        str(Path(__file__).resolve().parents[1]),
                    ]
                ),
            }
            listing = Path(tmp) / "tokens.json"
            listing.write_text(json.dumps(tokens))
            # The interpreter starts now (importing takes seconds on a loaded box); its store,
            # all it knows of Redis, is created restart_at seconds into the outage.
            killed = time.monotonic() + _LAUNCH
            until = killed + run_for
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hardening.restart",
                    "--child",
                    server.url,
                    repr(until),
                    str(bound),
                    str(listing),
                    repr(killed + restart_at),
                ],
                stdout=subprocess.PIPE,
                env=env,
                text=True,
            )
            time.sleep(max(0.0, killed - time.monotonic()))
            for token, dead in tokens:
                if not dead:
                    store.validate(token, ip=HOME[0], user_agent=HOME[1])
            last_reply = time.monotonic()  # every reply above was handled by now
            server.kill()
            listing.with_suffix(".reply").write_text(repr(last_reply))
            running = hammer(store, tokens, until=until, last_reply=last_reply, bound=bound)
            out, _ = child.communicate(timeout=run_for + 60)
            restarted = msgspec.json.decode(out, type=Tally)
    return f"{name} {version}", running, restarted


def render(rows: list[tuple[str, str, Tally]], args: argparse.Namespace) -> str:
    """The markdown subsection."""

    def after(tally: Tally) -> str:
        return "none" if tally.last_accept is None else f"{tally.last_accept:.2f} s"

    lines = [
        "### A process restarted during an outage",
        "",
        "Generated by `python -m hardening.restart` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPU cores, loopback only).",
        "",
        f'{args.sessions} sessions with `device_binding="enforce"`, {args.revoked} of them',
        f"revoked, `max_degraded_seconds={args.bound}`; then the server is killed (SIGKILL).",
        "*running*: the store that saw Redis a moment before. *restarted*: a new process",
        f"whose store is created {args.restart_at} s into the outage (as a supervisor restarts",
        "a worker; its interpreter starts earlier, so that import time does not eat the window).",
        "Both validate every token in a loop, one call in four from another device (another",
        f"IP and browser), until {args.run_for} s into the outage.",
        "",
        "| engine | process | operations | accepted | refused: unavailable / revoked / device "
        "| wrong accepts | last accept after the last reply |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for engine, process, tally in rows:
        lines.append(
            f"| {engine} | {process} | {tally.operations:,} | {tally.accepted:,} | "
            f"{tally.unavailable:,} / {tally.revoked:,} / {tally.device:,} | "
            f"**{tally.wrong:,}** | {after(tally)} |"
        )
    lines += [
        "",
        "- *wrong accepts*: an accept of a revoked session, of a call from another device, or",
        f"  an accept of a call begun more than {args.bound} s after the last reply of Redis",
        "  (*last accept* is when the last accepted call began). Must be 0.",
        "- The bound runs from the last reply of Redis, not from when a process noticed the",
        "  outage: a restarted process cannot open a fresh window, and one that never reached",
        "  Redis (it cannot know which sessions were revoked) refuses with `StoreUnavailable`.",
        "- Device binding holds without Redis: the token carries keyed digests of its",
        "  device's IP network and browser family, checked against each request.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run both engines and print the subsection."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m hardening.restart", description=__doc__)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--revoked", type=int, default=50)
    parser.add_argument("--bound", type=int, default=2, help="max_degraded_seconds")
    parser.add_argument("--restart-at", type=float, default=1.0)
    parser.add_argument("--run-for", type=float, default=5.0)
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, Tally]] = []
    for binary in (valkey_binary(), redis_binary()):
        if binary is None:
            continue
        engine, running, restarted = run_engine(
            binary,
            sessions=args.sessions,
            revoked=args.revoked,
            bound=args.bound,
            restart_at=args.restart_at,
            run_for=args.run_for,
        )
        rows += [(engine, "running", running), (engine, "restarted", restarted)]
    print(render(rows, args))
    return 1 if any(tally.wrong or tally.unhandled for _, _, tally in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
