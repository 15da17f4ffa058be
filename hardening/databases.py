"""``python -m hardening.databases``: operations that change a database without a push.

For each engine: a store on db 0 with the default ``Config`` (near cache on), a second
store on db 1 with the same keyring and namespace. Each round logs a victim in, waits
until the near cache serves it, runs the operation, then validates the victim in a loop
until it is refused. Prints the "Several databases, SWAPDB, FLUSHDB, restores" table of
docs/hardening.md.

*wrong accepts*: a non-degraded accept of a session the store's database does not hold,
later than the near cache's trust window (1 s) after the operation returned (for two
databases: any accept by db 1's store). *last accept*: the latest non-degraded accept
after the operation returned, of all rounds (the exposure the docs bound by 1 s).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from sessionstore import Device, Keyring, SessionRevoked, SessionStore
from sessionstore.testing import LocalServer, redis_binary, valkey_binary

PHONE = Device(id="phone-1", name="Pixel")
BOUND = 1.0  # the near cache's trust window
GIVE_UP = 3.0  # a round still accepting this long after the operation stops here


@dataclass
class Row:
    """One operation on one engine."""

    engine: str
    operation: str
    rounds: int = 0
    wrong: int = 0
    accepts_after: int = 0
    last_accept: float = 0.0


def warm(store: SessionStore, token: str) -> None:
    """Validate until the near cache holds the session (and is trusted)."""
    near = store._engine.near
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        store.validate(token)
        if near is not None and len(near) and near.trusted(time.monotonic()):
            return
        time.sleep(0.01)
    raise RuntimeError("the near cache never took the session")


def until_refused(store: SessionStore, token: str, done: float, row: Row) -> None:
    """Validate from ``done`` (when the operation returned) until refused; tally."""
    while True:
        try:
            principal = store.validate(token)
        except SessionRevoked:
            return
        after = time.monotonic() - done
        if not principal.degraded:
            row.accepts_after += 1
            row.last_accept = max(row.last_accept, after)
            row.wrong += after > BOUND
        if after > GIVE_UP:
            return
        time.sleep(0.001)


def run_engine(name: str, binary: str, rounds: int) -> list[Row]:
    """Every operation, ``rounds`` times, on a fresh server of ``binary``."""
    snapshots = tempfile.mkdtemp(prefix="sessionstore-dbs-")
    args = ("--dir", snapshots, "--dbfilename", "backup.rdb")
    rows: list[Row] = []
    with LocalServer(binary, name=f"dbs-{name}", extra_args=args) as server:
        url = server.url
        keyring = Keyring.generate("HS256")
        admin = redis.Redis.from_url(url)
        spare = redis.Redis.from_url(url[: url.rfind("/")] + "/1")
        store = SessionStore.from_url(url, keyring=keyring)
        other = SessionStore.from_url(url[: url.rfind("/")] + "/1", keyring=keyring)

        def backup() -> None:
            spare.flushdb()
            for key in admin.scan_iter(count=1000):
                admin.copy(key, key, destination_db="1")

        def swap_exact() -> None:
            pipe = admin.pipeline(transaction=True)
            pipe.delete("ss:{!db}")  # db_watch_key("ss"), spelled out: runs on older releases
            pipe.swapdb(0, 1)
            pipe.execute()

        def restart() -> None:
            server.kill()
            server.start()

        ops: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "SWAPDB to a restored backup": (backup, lambda: admin.swapdb(0, 1)),
            "SWAPDB with an empty database": (spare.flushdb, lambda: admin.swapdb(0, 1)),
            "MULTI, DEL watch key, SWAPDB, EXEC (the documented restore)": (backup, swap_exact),
            "FLUSHDB": (lambda: None, admin.flushdb),
            "FLUSHALL": (lambda: None, admin.flushall),
            "restart from an older snapshot": (admin.save, restart),
        }
        try:
            row = Row(name, "two databases, one keyring and namespace")
            for n in range(rounds):
                pair = store.login(f"both-{n}", device=PHONE)
                warm(store, pair.access_token)
                for _ in range(20):
                    row.rounds += 1
                    try:
                        other.validate(pair.access_token)
                        row.wrong += 1
                    except SessionRevoked:
                        pass
            rows.append(row)
            for operation, (before, act) in ops.items():
                row = Row(name, operation)
                for n in range(rounds):
                    before()  # the backup, snapshot or spare database: without the victim
                    pair = store.login(f"victim-{n}", device=PHONE)
                    warm(store, pair.access_token)
                    act()
                    until_refused(store, pair.access_token, time.monotonic(), row)
                    row.rounds += 1
                rows.append(row)
        finally:
            store.close()
            other.close()
            admin.close()
            spare.close()
    return rows


def render(rows: list[Row]) -> str:
    """The markdown table."""
    lines = [
        "| engine | operation | rounds | wrong accepts | accepts after it returned | last accept |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        last = f"{r.last_accept * 1000:.0f} ms" if r.accepts_after else "-"
        lines.append(
            f"| {r.engine} | {r.operation} | {r.rounds:,} | **{r.wrong}** "
            f"| {r.accepts_after:,} | {last} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every engine found; print the table; exit 1 on any wrong accept."""
    parser = argparse.ArgumentParser(prog="python -m hardening.databases", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="rounds per operation")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name, find in (("valkey 8", valkey_binary), ("redis 7", redis_binary)):
        binary = find()
        if binary is not None:
            rows += run_engine(name, binary, args.rounds)
    print(render(rows))
    return 1 if any(r.wrong for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
