"""A short pass of every fault scenario under load, each on a private server of its own.

The scenarios live in ``hardening/faults.py``; ``make hardening`` runs them for 20 s each
and writes the figures to docs/hardening.md. Here each runs 4 s (fault at 0.7 s for 1.2 s):
no wrong accept, no unhandled exception, and the store recovers by itself.
"""

from __future__ import annotations

import pytest

from hardening.faults import SCENARIOS, Timeline, run_fault
from sessionstore.testing import local_binary

TIMELINE = Timeline(total=4.0, start=0.7, length=1.2)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_fault_under_load(scenario: str) -> None:
    binary = local_binary()
    assert binary is not None, "no valkey-server or redis-server (see .ci/run)"
    result = run_fault(scenario, TIMELINE, binary)
    print(result)
    assert result.wrong_accepts == 0, result.notes
    assert result.unhandled == 0, result.notes
    assert not [note for note in result.notes if note.startswith("injector")], result.notes
    assert result.validations > 1000 and result.ok > 0
    assert result.recover_seconds is not None, "no clean answer after the fault ended"
    if scenario == "kill -9, restart empty":
        assert result.degraded > 0  # the outage was real...
        assert result.data_lost_events >= 1  # ...and the empty restart was reported
    else:
        assert result.data_lost_events == 0
    if scenario == "SCRIPT FLUSH":
        assert result.degraded == 0 and result.write_errors == 0  # NOSCRIPT is handled
    if scenario == "maxmemory under noeviction":
        assert result.write_errors > 0  # writes met OOM; validations kept answering
