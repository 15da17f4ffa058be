"""Markdown for docs/hardening.md from measured figures (nothing here is typed in by hand)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence

from hardening.faults import FaultResult, Timeline
from hardening.gate import GateFigure
from hardening.races import CAP, ROTATIONS, RaceResult

__all__ = ["KEPT", "kept", "render"]

# From this heading on, the report is written by hand from figures the test suite measures
# (deployment models: forked workers, ...); a new run keeps it.
KEPT = "## Deployment models"


def _ms(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _races(results: Sequence[RaceResult], workers: int) -> list[str]:
    lines = [
        "## Races (barrier start)",
        "",
        f"{workers} workers start each round together on a barrier: threads sharing one store,",
        "or spawned processes with a store each. The checks read Redis directly after every",
        f"round. The per-user cap is {CAP}; a rotation round rotates the keyring {ROTATIONS}",
        "times per worker while the others validate tokens of the old keys.",
        "",
        "| race | mode | rounds | operations | wrong outcomes | interleavings seen |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        orders = ", ".join(f"{k}: {v:,}" for k, v in sorted(r.orders.items()))
        lines.append(
            f"| {r.race.replace('||', '&#124;&#124;')} | {r.mode} | {r.rounds:,} | "
            f"{r.operations:,} | **{r.wrong}** | {orders} |"
        )
    notes = [f"- {r.race} ({r.mode}): {n}" for r in results for n in r.notes]
    if notes:
        lines += ["", "Wrong outcomes seen:", "", *notes]
    return lines


def _faults(results: Sequence[FaultResult], timeline: Timeline) -> list[str]:
    lines = [
        "## Faults under load",
        "",
        "Each scenario: a fresh server (`--maxmemory-policy noeviction`), 200 sessions, then",
        f"{timeline.total:g} s of load from one thread on a `SessionStore` with the default",
        '`Config` (token cache, near cache, breaker, `fallback="stateless"`): `validate` of',
        "live, revoked and forged tokens, with a login every 25 calls and a refresh and two",
        f"revocations (one by another store object) every 100. The fault starts at "
        f"{timeline.start:g} s and lasts {timeline.length:g} s (SIGSTOP: paused that long;",
        "kill: restarted empty after that long; SCRIPT FLUSH every 0.2 s and CLIENT KILL of",
        "every normal and pub/sub connection every 0.5 s during it; maxmemory set 16 KB above",
        "the memory in use, then lifted).",
        "",
        "| scenario | calls | calls/s | wrong accepts | unhandled | degraded answers | "
        "stale accepts | write errors | time to recover | data loss reported |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lost = (
            f"yes, {_ms(r.data_lost_after)} after the restart"
            if r.data_lost_events
            else "no (nothing was lost)"
            if "kill" not in r.scenario
            else "**NO**"
        )
        rate = r.calls / r.seconds if r.seconds else 0.0
        lines.append(
            f"| {r.scenario} | {r.calls:,} | {rate:,.0f} | **{r.wrong_accepts}** | "
            f"**{r.unhandled}** | {r.degraded:,} | {r.stale_accepts:,} | {r.write_errors:,} | "
            f"{_ms(r.recover_seconds)} | {lost} |"
        )
    lines += [
        "",
        "- *calls*: validations + writes; of the validations, "
        + "; ".join(f"{r.scenario}: {r.ok:,} accepted, {r.refused:,} refused" for r in results)
        + ".",
        "- *wrong accepts*: a forged token, a session this process revoked, or (outside",
        "  degraded mode) a revoked or lost session, accepted. *unhandled*: an exception",
        "  outside `SessionStoreError`. Both must be 0.",
        "- *degraded answers*: `Principal(degraded=True)` from the token alone, or a typed",
        "  refusal to decide (`StoreUnavailable`, `ScriptError`).",
        "- *stale accepts*: degraded accepts of sessions another store object revoked while",
        '  this one could not hear it: the documented trade of `fallback="stateless"`',
        '  (SECURITY.md); `fallback="deny"` has none.',
        "- *time to recover*: from the end of the fault to the first non-degraded accept",
        "  (after a crash it includes the breaker's probe delay, `breaker_reset`).",
    ]
    notes = [f"- {r.scenario}: {n}" for r in results for n in r.notes]
    if notes:
        lines += ["", "Errors seen (first of each kind):", "", *notes]
    return lines


def _gate(figures: Sequence[GateFigure]) -> list[str]:
    lines = [
        "## Pre-decode gate",
        "",
        "Median time of one `verify_access_token` call, no Redis involved. An oversized token",
        "costs one length check: it is refused before any scan, split or base64 decoding.",
        "",
        "| input | outcome | time per call |",
        "|---|---|---:|",
    ]
    for f in figures:
        shown = (
            f"{f.nanoseconds / 1000:,.1f} µs"
            if f.nanoseconds >= 1000
            else (f"{f.nanoseconds:,.0f} ns")
        )
        lines.append(f"| {f.case} | {f.outcome} | {shown} |")
    return lines


def render(
    *,
    races: Sequence[RaceResult],
    faults: Sequence[FaultResult],
    gate: Sequence[GateFigure],
    timeline: Timeline,
    workers: int,
    server: str,
    command: str,
) -> str:
    """The whole report as Markdown."""
    wrong = sum(r.wrong for r in races)
    bad = sum(r.wrong_accepts + r.unhandled for r in faults)
    lines = [
        "# Hardening report",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M %Z')}: {server}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPU cores, loopback only.",
        "Do not edit by hand: run `make hardening` again.",
        "",
        f"**Summary:** {sum(r.operations for r in races):,} racing operations with "
        f"{wrong} wrong outcomes; {sum(r.calls for r in faults):,} calls under "
        f"{len(faults)} faults with {sum(r.wrong_accepts for r in faults)} wrong accepts and "
        f"{sum(r.unhandled for r in faults)} unhandled exceptions"
        + (" — **FAILED**." if wrong or bad else "."),
        "",
        *_races(races, workers),
        "",
        *_faults(faults, timeline),
        "",
        *_gate(gate),
        "",
        "## Reproduce",
        "",
        "```sh",
        "make hardening                        # this report (about 3 minutes)",
        ".venv/bin/python -m hardening --help  # shorter or longer runs",
        "# The lifecycle state machine, far past CI's 250 examples:",
        "SESSIONSTORE_STATEFUL_EXAMPLES=20000 SESSIONSTORE_STATEFUL_STEPS=60 \\",
        "    .venv/bin/python -m pytest tests/test_state_machine.py -q",
        "make fuzz FUZZ_SECONDS=1200            # the token fuzzer, 20 minutes",
        "```",
        "",
    ]
    return "\n".join(lines)


def kept(previous: str) -> str:
    """The hand-kept part of an earlier report (from ``KEPT`` on), or ""."""
    at = previous.find("\n" + KEPT + "\n")
    return "" if at < 0 else previous[at + 1 :]
