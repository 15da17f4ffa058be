"""Barrier-started races, with threads and with spawned processes, on a private server.

The race logic lives in ``hardening/races.py`` (``make hardening`` runs it longer and writes
the figures to docs/hardening.md); here a short pass of every race must show zero wrong
outcomes, and both orders of each two-sided race must actually have happened.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hardening.races import RACES, run_races
from sessionstore.testing import LocalServer, local_binary

ROUNDS = 25


@pytest.fixture(scope="module")
def race_server() -> Iterator[LocalServer]:
    binary = local_binary()
    assert binary is not None, "no valkey-server or redis-server (see .ci/run)"
    with LocalServer(binary, name="races") as server:
        yield server


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_races_have_no_wrong_outcome(race_server: LocalServer, mode: str) -> None:
    results = run_races(race_server.url, mode=mode, rounds=ROUNDS)
    assert [r.race for r in results] == list(RACES)
    for result in results:
        print(
            f"{mode:9} {result.race:26} rounds={result.rounds:3} "
            f"operations={result.operations:7} wrong={result.wrong} {dict(result.orders)}"
        )
        assert result.wrong == 0, result.notes
        assert result.rounds >= 1 and result.operations >= result.rounds
    by_name = {r.race: r for r in results}
    # Proof that these were races: over the rounds, each side got there first at least once.
    # (Processes are truly parallel; threads interleave at every socket wait.)
    for race in ("revoke || touch", "revoke || refresh"):
        orders = by_name[race].orders
        assert len(orders) == 2 and min(orders.values()) > 0, (race, dict(orders))
    assert by_name["login flood past the cap"].orders["evictions"] > 0
